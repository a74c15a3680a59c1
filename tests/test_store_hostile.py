"""The run store against the text and the crashes a user meets (issue 34, items 1-5): every measured record is
read back, a damaged line costs that line only (with a warning naming it), and the run is still reported,
judged and resumed."""

import json
import os
import warnings

import pytest

from sizebench.judging import pairs
from sizebench.judging.screens import Judging
from sizebench.launch.ray_executor import RecordTail
from sizebench.planning.registry import builtin
from sizebench.runstore import frames
from sizebench.runstore.jsonl import StoreWarning
from sizebench.runstore.records import LoadRecord, PromptRecord, StageRecord, VoteRecord
from sizebench.runstore.store import RunStore, completed

MODELS = ("minidolly-70m", "dolly-v2-3b")
ANSWERS = [
    "Paris\u2028(the capital)",
    "Lyon\u2029maybe",
    "Nice\x85or Marseille",
    "plain",
    "Rome\u2028\u2029\x85",
    "Madrid",
    "Lisbon\u2028",
]  # models emit LINE SEPARATOR, PARAGRAPH SEPARATOR and NEXT LINE


def load(model):
    return LoadRecord(
        model,
        "a",
        "fam",
        "hub",
        1000,
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
        "plain",
        100.0,
        None,
    )


def prompt(model, n, answer):
    return PromptRecord(model, "a", f"p{n}", f"Question {n}?", ["Paris"], answer, None, 3, 2, 0.1, 0.2, 10.0)


def new_run(tmp_path, answers=ANSWERS) -> RunStore:
    store = RunStore.create(
        tmp_path, {"command": "sizebench bench", "plan": {"models": [builtin(m).to_dict() for m in MODELS]}}
    )
    for model in MODELS:
        store.append(load(model))
        for n, answer in enumerate(answers):
            store.append(prompt(model, n, answer))
        store.append(StageRecord(model, "a", "prompts", 1.0, 100.0, None))
    return store


def reported(cli, store, tmp_path) -> str:
    """`sizebench report RUN` as a user runs it: exit 0 and the report's text."""
    code, out, err = cli("report", str(store.dir), "--results", str(tmp_path / "out"))
    assert code == 0, err
    return (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_line_and_paragraph_separators_in_answers_are_read_back(tmp_path, cli):
    """Item 1: 7 answers with U+2028, U+2029 or U+0085 per model: 7 read back (str.splitlines read 4), the stage
    stays done with its prompts, and the Ray tail sends them all."""
    store = new_run(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one line skipped
        rows = store.records()
        sent = RecordTail(store.records_path).new_rows()
    for model in MODELS:
        assert [r["answer"] for r in rows if r["kind"] == "prompt" and r["model"] == model] == ANSWERS
    assert sent == rows
    assert completed(rows) == {(m, "prompts") for m in MODELS}
    assert len(frames.load([store.dir])["prompt"]) == 2 * len(ANSWERS)
    assert "Madrid" in reported(cli, store, tmp_path)


def test_a_line_torn_inside_a_multibyte_character_loses_that_line_only(tmp_path, cli):
    """Item 2: a kill mid-write leaves half of 'á' at the end; the run is still read, reported and resumed, and the
    next append starts on a line of its own (it is not glued to the torn one)."""
    store = new_run(tmp_path)
    torn = json.dumps(prompt("dolly-v2-3b", 9, "Bogotá").to_row(), ensure_ascii=False).encode("utf-8")
    cut = torn.index("á".encode("utf-8")) + 1
    with store.records_path.open("ab") as handle:
        handle.write(torn[:cut])
    lines = store.records_path.read_bytes().count(b"\n")
    with pytest.warns(StoreWarning, match=f"skipped line {lines + 1}: not UTF-8"):
        assert len(store.records()) == 2 * (len(ANSWERS) + 2)
    store.append(StageRecord("minidolly-70m", "b", "tasks", 1.0, 100.0, None))
    with pytest.warns(StoreWarning, match=f"skipped line {lines + 1}:"):
        rows = store.records()
    assert rows[-1]["stage"] == "tasks" and ("minidolly-70m", "tasks") in completed(rows)
    with pytest.warns(StoreWarning, match=f"skipped line {lines + 1}:"):
        assert "Bogot" not in reported(cli, store, tmp_path)


def test_lone_surrogates_are_repaired_when_written_and_when_read(tmp_path, cli):
    """Item 3: an emoji split across two streamed events (a surrogate pair, joined), a lone half (U+FFFD, counted
    in a warning), and a hand-edited escape in the file: stored, read and reported."""
    store = new_run(tmp_path, ["Paris"])
    with pytest.warns(StoreWarning, match="1 lone surrogate"):
        store.append(prompt("minidolly-70m", 1, "smile \ud83d\ude00 and half \ud83d"))
    with store.records_path.open("a", encoding="utf-8") as handle:
        handle.write(
            json.dumps(prompt("dolly-v2-3b", 1, "edited \\ud800 by hand").to_row()).replace("\\\\ud800", "\\ud800")
            + "\n"
        )
    with pytest.warns(StoreWarning, match="line 8: 1 lone surrogate"):
        rows = store.records()
    answers = [r["answer"] for r in rows if r["kind"] == "prompt" and r["prompt_id"] == "p1"]
    assert answers == ["smile \U0001f600 and half \ufffd", "edited \ufffd by hand"]
    store.records_path.read_bytes().decode("utf-8")  # every stored byte is UTF-8
    with pytest.warns(StoreWarning, match="line 8: 1 lone surrogate"):
        assert "\ufffd" in reported(cli, store, tmp_path)


@pytest.mark.parametrize(
    "line",
    [
        "[1]",
        '{"kind": "vote"}',
        '"text"',
        '{"kind": "prompt", "model": 3}',
        "null",
        '{"kind": "no such kind", "model": "m", "attempt": "a"}',
    ],
)
def test_valid_json_that_is_not_a_record_is_skipped_with_its_line(tmp_path, cli, line):
    """Item 4: such a line anywhere in records.jsonl (a hand edit, another tool) is skipped with one warning naming
    it; the report, resume and the judging page still read the run."""
    store = new_run(tmp_path, ["Paris", "Lyon"])
    content = store.records_path.read_bytes().split(b"\n")
    content.insert(3, line.encode())
    store.records_path.write_bytes(b"\n".join(content))
    with pytest.warns(StoreWarning, match="skipped line 4") as caught:
        rows = store.records()
    assert len(caught) == 1 and len(rows) == 2 * 4
    assert completed(rows) == {(m, "prompts") for m in MODELS}
    store.append(VoteRecord("human", pairs.VOTES, "s1", "p0", MODELS[0], MODELS[1], "A", "ann"))
    with pytest.warns(StoreWarning):
        judging = Judging(store, pairs.items(frames.load([store.dir])))
    assert list(judging.votes) == ["s1"]
    with pytest.warns(StoreWarning):
        assert "Lyon" in reported(cli, store, tmp_path)


def test_replacing_a_file_fsyncs_it_and_its_folder(tmp_path, monkeypatch):
    """Item 5: run.json's new bytes reach the disk before the rename, and the rename before we go on (a power loss
    cannot leave it empty)."""
    store = RunStore.create(tmp_path, {"plan": {"models": []}})
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.write_meta({"plan": {"models": []}, "status": "complete"})
    assert len(synced) == 2 and synced[1] == str(store.dir)
    assert os.path.dirname(synced[0]) == str(store.dir) and synced[0].endswith(".tmp.json")
    assert store.meta()["status"] == "complete"


def test_a_damaged_run_json_is_one_line(tmp_path, cli):
    store = new_run(tmp_path, ["Paris"])
    (store.dir / "run.json").write_bytes(b"")
    code, _, err = cli("report", str(store.dir), "--results", str(tmp_path / "out"))
    assert code == 2 and "run.json is damaged" in err and len(err.strip().splitlines()) == 1


def test_a_raters_comment_with_a_lone_surrogate_is_kept_repaired_on_the_judging_page(tmp_path):
    """Item 3 on the judging page: the vote it keeps in memory (and sends back) is the one stored, repaired."""
    store = new_run(tmp_path, ["Paris", "Lyon"])
    judging = Judging(store, pairs.items(frames.load([store.dir])))
    with pytest.warns(StoreWarning, match="1 lone surrogate"):
        judging._append(VoteRecord("human", pairs.VOTES, "s1", "p0", MODELS[0], MODELS[1], "A", "ann", "half \ud83d"))
    assert judging.votes["s1"]["comment"] == "half \ufffd" == store.records()[-1]["comment"]
    json.dumps(judging.votes["s1"], ensure_ascii=False).encode("utf-8")
