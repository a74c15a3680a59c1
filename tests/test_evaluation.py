"""The lm-eval stage on the tiny model: records, --limit, parity with lm-eval itself, offline skip, broken tasks."""

import json

import pytest

from conftest import records, sizebench
from fake_engine import make_model
from sizebench.stages import evaluation
from sizebench.errors import SizebenchError


@pytest.fixture(scope="module")
def tiny(tiny_model):
    """The tiny model as the transformers engine loads it: the session the tasks stage scores."""
    from sizebench.engines.hf import loader
    from sizebench.planning.registry import resolve

    return loader.load(resolve(str(tiny_model))[0], device="cpu")


def user_task_folder(root):
    folder = root / "my_tasks"
    folder.mkdir()
    rows = [{"q": f"Is {n} even?", "choices": ["yes", "no"], "label": n % 2} for n in range(12)]
    (folder / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / "even.yaml").write_text(
        "task: my_even\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {folder / 'data.jsonl'}\n"
        'test_split: test\noutput_type: multiple_choice\ndoc_to_text: "Question: {{q}}\\nAnswer:"\n'
        'doc_to_choice: "{{choices}}"\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n'
    )
    return folder


def broken_task_folder(root):
    """my_even as it should be, my_typo with a misspelt key, my_fn with a process_docs that raises."""
    folder = user_task_folder(root)
    good = (folder / "even.yaml").read_text()
    (folder / "typo.yaml").write_text(
        good.replace("task: my_even", "task: my_typo").replace("output_type:", "output_typ:")
    )
    relabel = "test_split: test\nprocess_docs: !function helpers.relabel"
    (folder / "fn.yaml").write_text(good.replace("task: my_even", "task: my_fn").replace("test_split: test", relabel))
    (folder / "helpers.py").write_text("def relabel(dataset):\n    raise KeyError('label_id')\n")
    return folder


@pytest.mark.parametrize(
    "task, reason",
    [
        (
            "my_typo",
            "task 'my_typo' cannot be built: TypeError: TaskConfig.__init__() got an unexpected keyword argument",
        ),
        ("my_fn", "task 'my_fn' cannot be built: KeyError: 'label_id'"),
    ],
)
def test_a_task_that_cannot_be_built_fails_the_stage(tiny, tmp_path, task, reason):
    session = tiny
    out = []
    settings = evaluation.EvalSettings(tasks=("my_even", task), task_path=str(broken_task_folder(tmp_path)))
    with pytest.raises(evaluation.TaskBuildFailed) as info:
        evaluation.run_tasks(session, "tiny", settings, "a1", out.append)
    assert str(info.value).startswith(reason) and "\n" not in str(info.value)
    assert out == []  # not recorded as a skip


@pytest.mark.long
def test_a_broken_task_is_a_failed_row_and_exit_status_1(tmp_path):
    folder = broken_task_folder(tmp_path)
    done = sizebench(
        "eval",
        "--models",
        f"fake:{make_model(tmp_path / 'tiny-fake')}",
        "--tasks",
        "my_even,my_fn",
        "--task-path",
        str(folder),
        "--results",
        str(tmp_path / "r"),
    )
    assert done.returncode == 1, done.stderr
    rows = records(tmp_path / "r")
    failed = [r for r in rows if r["kind"] == "failed"]
    assert [(r["stage"], r["reason"], r["unavailable"]) for r in failed] == [
        ("tasks", "task 'my_fn' cannot be built: KeyError: 'label_id'", False)
    ]
    assert not [r for r in rows if r["kind"] == "task_skipped"]
    assert "failed: fake:tiny-fake" in done.stderr and "--resume" in done.stderr and "Traceback" not in done.stderr


def test_bundled_tasks_load_offline():
    manager = evaluation.task_manager(tasks=("sizebench_geo",))
    tasks = manager.load(["sizebench_geo"])["tasks"]
    assert set(tasks) == {"sizebench_geo_capitals", "sizebench_geo_highest_points", "sizebench_geo_currencies"}
    assert all(len(t.eval_docs) >= 150 for t in tasks.values())


@pytest.mark.long
def test_lm_evals_own_tasks_are_indexed_only_where_a_task_needs_them(tmp_path):
    """The bundled and user tasks alone skip indexing lm-eval's ~14,000 task files (seconds in every worker); a
    group with one of lm-eval's tasks, a tag lm-eval's tasks carry too, or a dict member needs the full index."""
    folder = user_task_folder(tmp_path)
    (folder / "groups.yaml").write_text("group: my_group\ntask:\n  - my_even\n  - arc_easy\n")
    (folder / "mine.yaml").write_text("group: my_own\ntask:\n  - my_even\n  - sizebench_geo\n")
    (folder / "dict.yaml").write_text("group: my_dict\ntask:\n  - task: my_even\n    num_fewshot: 1\n")
    (folder / "tagged.yaml").write_text(
        (folder / "even.yaml").read_text().replace("task: my_even", "task: my_tagged\ntag: ai2_arc")
    )
    own = evaluation.task_manager(str(folder), ("my_own", "sizebench_geo_capitals"))
    assert "arc_easy" not in own.all_tasks
    assert set(own.load(["my_own"])["tasks"]) == {
        "my_even",
        "sizebench_geo_capitals",
        "sizebench_geo_highest_points",
        "sizebench_geo_currencies",
    }
    for needs_lm_eval in ("my_group", "ai2_arc", "my_dict", "arc_easy", "no_such_task"):
        assert not evaluation._self_contained(own.task_index, needs_lm_eval), needs_lm_eval
    assert "arc_easy" in evaluation.task_manager(str(folder), ("my_even", "my_group")).all_tasks


def test_records_carry_metric_stderr_n_and_honour_limit(tiny):
    session = tiny
    out = []
    settings = evaluation.EvalSettings(tasks=("sizebench_geo",), limit=5, batch_size="4")
    evaluation.run_tasks(session, "tiny", settings, "a1", out.append)
    assert sorted(r.kind for r in out if r.kind != "task") == ["item_text"] * 3 + ["items"] * 3
    out = [r for r in out if r.kind == "task"]
    accs = [r for r in out if r.metric == "acc"]
    assert {r.task for r in accs} == {
        "sizebench_geo_capitals",
        "sizebench_geo_highest_points",
        "sizebench_geo_currencies",
    }
    assert all(r.n == 5 and r.stderr is not None and 0 <= r.value <= 1 and r.limit == 5 for r in accs)
    assert {r.metric for r in out} == {"acc", "acc_norm"}


def test_user_task_gives_the_same_acc_as_lm_eval_directly(tiny, tmp_path):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    session = tiny
    model, tok = session.model, session.tokenizer
    folder = user_task_folder(tmp_path)
    out = []
    evaluation.run_tasks(
        session,
        "tiny",
        evaluation.EvalSettings(tasks=("my_even",), task_path=str(folder), batch_size="1"),
        "a1",
        out.append,
    )
    direct = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tok, batch_size=1),
        tasks=["my_even"],
        task_manager=TaskManager(include_path=str(folder)),
    )
    ours = next(r for r in out if r.kind == "task" and r.metric == "acc")
    assert ours.value == direct["results"]["my_even"]["acc,none"]
    assert ours.n == 12


def test_dolly_card_task_offline_is_skipped_quickly_with_one_line(tiny, monkeypatch):
    """Quickly: offline, not a connect attempt (a blocked network would make each one wait for its timeout)."""
    import socket

    session = tiny
    out, connects = [], []
    plain_connect = socket.socket.connect
    monkeypatch.setattr(
        socket.socket, "connect", lambda sock, address: (connects.append(address), plain_connect(sock, address))[1]
    )
    evaluation.run_tasks(
        session,
        "tiny",
        evaluation.EvalSettings(tasks=("arc_easy", "sizebench_geo"), limit=2, batch_size="2"),
        "a1",
        out.append,
    )
    assert [a for a in connects if not isinstance(a, str)] == []  # no network sockets (Unix sockets are local)
    skip = next(r for r in out if r.kind == "task_skipped")
    assert skip.task == "arc_easy" and "\n" not in skip.reason and "not available" in skip.reason
    assert any(r.kind == "task" for r in out)  # the rest ran


@pytest.mark.long
def test_dolly_card_expands_and_unknown_tasks_are_refused(tmp_path):
    assert evaluation.expand(["dolly-card"]) == list(evaluation.DOLLY_CARD)
    with pytest.raises(SizebenchError, match="unknown task 'sizebench_ge'; did you mean 'sizebench_geo'"):
        evaluation.validate(("sizebench_ge",))
    with pytest.raises(SizebenchError, match="does not exist"):
        evaluation.validate(("sizebench_geo",), str(tmp_path / "nope"))
