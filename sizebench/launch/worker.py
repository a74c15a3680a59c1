"""One model's work, in its own process: load, prompt suite, lm-eval tasks; records appended to the store.

Run as `python -m sizebench.launch.worker JOB.json`. Progress events go to stdout as JSON lines for the
parent's display; records go to the run store, each flushed, so a kill loses at most the stage in
flight. SIGTERM (the parent stopping us, or the parent's death) unwinds outside any record write.
Exit 0 when every stage finished, 4 when the model cannot be had here (unavailable), 3 for a
failure the worker could name, 130 when stopped, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import replace

from sizebench import stages
from sizebench.errors import UNAVAILABLE, MemoryGuardError, ModelUnavailable, SizebenchError
from sizebench.planning.job import Job
from sizebench.specs.models import ModelSpec
from sizebench.runstore.records import FailureRecord, StageRecord
from sizebench.runstore.store import RunStore
from sizebench.stages.events import Event
from sizebench.stages.stage import Context
from sizebench.weights import sources


def event(happened: Event) -> None:
    print(happened.to_json(), flush=True)


def go_offline_if_unreachable() -> None:
    """Decide before transformers and datasets are imported: they read these variables at import."""
    if not sources.hub_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"


def stop_between_records(signum, frame) -> None:
    """SIGTERM from the parent (any stop there) or at its death: unwind now; RunStore.append holds the
    signal while a record is written, so a record is whole or absent."""
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """SIGTERM (the parent stopping us, or its death through our watchdog, sizebench.system.supervise.Owned) and
    SIGHUP, unless ignored (nohup), unwind between records as Ctrl-C does."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, stop_between_records)


def start(job: Job) -> tuple[RunStore, ModelSpec]:
    """What every worker process does first: stop on signals between records, go offline where the hub is
    unreachable; then the job's store and model."""
    stop_on_signals()
    go_offline_if_unreachable()
    return RunStore(job.run_dir), job.model


def run(job: Job) -> int:
    store, spec = start(job)
    attempt = job.attempt
    stage = "load"
    loaded = None
    try:
        chosen = stages.chosen(job.stages)
        event(Event("loading", spec.name))
        loaded = load(spec, job, store, attempt)
        ctx = Context(
            loaded,
            job,
            store,
            attempt,
            lambda happened: event(replace(happened, model=spec.name)),
            lambda task, done, size: ask_runner(spec.name, task, done, size),
        )
        for each in chosen:
            stage = each.name
            if each.before is not None:
                each.before(ctx)
            with tracked(loaded, store, attempt, stage, each.start(ctx) if each.start else None):
                each.run(ctx)
        return 0
    except KeyboardInterrupt:
        event(Event("interrupted", spec.name))
        return 130
    except (ModelUnavailable, MemoryGuardError) as exc:
        store.append(FailureRecord(spec.name, attempt, stage, str(exc), unavailable=True))
        event(Event("unavailable", spec.name, reason=str(exc)))
        return UNAVAILABLE
    except SizebenchError as exc:
        store.append(FailureRecord(spec.name, attempt, stage, str(exc)))
        event(Event("failed", spec.name, reason=str(exc)))
        return 3
    except Exception as exc:  # anything else: keep the traceback in the log, one line in the store
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
        store.append(FailureRecord(spec.name, attempt, stage, reason))
        event(Event("failed", spec.name, reason=reason))
        return 1
    finally:
        if loaded is not None:
            loaded.close()  # a launched server stops here on every way out of the worker


def load(spec: ModelSpec, job: Job, store: RunStore, attempt: str):
    from sizebench import engines

    session = engines.get(spec.engine).load(spec, job.load_settings())
    try:
        store.append(replace(session.load_record(attempt), base_model=spec.base or spec.name))
    except BaseException:
        session.close()  # a launched server stops with the load that failed
        raise
    return session


@contextlib.contextmanager
def tracked(loaded, store: RunStore, attempt: str, stage: str, start: Event | None = None):
    """Every stage inside one tracker: the peaks reset, the start event (the stage's own `start`, else its bare
    name; it starts the supervisor's clock for the stage), the stage timed, and its StageRecord written when it
    finishes."""
    from sizebench.measurement import measure

    measure.reset_peak_rss()
    loaded.reset_cuda_peak()
    started = time.perf_counter()
    event(replace(start or Event(stage), model=loaded.spec.name))
    yield
    store.append(
        StageRecord(
            loaded.spec.name,
            attempt,
            stage,
            time.perf_counter() - started,
            loaded.peak_rss_mb(),
            loaded.cuda_peak_mb(),
            loaded.resident_weights_mb(),
        )
    )


def ask_runner(model: str, task: str, done: int, size: int) -> str:
    """After a chunk (its records stored): an event for the runner, then its answer, one line on stdin."""
    event(Event("chunk", model, task=task, done=done, total=size))
    line = sys.stdin.readline()
    if not line:
        raise SizebenchError(f"no answer from the runner after {done} items of {task} (its pipe closed)")
    return line.strip()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        sys.exit(run(Job.from_dict(json.load(handle))))
