"""What a stage is: a name, its run over one loaded model, what its start event carries, and what it asks of a
plan (whether the plan wants it, and the plan's settings it checks before any model loads).

Each stage's module declares one `STAGE`; sizebench.stages registers them by name, in the order the worker runs
them, with the commands that run them. The worker runs each stage the job asks for inside one tracker
(sizebench.launch.worker.tracked): the peaks reset, the start event that starts the supervisor's clock, the stage
timed and its StageRecord written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sizebench.planning.job import Job
from sizebench.planning.plan import RunPlan
from sizebench.specs.models import RANDOM
from sizebench.runstore.store import RunStore
from sizebench.stages.events import Event


@dataclass(frozen=True)
class Context:
    """What the worker hands a stage: the loaded model (sizebench.engines.base.Session), the job, the run's store,
    this attempt's id, and its two lines to the runner: progress events, and the runner's answer after a chunk of
    --until-decided."""

    loaded: object
    job: Job
    store: RunStore
    attempt: str
    event: Callable[[Event], None]  # one progress line for the runner; the worker names the model
    ask: Callable[[str, int, int], str]  # ask(task, items done, population): "go" or why to stop

    @property
    def model(self) -> str:
        return self.loaded.spec.name


def _always(plan: RunPlan) -> bool:
    return True


def _nothing_to_check(plan: RunPlan) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], None]
    start: Callable[[Context], Event] | None = None  # a start event with more than the name (prompts: 0 of total)
    before: Callable[[Context], None] | None = None  # work outside the stage's clock and peaks (the bandwidth)
    wanted: Callable[[RunPlan], bool] = _always  # False: a command's plan leaves the stage out (nothing to do)
    check: Callable[[RunPlan], None] = _nothing_to_check  # a bad setting of the stage's: SizebenchError, one line


def scored(plan: RunPlan) -> bool:
    """Some rung has real weights: a stage that scores answers has something to score (--weights random: cost
    only)."""
    return any(m.weights != RANDOM for m in plan.models)
