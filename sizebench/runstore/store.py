"""The run store: one folder per run, `run.json` beside an append-only `records.jsonl`.

Workers append one fsynced line per record; a line that is torn or not a record is skipped on reading
(sizebench.runstore.jsonl, the one reader and writer of record files).
Everything downstream (report, resume) reads only these files.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from sizebench.runstore import jsonl
from sizebench.system import atomic
from sizebench.errors import SizebenchError
from sizebench.runstore.records import KINDS, Record

RECORDS = "records.jsonl"
META = "run.json"


class RunStore:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.records_path = self.dir / RECORDS

    @property
    def run_id(self) -> str:
        return self.dir.name

    @classmethod
    def create(cls, results_dir: Path, meta: dict) -> "RunStore":
        runs = Path(results_dir) / "runs"
        try:
            runs.mkdir(parents=True, exist_ok=True)
            store = cls(_claim(runs, time.strftime("%Y%m%d-%H%M%S")))
        except OSError as exc:
            raise SizebenchError(f"results folder '{results_dir}' cannot be written: {exc.strerror}") from exc
        store.write_meta({"run_id": store.run_id, **meta})
        store.records_path.touch()
        return store

    @classmethod
    def open(cls, results_dir: Path, run: str) -> "RunStore":
        """A run by id (under results/runs) or by folder path."""
        for candidate in (Path(run), Path(results_dir) / "runs" / run):
            if (candidate / META).is_file():
                return cls(candidate)
        raise SizebenchError(f"run '{run}' does not exist under {Path(results_dir) / 'runs'}")

    @classmethod
    def latest(cls, results_dir: Path) -> "RunStore":
        runs = sorted((p for p in (Path(results_dir) / "runs").glob("*") if (p / META).is_file()), key=started_order)
        if not runs:
            raise SizebenchError(f"no runs under {Path(results_dir) / 'runs'}; run `sizebench bench` first")
        return cls(runs[-1])

    def meta(self) -> dict:
        path = self.dir / META
        try:
            meta = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise SizebenchError(
                f"{path} is damaged ({type(exc).__name__}); the run's records are in {RECORDS}"
            ) from None
        if not isinstance(meta, dict):
            raise SizebenchError(f"{path} is damaged (a JSON {type(meta).__name__}, not the run's description)")
        return meta

    def write_meta(self, meta: dict) -> None:
        atomic.write_text(
            self.dir / META, json.dumps(jsonl.repair(meta, str(self.dir / META)), indent=2, ensure_ascii=False) + "\n"
        )

    def append(self, record: Record) -> dict:
        """The record appended; returns its row as stored (strings repaired)."""
        return self.append_rows([record.to_row()])[0]

    def append_rows(self, rows: list[dict]) -> list[dict]:
        """Whole lines (sizebench.runstore.jsonl), each a record or absent even when a stop signal comes."""
        with hold_signals():
            return jsonl.append(self.records_path, rows)

    def records(self) -> list[dict]:
        return jsonl.read(self.records_path)


def started_order(run_dir: Path) -> tuple[str, int]:
    """stamp, stamp-2, ..., stamp-10: by stamp, then by the number _claim added (not as text)."""
    stamp, _, n = run_dir.name.rpartition("-")
    return (stamp, int(n)) if stamp and n.isdigit() and len(n) < 6 else (run_dir.name, 1)


def _claim(runs: Path, stamp: str) -> Path:
    """A new run folder, claimed by mkdir itself: two sweeps started in the same second get stamp and stamp-2."""
    for n in range(1, 10_000):
        run_dir = runs / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise SizebenchError(f"{runs} already holds 10,000 runs started at {stamp}")


@contextmanager
def hold_signals():
    """A stop signal that arrives while a record is written is handled once the line is whole.

    Python runs signal handlers in the main thread between bytecodes; here they only note the signal,
    which is raised again, to the usual handler, after the write. Signals whose handler is not Python's
    (SIG_DFL, SIG_IGN) are left alone, as is any thread but the main one (handlers never run there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: held.append(signum))
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        if callable(signal.getsignal(s))
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in held:
            signal.raise_signal(signum)


def item_texts(records: list[dict]) -> set[str]:
    """Tasks whose item texts the run holds: written once per run, by the first model that ran the task."""
    return {r["task"] for r in records if r["kind"] == "item_text"}


def completed(records: list[dict]) -> set[tuple[str, str]]:
    """(model, stage) pairs whose stage record was written."""
    return {(r["model"], r["stage"]) for r in records if r["kind"] == "stage"}


def kind_stage() -> dict[str, str]:
    """Record kind -> the stage whose finishing attempt supersedes its rows, from the record classes.
    item_text is written once per run (by the first model) and kept whatever happens to that stage."""
    return {kind: cls.written_in for kind, cls in KINDS.items() if cls.written_in}


def counted(records: list[dict]) -> list[dict]:
    """The records of one run that count, in order: which attempt's records count, decided here only.

    A row written in a stage (its class's `written_in`) counts from the model's attempt that finished that
    stage, else from the model's latest attempt that wrote into that stage; any other kind from the latest
    attempt that wrote that kind (the latest load). Stage records all count; a failure only from the model's
    latest attempt (a failure since redone does not)."""
    written_in = kind_stage()
    finished, last_in_group, latest = {}, {}, {}
    for r in records:
        if r["kind"] == "stage":
            finished[(r["model"], r["stage"])] = r["attempt"]
        last_in_group[(r["model"], written_in.get(r["kind"], r["kind"]))] = r["attempt"]
        latest[r["model"]] = r["attempt"]

    def counts(r: dict) -> bool:
        if r["kind"] == "stage":
            return True
        if r["kind"] == "failed":
            return r["attempt"] == latest[r["model"]]
        key = (r["model"], written_in.get(r["kind"], r["kind"]))
        return r["attempt"] == finished.get(key, last_in_group[key])

    return [r for r in records if counts(r)]


def current(records: list[dict], kind: str, model: str) -> list[dict]:
    """One model's rows of a kind that count (counted)."""
    return [r for r in counted(records) if r["kind"] == kind and r["model"] == model]
