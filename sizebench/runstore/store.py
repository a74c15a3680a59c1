"""The run store: one folder per run, `run.json` beside an append-only `records.jsonl`.

Workers append one flushed line per record; readers tolerate a last line cut short by a kill.
Everything downstream (report, resume) reads only these files.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from sizebench.runstore import atomic
from sizebench.errors import SizebenchError
from sizebench.runstore.records import Record

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
        return json.loads((self.dir / META).read_text(encoding="utf-8"))

    def write_meta(self, meta: dict) -> None:
        atomic.write_text(self.dir / META, json.dumps(meta, indent=2, ensure_ascii=False) + "\n")

    def append(self, record: Record) -> None:
        self.append_line(record.to_json())

    def append_line(self, line: str) -> None:
        with hold_signals(), self.records_path.open("ab+") as handle:
            # A kill -9 mid-write leaves a line without its newline: start on a fresh line after it.
            if handle.seek(0, os.SEEK_END) > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
            handle.write(line.encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict]:
        if not self.records_path.exists():
            return []
        rows = []
        for number, line in enumerate(self.records_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                warnings.warn(f"{self.records_path}: ignored a truncated or damaged record on line {number}",
                              stacklevel=2)
        return rows


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
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if callable(signal.getsignal(s))}
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


def current(records: list[dict], kind: str, model: str) -> list[dict]:
    """One model's rows of a kind, from the attempt that finished their stage (else its latest attempt)."""
    from sizebench.runstore.records import KINDS

    stage = KINDS[kind].written_in
    finished = [r["attempt"] for r in records if r["kind"] == "stage" and r["model"] == model and r["stage"] == stage]
    rows = [r for r in records if r["kind"] == kind and r["model"] == model]
    attempt = finished[-1] if finished else (rows[-1]["attempt"] if rows else None)
    return [r for r in rows if r["attempt"] == attempt]
