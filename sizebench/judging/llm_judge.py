"""Running an LLM judge over a run: every shown pair in both orders, in a worker process of its own.

The parent writes the identical answers' ties itself (nothing to judge), hands the rest to
`sizebench.judging.judge_worker`, shows its progress and stops it on any stop signal, as the sweep's
runner does for a rung. The judge is loaded as a rung is (any model expression, any engine), but its
load is not recorded as a rung's: the report's models stay the run's.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass

from rich.console import Console

from sizebench.analysis.preference import JUDGE_PREFIX
from sizebench.errors import SizebenchError
from sizebench.judging.pairs import VOTES, Item
from sizebench.launch import progress
from sizebench.system import supervise
from sizebench.planning.job import Job
from sizebench.specs.settings import LoadSettings
from sizebench.planning.registry import file_key
from sizebench.specs.models import ModelSpec
from sizebench.runstore.records import VoteRecord
from sizebench.runstore.store import RunStore
from sizebench.stages.events import Event


class JudgeFailed(SizebenchError):
    """The judge could not finish (its load or a judgement failed): not a usage error, exit 1."""


def source(spec: ModelSpec) -> str:
    return JUDGE_PREFIX + spec.name


@dataclass(frozen=True)
class Settings:
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None
    force: bool = False


def judgements(items: list[Item]) -> list[dict]:
    """Each item twice, the smaller model's answer first as A and then as B; ids stable across restarts."""
    out = []
    for item in items:
        for left, right in ((item.small, item.big), (item.big, item.small)):
            out.append(
                {
                    "screen": f"{item.prompt_id}|{left}|{right}",
                    "prompt_id": item.prompt_id,
                    "prompt": item.prompt,
                    "context": item.context,
                    "left": left,
                    "right": right,
                    "a": item.answer(left),
                    "b": item.answer(right),
                }
            )
    return out


def run(store: RunStore, items: list[Item], spec: ModelSpec, settings: Settings, console: Console) -> int:
    """Judge the run's items; returns how many judgements are stored for this judge."""
    name = source(spec)
    stored = {r["screen"] for r in store.records() if r["kind"] == "vote" and r["model"] == name}
    for item in items:
        screen = f"{item.prompt_id}|{item.small}|{item.big}"
        if item.identical and screen not in stored:
            store.append(
                VoteRecord(name, VOTES, screen, item.prompt_id, item.small, item.big, "tie", spec.name, identical=True)
            )
    todo = [j for j in judgements([i for i in items if not i.identical]) if j["screen"] not in stored]
    if not todo:  # all judged before: nothing to load the judge for
        return sum(1 for r in store.records() if r["kind"] == "vote" and r["model"] == name)
    attempt = uuid.uuid4().hex[:8]
    for folder in ("jobs", "logs"):
        (store.dir / folder).mkdir(exist_ok=True)
    stem = f"judge-{file_key(spec.name)}-{attempt}"
    job_path = store.dir / "jobs" / f"{stem}.json"
    job = Job(
        str(store.dir),
        spec,
        attempt,
        LoadSettings(settings.device, settings.dtype, settings.force, threads=settings.threads),
        judge={"source": name, "judgements": todo},
    )
    job_path.write_text(json.dumps(job.to_dict(), indent=1))
    log_path = store.dir / "logs" / f"{stem}.log"
    failure: list[str] = []
    too_long: list[str] = []

    def show(event: Event) -> None:
        if event.kind == "judging" and (event.done % 20 == 0 or event.done == event.total):
            console.print(f"judge {spec.name}: {event.done}/{event.total} judgements", highlight=False)
        elif event.kind == "loading":
            console.print(f"judge {spec.name}: loading", highlight=False)
        elif event.kind == "too_long":
            too_long.append(event.screen)
        elif event.kind == "failed":
            failure.append(event.reason or "")

    with log_path.open("w") as log:
        proc = supervise.start_worker(
            [sys.executable, "-m", "sizebench.judging.judge_worker", str(job_path)], stderr=log
        )
        try:
            progress.follow(proc, show)
            proc.wait()
        except BaseException:  # a stop signal, or an error of ours: the judge does not outlive it
            supervise.stop(proc)
            raise
    if too_long:
        console.print(
            f"judge {spec.name}: {len(too_long)} judgement(s) longer than its context window, not judged",
            highlight=False,
        )
    if proc.returncode != 0:
        reason = failure[0] if failure else f"the judge's worker exited with status {proc.returncode} (log: {log_path})"
        raise JudgeFailed(f"judge {spec.name} failed: {reason}; the judgements made so far are stored")
    return sum(1 for r in store.records() if r["kind"] == "vote" and r["model"] == name)
