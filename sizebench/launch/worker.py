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

from sizebench.weights import sources
from sizebench.errors import UNAVAILABLE, MemoryGuardError, ModelUnavailable, SizebenchError
from sizebench.runstore.records import FailureRecord, StageRecord
from sizebench.planning.registry import ModelSpec
from sizebench.runstore.store import RunStore, item_texts



def event(**fields) -> None:
    print(json.dumps(fields), flush=True)


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
    """SIGTERM (the parent stopping us, or its death through our watchdog, sizebench.launch.supervise.Owned) and
    SIGHUP, unless ignored (nohup), unwind between records as Ctrl-C does."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, stop_between_records)


def start(job: dict) -> tuple[RunStore, ModelSpec]:
    """What every worker process does first: stop on signals between records, go offline where the hub is
    unreachable; then the job's store and model."""
    stop_on_signals()
    go_offline_if_unreachable()
    return RunStore(job["run_dir"]), ModelSpec.from_dict(job["model"])


def run(job: dict) -> int:
    store, spec = start(job)
    attempt = job["attempt"]
    stage = "load"
    loaded = None
    try:
        event(model=spec.name, stage="loading")
        loaded = load(spec, job, store, attempt)
        if "prompts" in job["stages"]:
            stage = "prompts"
            bandwidth_once(loaded, store, attempt)
            prompts_stage(loaded, job, store, attempt)
        if "tasks" in job["stages"]:
            stage = "tasks"
            tasks_stage(loaded, job, store, attempt)
        if "sweep" in job["stages"]:
            stage = "sweep"
            sweep_stage(loaded, job, store, attempt)
        if "agreement" in job["stages"]:
            stage = "agreement"
            agreement_stage(loaded, job, store, attempt)
        return 0
    except KeyboardInterrupt:
        event(model=spec.name, stage="interrupted")
        return 130
    except (ModelUnavailable, MemoryGuardError) as exc:
        store.append(FailureRecord(spec.name, attempt, stage, str(exc), unavailable=True))
        event(model=spec.name, stage="unavailable", reason=str(exc))
        return UNAVAILABLE
    except SizebenchError as exc:
        store.append(FailureRecord(spec.name, attempt, stage, str(exc)))
        event(model=spec.name, stage="failed", reason=str(exc))
        return 3
    except Exception as exc:  # anything else: keep the traceback in the log, one line in the store
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
        store.append(FailureRecord(spec.name, attempt, stage, reason))
        event(model=spec.name, stage="failed", reason=reason)
        return 1
    finally:
        if loaded is not None:
            loaded.close()  # a launched server stops here on every way out of the worker


def load(spec: ModelSpec, job: dict, store: RunStore, attempt: str):
    from sizebench import engines

    session = engines.get(spec.engine).load(spec, job)
    try:
        store.append(session.load_record(attempt))
    except BaseException:
        session.close()  # a launched server stops with the load that failed
        raise
    return session


def bandwidth_once(loaded, store: RunStore, attempt: str) -> None:
    """The run's memory bandwidth on this rung's device (its decode's limit), where no rung before measured it."""
    from dataclasses import asdict

    from sizebench.measurement import bandwidth
    from sizebench.runstore.records import BandwidthRecord

    if loaded.device not in bandwidth.DEVICES or any(
            r["kind"] == "bandwidth" and r["device"] == loaded.device for r in store.records()):
        return
    copy_bytes = bandwidth.fitting_copy_bytes(loaded.device)
    if copy_bytes:
        event(model=loaded.spec.name, stage="bandwidth")
        store.append(BandwidthRecord(loaded.spec.name, attempt, **asdict(bandwidth.measure(loaded.device, copy_bytes))))


@contextlib.contextmanager
def tracked(loaded, store: RunStore, attempt: str, stage: str, **start):
    """Every stage inside one tracker: the peaks reset, the start event (which starts the supervisor's clock for
    the stage), the stage timed, and its StageRecord written when it finishes."""
    from sizebench.measurement import measure

    measure.reset_peak_rss()
    measure.reset_cuda_peak(loaded.device)
    started = time.perf_counter()
    event(model=loaded.spec.name, stage=stage, **start)
    yield
    store.append(StageRecord(loaded.spec.name, attempt, stage, time.perf_counter() - started,
                             loaded.peak_rss_mb(), measure.cuda_peak_mb(loaded.device),
                             loaded.resident_weights_mb()))


def prompts_stage(loaded, job: dict, store: RunStore, attempt: str) -> None:
    from sizebench.stages import generation
    from sizebench.stages.suites import load_suite

    suite = load_suite(job["prompts_path"])
    settings = generation.GenSettings(**job["gen"])
    name = loaded.spec.name

    def emit(record) -> None:
        store.append(record)
        if record.kind == "prompt_skipped":
            event(model=name, stage="prompt_skipped", prompt_id=record.prompt_id, reason=record.reason)

    with tracked(loaded, store, attempt, "prompts", done=0, total=len(suite.prompts)):
        _prompts(loaded, suite, settings, attempt, store, emit)


def _prompts(loaded, suite, settings, attempt: str, store: RunStore, emit) -> None:
    from sizebench.measurement import energy
    from sizebench.runstore.records import EnergyRecord
    from sizebench.stages import generation

    name = loaded.spec.name
    meter = energy.Meter(loaded.device)
    singles = generation.run_prompts(
        loaded, suite.prompts, settings, attempt, emit,
        lambda done, total: event(model=name, stage="prompts", done=done, total=total), meter,
    )
    if meter.joules is not None and singles:  # only where NVML or RAPL could be read; else "not measured"
        tokens = sum(r.new_tokens * len(r.latency_s_runs) for r in singles)
        store.append(EnergyRecord(name, attempt, "prompts", meter.joules, tokens, meter.source))
    ran = {r.prompt_id for r in singles}
    if settings.batch_size > 1 and singles:
        event(model=name, stage="batched")
        batched = loaded.batched_throughput(tuple(p for p in suite.prompts if p.id in ran), settings, attempt, singles)
        if batched is not None:  # an engine that does not batch in process measures single streams only
            store.append(batched)


def tasks_stage(loaded, job: dict, store: RunStore, attempt: str) -> None:
    from sizebench.stages import evaluation

    settings = evaluation.EvalSettings(**job["eval"])
    with tracked(loaded, store, attempt, "tasks"):
        why_not = loaded.tasks_unavailable()  # an endpoint that cannot score prompts: skipped, never at chance level
        if why_not:
            from sizebench.runstore.records import SkipRecord

            for task in evaluation.expand(settings.tasks):
                store.append(SkipRecord(loaded.spec.name, attempt, task, why_not))
            return
        texts_done = frozenset(job.get("texts_done", ())) | item_texts(store.records())  # once per run
        if settings.until_decided and job.get("chunked"):
            from sizebench.stages import sequential

            sequential.run(loaded, loaded.spec.name, settings, attempt, store.append,
                           lambda task, done, size: ask_runner(loaded.spec.name, task, done, size), texts_done)
        else:
            evaluation.run_tasks(loaded, loaded.spec.name, settings, attempt, store.append, texts_done)


def ask_runner(model: str, task: str, done: int, size: int) -> str:
    """After a chunk (its records stored): an event for the runner, then its answer, one line on stdin."""
    event(model=model, stage="chunk", task=task, done=done, total=size)
    line = sys.stdin.readline()
    if not line:
        raise SizebenchError(f"no answer from the runner after {done} items of {task} (its pipe closed)")
    return line.strip()


def sweep_stage(loaded, job: dict, store: RunStore, attempt: str) -> None:
    from sizebench.stages import sweep

    with tracked(loaded, store, attempt, "sweep"):
        sweep.run_sweep(loaded, job, attempt, store.append,
                        lambda text: event(model=loaded.spec.name, stage="sweep", level=text))


def agreement_stage(loaded, job: dict, store: RunStore, attempt: str) -> None:
    from pathlib import Path

    from sizebench.stages import agreement

    with tracked(loaded, store, attempt, "agreement"):
        agreement.run(loaded, job["agreement"], Path(job["run_dir"]), own_answers(loaded.spec.name, job, store),
                      store.append, attempt)


def own_answers(name: str, job: dict, store: RunStore) -> list:
    """(prompt, answer) of this model's finished prompt stage, in suite order; none without a suite."""
    from sizebench.runstore.store import current
    from sizebench.stages.suites import load_suite

    if not job.get("prompts_path"):
        return []
    answers = {r["prompt_id"]: r["answer"] for r in current(store.records(), "prompt", name)}
    return [(p, answers[p.id]) for p in load_suite(job["prompts_path"]).prompts if answers.get(p.id)]


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        sys.exit(run(json.load(handle)))
