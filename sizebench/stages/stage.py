"""What a stage is: a name, its run over one loaded model, and what its start event carries.

Each stage's module declares one `STAGE`; sizebench.stages registers them by name, in the order the worker runs
them. The worker runs each stage the job asks for inside one tracker (sizebench.launch.worker.tracked): the peaks
reset, the start event that starts the supervisor's clock, the stage timed and its StageRecord written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sizebench.planning.job import Job
from sizebench.runstore.store import RunStore


@dataclass(frozen=True)
class Context:
    """What the worker hands a stage: the loaded model (sizebench.engines.base.Session), the job, the run's store,
    this attempt's id, and its two lines to the runner: progress events, and the runner's answer after a chunk of
    --until-decided."""

    loaded: object
    job: Job
    store: RunStore
    attempt: str
    event: Callable[..., None]  # event(stage, **fields): one progress line for the runner, about this model
    ask: Callable[[str, int, int], str]  # ask(task, items done, population): "go" or why to stop

    @property
    def model(self) -> str:
        return self.loaded.spec.name


def _no_fields(ctx: Context) -> dict:
    return {}


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], None]
    start: Callable[[Context], dict] = _no_fields  # the start event's fields (the prompt stage: done 0 of total)
    before: Callable[[Context], None] | None = None  # work outside the stage's clock and peaks (the bandwidth)
