import json
import multiprocessing
import os
import threading

import pytest

from sizebench.runstore.records import FailureRecord, StageRecord
from sizebench.runstore.store import RunStore, completed


def test_truncated_last_line_is_ignored_with_a_warning_and_appends_continue(tmp_path):
    store = RunStore.create(tmp_path, {"plan": {"models": []}})
    store.append(StageRecord("m", "a1", "prompts", 1.0, 10.0, None))
    with store.records_path.open("a") as handle:
        handle.write('{"kind": "prompt", "model": "m", "att')  # a kill -9 mid-write
    with pytest.warns(UserWarning, match="skipped line 2: not JSON"):
        assert len(store.records()) == 1
    store.append(FailureRecord("m2", "a2", "load", "boom"))
    with pytest.warns(UserWarning):
        rows = store.records()
    assert [r["kind"] for r in rows] == ["stage", "failed"]
    assert completed(rows) == {("m", "prompts")}


def test_unwritable_results_folder_is_a_clear_error(tmp_path):
    from sizebench.errors import SizebenchError

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SizebenchError, match="cannot be written"):
        RunStore.create(blocker, {})


def test_open_unknown_run(tmp_path):
    from sizebench.errors import SizebenchError

    with pytest.raises(SizebenchError, match="run 'nope' does not exist"):
        RunStore.open(tmp_path, "nope")


STAMP = "20261123-120000"


def _create_in_the_same_second(results, barrier, out):
    """One sweep's start, in a child process: every child claims a run folder at the same stamp, on a
    slow filesystem (a shared NFS results folder): each mkdir takes 50 ms."""
    import pathlib
    import time

    import sizebench.runstore.store

    sizebench.runstore.store.time.strftime = lambda fmt: STAMP
    mkdir = pathlib.Path.mkdir

    def slow_mkdir(self, *args, **kwargs):
        time.sleep(0.05)
        return mkdir(self, *args, **kwargs)

    pathlib.Path.mkdir = slow_mkdir
    barrier.wait()
    try:
        out.put(RunStore.create(results, {"who": os.getpid()}).run_id)
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        out.put(f"error: {exc!r}")


@pytest.mark.long
def test_sweeps_started_in_the_same_second_keep_separate_runs_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 8
    for round_ in range(3):
        results = tmp_path / f"r{round_}"
        barrier, out = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_create_in_the_same_second, args=(results, barrier, out)) for _ in range(n)]
        for proc in procs:
            proc.start()
        ids = [out.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        assert not [i for i in ids if i.startswith("error")], ids
        assert sorted(ids) == sorted([STAMP] + [f"{STAMP}-{k}" for k in range(2, n + 1)])
        owners = {json.loads((results / "runs" / i / "run.json").read_text())["who"] for i in ids}
        assert len(owners) == n  # each folder holds its own sweep's run.json


def test_sweeps_started_in_the_same_second_keep_separate_runs_threads(tmp_path, monkeypatch):
    monkeypatch.setattr("sizebench.runstore.store.time.strftime", lambda fmt: STAMP)
    n = 8
    barrier = threading.Barrier(n)
    ids, errors = [], []

    def start(who):
        barrier.wait()
        try:
            ids.append(RunStore.create(tmp_path, {"who": who}).run_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=start, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(ids)) == n
    assert {json.loads((tmp_path / "runs" / i / "run.json").read_text())["who"] for i in ids} == set(range(n))


def test_latest_is_the_last_claimed_even_past_ten_in_one_second(tmp_path):
    runs = tmp_path / "runs"
    for name in ["20261123-184633", *(f"20261123-184633-{n}" for n in range(2, 12)), "20261123-090000-3"]:
        (runs / name).mkdir(parents=True)
        (runs / name / "run.json").write_text("{}")
    assert RunStore.latest(tmp_path).dir.name == "20261123-184633-11"
    (runs / "20261124-000000").mkdir()
    (runs / "20261124-000000" / "run.json").write_text("{}")
    assert RunStore.latest(tmp_path).dir.name == "20261124-000000"


def _rewrite_meta(run_dir, who, rounds, out):
    """One sweep rewriting the run's run.json (as a resumed sweep does), in a child process."""
    try:
        for n in range(rounds):
            RunStore(run_dir).write_meta({"who": who, "n": n, "plan": {"models": []}, "padding": "x" * 20_000})
        out.put("ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        out.put(f"error: {exc!r}")


def test_concurrent_meta_writes_never_leave_a_partial_or_missing_run_json(tmp_path):
    store = RunStore.create(tmp_path, {"plan": {"models": []}})
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    writers = [ctx.Process(target=_rewrite_meta, args=(store.dir, who, 300, out)) for who in range(2)]
    for proc in writers:
        proc.start()
    seen = []
    while any(proc.is_alive() for proc in writers):
        try:
            seen.append(store.meta().get("n", -1))
        except (OSError, ValueError) as exc:
            seen.append(f"unreadable: {exc!r}")
    results = [out.get(timeout=60) for _ in writers]
    for proc in writers:
        proc.join(timeout=60)
    assert results == ["ok", "ok"]
    assert not [s for s in seen if isinstance(s, str)][:3]
    assert store.meta()["n"] == 299 and sorted(p.name for p in store.dir.iterdir()) == ["records.jsonl", "run.json"]


def test_a_record_class_registers_its_kind_and_its_stage_by_being_defined(tmp_path):
    """The one registration point for record kinds: defining the class. frames then has a table for it,
    and a stage's rows are superseded with the stage's finishing attempt."""
    from dataclasses import dataclass

    from sizebench.runstore import frames, records
    from sizebench.runstore.store import RunStore, kind_stage

    @dataclass(frozen=True)
    class NoteRecord(records.Record):
        text: str
        kind = "test_note"
        written_in = "prompts"

    try:
        assert records.KINDS["test_note"] is NoteRecord and kind_stage()["test_note"] == "prompts"
        store = RunStore.create(tmp_path, {"plan": {"models": []}})
        store.append(NoteRecord("m", "a1", "first try"))
        store.append(NoteRecord("m", "a2", "second try"))
        store.append(records.StageRecord("m", "a2", "prompts", 1.0, 1.0, None))
        table = frames.load([store.dir])["test_note"]
        assert list(table["text"]) == ["second try"]
    finally:
        records.KINDS.pop("test_note", None)
