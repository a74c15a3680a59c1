"""Runs a plan: one worker process per model, records on disk, failures named, resume by stage.

The parent never loads a model. It starts each worker, shows its progress events, and after the
worker exits checks the exit code: a worker that died without saying why (SIGKILL from the OOM
killer, a segfault) gets a failure record written for it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from sizebench import stages
from sizebench.analysis import sequential
from sizebench.launch import progress
from sizebench.system import supervise
from sizebench.planning import references
from sizebench.planning.job import Job, make_job
from sizebench.planning.plan import RunPlan, environment
from sizebench.runstore.records import FailureRecord
from sizebench.runstore.store import RunStore, completed, item_texts
from sizebench.stages.events import Event
from sizebench.system.supervise import Interrupted, TimedOut
from sizebench.errors import UNAVAILABLE

__all__ = ["Interrupted", "TimedOut", "Outcome", "LocalExecutor", "execute", "new_run"]


@dataclass
class Outcome:
    run_id: str
    failed: list[str]  # loaded or started, then crashed: a retry (--resume) may change that
    interrupted: bool = False
    unavailable: list[str] = field(default_factory=list)  # cannot be had here; not an error by itself
    signum: int = signal.SIGINT  # what interrupted the run: the exit status is 128 + it (130, 143, 129)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.interrupted else (1 if self.failed else 0)


class LocalExecutor:
    """Each model in a child process on this machine, in its own session so Ctrl-C reaches only us."""

    def run(self, job: Job, store: RunStore, on_event) -> tuple[int, str]:
        jobs, logs = store.dir / "jobs", store.dir / "logs"
        jobs.mkdir(exist_ok=True)
        logs.mkdir(exist_ok=True)
        job_path = jobs / f"{job.stem}.json"
        job_path.write_text(json.dumps(job.to_dict(), indent=1))
        log_path = logs / f"{job.stem}.log"
        with log_path.open("w") as log:
            proc = supervise.start_worker(self.command(job_path), stderr=log, stdin=subprocess.PIPE)
            try:
                ran_out = _follow(proc, answering(proc, on_event), job.timeout)
            finally:
                with contextlib.suppress(OSError):  # a worker gone with an answer unread
                    proc.stdin.close()
        if ran_out:
            raise TimedOut(ran_out, job.timeout)
        return proc.returncode, _last_line(log_path)

    def command(self, job_path: Path) -> list[str]:
        return [sys.executable, "-m", "sizebench.launch.worker", str(job_path)]


def answering(proc, on_event):
    """on_event, whose answer (after a chunk of --until-decided) goes to the worker's stdin; a worker gone since
    is not an error here (its exit status says what happened)."""

    def handle(event: Event) -> None:
        reply = on_event(event)
        if reply is not None:
            try:
                proc.stdin.write(reply + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    return handle


def _follow(proc, on_event, limit: float | None) -> str | None:
    """Events until the worker ends; any stop signal to us stops it first (SIGTERM, SIGKILL after a grace)."""
    try:
        ran_out = progress.follow(proc, on_event, limit)
        proc.wait()
        return ran_out
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP through supervise.stop_signals
        supervise.stop(proc)
        raise Interrupted(supervise.signum_of(exc)) from None
    except BaseException:  # an error of ours while following: the worker does not outlive it
        supervise.stop(proc)
        raise


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def death_reason(returncode: int, log_tail: str) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with status {returncode}: {log_tail or 'no output'}"


def new_run(plan: RunPlan, results_dir: Path, command: str) -> RunStore:
    return RunStore.create(results_dir, {"command": command, "plan": plan.to_dict(), "environment": environment()})


def execute(plan: RunPlan, store: RunStore, console: Console, executor=None) -> Outcome:
    stages.check(plan.stages)
    executor = executor or make_executor(plan)
    progress = ProgressLog(console, len(plan.models))
    done = completed(store.records())
    outcome = Outcome(store.run_id, [])
    mapping = _agreement_plan(plan, console)
    try:
        for index, wanted in schedule(plan, mapping):
            spec = plan.models[index - 1]
            todo = [s for s in wanted if (spec.name, s) not in done and (s != "agreement" or spec.name in mapping)]
            if not todo:
                progress.line(index, spec.name, "already complete, skipped")
                continue
            try:
                status = _run_model(
                    plan,
                    spec,
                    todo,
                    store,
                    executor,
                    lambda e, i=index: progress.event(i, e),
                    references.job(spec.name, mapping),
                )
            except (Interrupted, KeyboardInterrupt) as exc:  # KeyboardInterrupt: a signal outside the worker
                outcome.interrupted, outcome.signum = True, supervise.signum_of(exc)
                progress.line(
                    index, spec.name, f"interrupted by {signal.Signals(outcome.signum).name}; finished records are kept"
                )
                break
            if status == "ok":
                progress.line(index, spec.name, "done" + _skipped_note(store, spec.name))
            elif status == "unavailable":
                outcome.unavailable.append(spec.name)
            else:
                outcome.failed.append(spec.name)
    finally:
        progress.close()
    meta = store.meta()
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    meta["status"] = "interrupted" if outcome.interrupted else ("failed" if outcome.failed else "complete")
    if outcome.unavailable:
        meta["unavailable"] = sorted(set(meta.get("unavailable", [])) | set(outcome.unavailable))
    store.write_meta(meta)
    return outcome


def schedule(plan: RunPlan, mapping: dict[str, str]) -> list[tuple[int, tuple[str, ...]]]:
    """(plan index from 1, stages) per worker, in order. With --until-decided the baseline's tasks run after every
    other rung's, since the runner decides each chunk against their outcomes: the baseline goes last, or, where the
    agreement stage needs it first as a reference, its tasks alone go last in a worker of their own."""
    order = [i + 1 for i in references.run_order(plan.models, mapping)]
    if not (plan.eval.until_decided and "tasks" in plan.stages):
        return [(i, plan.stages) for i in order]
    chunked = plan.models.index(next(m for m in plan.models if m.name == chunked_rung(plan))) + 1
    if plan.models[chunked - 1].name not in set(mapping.values()):
        return [(i, plan.stages) for i in order if i != chunked] + [(chunked, plan.stages)]
    rest = tuple(s for s in plan.stages if s != "tasks")
    return [(i, rest if i == chunked else plan.stages) for i in order] + [(chunked, ("tasks",))]


def chunked_rung(plan: RunPlan) -> str:
    return sequential.baseline_rung(plan.models, plan.eval.baseline)


def _skipped_note(store: RunStore, model: str) -> str:
    """' (2 task(s) skipped: a, b; ...)' when lm-eval tasks of this model were skipped; the reasons follow the
    terminal's summary table."""
    skipped = sorted({r["task"] for r in store.records() if r["kind"] == "task_skipped" and r["model"] == model})
    if not skipped:
        return ""
    return f" ({len(skipped)} task(s) skipped: {', '.join(skipped)}; why: below the summary)"


def _agreement_plan(plan: RunPlan, console: Console) -> dict[str, str]:
    """Each taking part rung's reference, where the run has the agreement stage (local executor only: the
    reference's distributions are a file in the run folder, which a Ray task's scratch store does not share)."""
    if "agreement" not in plan.stages:
        return {}
    if plan.executor == "ray":
        console.print("agreement stage skipped: it runs on the local executor only", highlight=False)
        return {}
    return references.references(plan.models, plan.dtype, plan.reference)


def _run_model(
    plan: RunPlan, spec, todo: list[str], store: RunStore, executor, show, agreement_job: dict | None = None
) -> str:
    """One model's worker: "ok", "unavailable" or "failed". A worker that died without naming why gets
    a failure record here."""
    attempt = uuid.uuid4().hex[:8]
    job = make_job(
        plan,
        spec,
        store.dir,
        attempt,
        todo,
        item_texts(store.records()),
        agreement_job,
        plan.eval.until_decided and spec.name == chunked_rung(plan),
    )
    seen = {"stage": "load"}

    def on_event(event: Event) -> str | None:
        seen["stage"] = event.clock or seen["stage"]  # a stage, not a sub-event
        show(event)
        if event.kind == "chunk":  # the worker waits for this answer: go on, or why to stop
            return sequential.answer(store.dir, event.task, event.done, plan.eval)
        return None

    try:
        returncode, tail = executor.run(job, store, on_event)
    except TimedOut as exc:
        return _timed_out(spec.name, attempt, exc, store, show)
    except (Interrupted, KeyboardInterrupt) as exc:  # the rung in progress says so, not "ok" with half a stage
        name = signal.Signals(supervise.signum_of(exc)).name
        store.append(
            FailureRecord(
                spec.name, attempt, seen["stage"], f"stopped by {name}; --resume finishes it", interrupted=True
            )
        )
        raise
    if returncode == 0:
        return "ok"
    if returncode == UNAVAILABLE:
        return "unavailable"
    if not any(r["kind"] == "failed" and r["attempt"] == attempt for r in store.records()):
        reason = death_reason(returncode, tail)
        store.append(FailureRecord(spec.name, attempt, seen["stage"], reason))
        show(Event("failed", spec.name, reason=reason))
    return "failed"


def _timed_out(model: str, attempt: str, exc: TimedOut, store: RunStore, show) -> str:
    """The worker was stopped at --timeout: what it finished stays, the model is failed with the reason."""
    store.append(FailureRecord(model, attempt, exc.stage, str(exc)))
    show(Event("failed", model, reason=str(exc)))
    return "failed"


def make_executor(plan: RunPlan):
    if plan.executor == "ray":
        from sizebench.launch.ray_executor import RayExecutor

        return RayExecutor(plan.ray_address)
    return LocalExecutor()


class ProgressLog:
    """Models done/left, the current stage and elapsed time: a live line on a terminal, plain lines
    otherwise (CI logs); milestones (a model done or failed) are printed as lines in both cases."""

    def __init__(self, console: Console, total: int):
        self.console, self.total, self.started = console, total, time.monotonic()
        self.last_stage: tuple[int, str] | None = None
        self.live = None
        if console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.live = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("models"),
                TimeElapsedColumn(),
                console=console,
            )
            self.bar = self.live.add_task("starting", total=total)
            self.live.start()

    def line(self, index: int, model: str, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(
            f"[{index}/{self.total}] {model}: {text}  ({elapsed:.0f}s)", highlight=False, markup=False, soft_wrap=True
        )  # one line each, whatever the terminal's width
        if self.live and text.startswith(("done", "failed", "unavailable", "already complete")):
            self.live.advance(self.bar)

    def event(self, index: int, event: Event) -> None:
        stage = event.kind
        if stage in ("failed", "unavailable"):
            self.line(index, event.model, f"{stage}: {event.reason}")
            return
        if stage == "prompt_skipped":
            self.line(index, event.model, f"prompt {event.prompt_id} skipped: {event.reason}")
            return
        text = (
            f"prompts {event.done}/{event.total}"
            if stage == "prompts"
            else (f"{stage}: {event.level}" if event.level is not None else stage)
        )
        if stage == "chunk":
            text = f"{event.task}: {event.done}/{event.total} items"
        if self.live:
            self.live.update(self.bar, description=f"{event.model}: {text}")
        elif (
            (index, stage) != self.last_stage or stage != "prompts" or event.done % 10 == 0 or event.done == event.total
        ):
            self.line(index, event.model, text)
        self.last_stage = (index, stage)

    def close(self) -> None:
        if self.live:
            self.live.stop()
