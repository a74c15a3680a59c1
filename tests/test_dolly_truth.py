"""Issue 11: the Dolly ladder as its users run it. Hub-id names, same-named folders, unavailable models,
seeded sampling and the Databricks preset through the real CLI; the card's metric, decoding text,
skipped tasks and integer counts from stored records."""

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from conftest import records, sizebench
from sizebench.runstore import frames
from sizebench.analysis import reference
from sizebench import report
from sizebench.runstore.records import FailureRecord, LoadRecord, PromptRecord, SkipRecord, StageRecord, TaskRecord
from sizebench.planning.registry import builtin
from sizebench.runstore.store import RunStore


def hf_cache_model(hf_home: Path, repo_id: str, folder: Path) -> None:
    """Put a local model into the Hugging Face cache layout, as `huggingface-cli download` leaves it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


def test_hub_id_name_runs_end_to_end_and_an_unavailable_model_is_not_a_failure(tiny_model, suite_file, tmp_path):
    hf_cache_model(tmp_path / "hf-home", "someorg/tiny-dolly", tiny_model)
    results = tmp_path / "r"
    done = sizebench(
        "compare",
        "--models",
        "someorg/tiny-dolly,someorg/not-downloaded",
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--max-new-tokens",
        "4",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stderr  # the unavailable model alone does not fail the run
    rows = records(results)
    assert {r["model"] for r in rows if r["kind"] == "prompt"} == {"someorg/tiny-dolly"}
    run_dir = next((results / "runs").iterdir())
    assert all("/" not in p.name and p.parent.parent == run_dir for p in (run_dir / "jobs").iterdir())
    assert len(list((run_dir / "logs").iterdir())) == 2
    unavailable = next(r for r in rows if r["kind"] == "failed")
    assert unavailable["model"] == "someorg/not-downloaded" and unavailable["unavailable"] is True
    assert "huggingface-cli download someorg/not-downloaded" in unavailable["reason"]
    line = next(line for line in done.stderr.splitlines() if "someorg/not-downloaded: unavailable:" in line)
    assert "not in the Hugging Face cache" in line
    assert "--resume" not in done.stderr and "Traceback" not in done.stderr
    summary = (results / "report.md").read_text().split("## Summary")[1].split("##")[0]
    assert "| someorg/tiny-dolly |" in summary and "unavailable: someorg/not-downloaded" in summary


@pytest.mark.long
def test_a_run_where_no_model_ran_keeps_the_last_report(tmp_path, suite_file):
    results = tmp_path / "r"
    results.mkdir()
    (results / "report.md").write_text("the last good report\n")
    done = sizebench(
        "compare", "--models", "someorg/not-downloaded", "--prompts", str(suite_file), "--results", str(results)
    )
    assert done.returncode == 0, done.stderr
    assert (results / "report.md").read_text() == "the last good report\n"
    assert "no model ran" in done.stderr and "left as it was" in done.stderr


def test_same_named_folders_stay_two_models_through_the_runner(tiny_model, tiny_ender, suite_file, tmp_path):
    for parent, source in (("a", tiny_model), ("b", tiny_ender)):
        (tmp_path / parent).mkdir()
        (tmp_path / parent / "model").symlink_to(source, target_is_directory=True)
    results = tmp_path / "r"
    done = sizebench(
        "compare",
        "--models",
        "./a/model,./b/model",
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--max-new-tokens",
        "4",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stderr
    prompts = [r for r in records(results) if r["kind"] == "prompt"]
    assert {r["model"] for r in prompts} == {"a/model", "b/model"}
    assert {r["answer"] for r in prompts if r["model"] == "b/model"} == {""}  # the ender's answers, kept apart


def test_sampling_is_seeded_and_the_databricks_preset_is_recorded(tiny_model, suite_file, tmp_path):
    args = [
        "compare",
        "--models",
        str(tiny_model),
        "--prompts",
        str(suite_file),
        "--repeat",
        "2",
        "--max-new-tokens",
        "12",
        "--sample",
        "--temperature",
        "1.5",
        "--top-k",
        "0",
    ]
    first = sizebench(*args, "--results", str(tmp_path / "a"))
    second = sizebench(*args, "--results", str(tmp_path / "b"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a = [r for r in records(tmp_path / "a") if r["kind"] == "prompt"]
    b = [r for r in records(tmp_path / "b") if r["kind"] == "prompt"]
    assert [r["answer"] for r in a] == [r["answer"] for r in b] and all(r["same_answer_every_run"] for r in a)
    greedy = sizebench(
        "compare",
        "--models",
        str(tiny_model),
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--max-new-tokens",
        "12",
        "--results",
        str(tmp_path / "g"),
    )
    assert greedy.returncode == 0, greedy.stderr
    assert [r["answer"] for r in records(tmp_path / "g") if r["kind"] == "prompt"] != [r["answer"] for r in a]
    text = (tmp_path / "a" / "report.md").read_text()
    assert "sampling (temperature 1.5, top-p 1, top-k off, seed 0" in text
    assert "Greedy answers" not in text and "with greedy decoding" not in text

    preset = sizebench(
        "compare",
        "--models",
        str(tiny_model),
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--decoding",
        "databricks",
        "--results",
        str(tmp_path / "d"),
    )
    assert preset.returncode == 0, preset.stderr
    gen = json.loads(next((tmp_path / "d" / "runs").iterdir()).joinpath("run.json").read_text())["plan"]["gen"]
    assert gen | {} == {
        **gen,
        "preset": "databricks",
        "do_sample": True,
        "top_p": 0.92,
        "top_k": 0,
        "max_new_tokens": 256,
        "stop_at_eos": False,
    }
    assert (
        "`databricks` preset: sampling (temperature 1, top-p 0.92, top-k off"
        in (tmp_path / "d" / "report.md").read_text()
    )


def test_bad_decoding_values_are_one_line_errors(tmp_path, suite_file):
    for args, message in ((["--decoding", "nucleus"], "unknown --decoding 'nucleus'"), (["--top-k", "-1"], "--top-k")):
        done = sizebench(
            "compare", "--models", "smollm2-135m", "--prompts", str(suite_file), *args, "--results", str(tmp_path)
        )
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


# ---- report content from stored records ---------------------------------------------------------------


def _load(model, params=1000, non_embedding=None):
    return LoadRecord(
        model,
        "a",
        "fam",
        "hub",
        params,
        1.0,
        1.0,
        None,
        None,
        0.5,
        "cached",
        "float32",
        "cpu",
        1,
        2,
        "dolly",
        100.0,
        None,
        params_non_embedding=non_embedding,
    )


def _run(tmp_path, specs, rows, gen=None):
    plan = {"models": [s.to_dict() for s in specs], "stages": ["prompts", "tasks"]}
    if gen:
        plan["gen"] = gen
    store = RunStore.create(tmp_path, {"command": "x", "environment": {}, "plan": plan})
    for row in rows:
        store.append(row)
    return store


def test_measured_acc_norm_equal_to_the_card_shows_no_difference_whatever_acc_is(tmp_path):
    card = reference.published()
    dolly = card[card["location"] == "databricks/dolly-v2-3b"]
    rows = [_load("dolly-v2-3b")]
    for _, c in dolly[dolly["task"] != "gmean"].iterrows():
        rows.append(
            TaskRecord("dolly-v2-3b", "a", c["task"], c["metric"], c["published"], 0.01, 500, "1", 0, None, 1.0)
        )
        if c["metric"] == "acc_norm":  # lm-eval reports acc too; far from the card, and never compared with it
            rows.append(
                TaskRecord("dolly-v2-3b", "a", c["task"], "acc", c["published"] - 0.2, 0.01, 500, "1", 0, None, 1.0)
            )
    store = _run(tmp_path, [builtin("dolly-v2-3b")], rows)
    joined = reference.join(frames.load([store.dir])["task"], frames.load([store.dir]).models)
    assert len(joined) == 7 and joined["diff_in_stderr"].abs().max() < 1e-6
    assert set(joined.loc[joined["metric"] == "acc_norm", "task"]) == {
        "openbookqa",
        "arc_easy",
        "hellaswag",
        "arc_challenge",
        "piqa",
    }
    published = report.render(frames.load([store.dir]), []).split("## Measured vs published")[1]
    assert "| dolly-v2-3b | hellaswag | acc\\_norm | 0.6508 |" in published and "| boolq | acc |" in published


def test_counts_stay_integers_when_runs_are_combined(tmp_path):
    first = _run(
        tmp_path,
        [builtin("smollm2-135m")],
        [
            _load("smollm2-135m"),
            PromptRecord("smollm2-135m", "a", "p1", "q", ["x"], "x", True, 1, 1, 0.1, 0.2, 5.0),
            StageRecord("smollm2-135m", "a", "prompts", 1.0, 1.0, None),
        ],
    )
    second = _run(tmp_path, [builtin("gemma3-270m")], [_load("gemma3-270m")])
    summary = report.render(frames.load([first.dir, second.dir]), []).split("## Summary")[1].split("##")[0]
    assert "| 1/1 |" in summary and ".0/" not in summary


def test_summary_shows_total_and_non_embedding_counts_and_unavailable_models(tmp_path):
    store = _run(
        tmp_path,
        [builtin("minidolly-70m"), builtin("dolly-v2-12b")],
        [
            _load("minidolly-70m", 70_426_624, 18_915_328),
            FailureRecord(
                "dolly-v2-12b",
                "a",
                "load",
                "dolly-v2-12b: not in the cache; run `huggingface-cli download`",
                unavailable=True,
            ),
        ],
    )
    summary = report.render(frames.load([store.dir]), []).split("## Summary")[1].split("## ")[0]
    assert "params (total) | non-emb params" in summary
    assert "| minidolly-70m | 70M | 19M |" in summary
    assert "| dolly-v2-12b | 11.84B | 11.33B |" in summary and "unavailable: dolly-v2-12b: not in the cache" in summary


def test_terminal_lists_skipped_tasks_and_why(tmp_path):
    store = _run(
        tmp_path,
        [builtin("smollm2-135m")],
        [
            _load("smollm2-135m"),
            SkipRecord("smollm2-135m", "a", "hellaswag", "data set not available (ConnectionError: offline)"),
            SkipRecord("smollm2-135m", "a", "piqa", "data set not available (ConnectionError: offline)"),
            StageRecord("smollm2-135m", "a", "tasks", 1.0, 1.0, None),
        ],
    )
    buffer = io.StringIO()
    report.publish([store.dir], tmp_path, Console(file=buffer, width=200))
    shown = buffer.getvalue()
    assert "Skipped tasks" in shown and "hellaswag, piqa" in shown and "data set not available" in shown
