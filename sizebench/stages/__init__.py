"""The stages, registered here by name in the order the worker runs them: the one line adding a stage touches
outside its own module. Each entry names the module whose `STAGE` (sizebench.stages.stage.Stage) it is; it is
imported when the stage runs, so the names are known without importing a model library."""

from __future__ import annotations

import importlib

from sizebench.errors import SizebenchError

STAGES = {
    "prompts": "sizebench.stages.generation",
    "tasks": "sizebench.stages.tasks_stage",
    "sweep": "sizebench.stages.sweep",
    "agreement": "sizebench.stages.agreement",
}
# The events that start a stage's clock under --timeout (sizebench.launch.supervise.follow): the worker's
# "loading", then each stage's own start event (sizebench.launch.worker.tracked).
CLOCKS = {"loading": "load", **{name: name for name in STAGES}}


def names() -> tuple[str, ...]:
    return tuple(STAGES)


def check(chosen) -> None:
    """A plan's stages are registered ones (a stored plan's too)."""
    for name in chosen:
        if name not in STAGES:
            raise SizebenchError(f"invalid stage '{name}'; choose one of: {', '.join(STAGES)}")


def get(name: str):
    check([name])
    return importlib.import_module(STAGES[name]).STAGE


def chosen(stages) -> list:
    """The Stage of each name in `stages`, in the registry's order."""
    check(stages)
    return [get(name) for name in STAGES if name in stages]
