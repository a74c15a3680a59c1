"""The stages, registered here by name in the order the worker runs them: the one line adding a stage touches
outside its own module. Each entry names the module whose `STAGE` (sizebench.stages.stage.Stage) it is and the
commands that run it; the module is imported when a plan is checked or the stage runs, so the names are known
without importing a model library."""

from __future__ import annotations

import importlib

from sizebench.errors import SizebenchError

STAGES = {
    "prompts": ("sizebench.stages.generation", ("compare", "bench")),
    "tasks": ("sizebench.stages.tasks_stage", ("eval", "bench")),
    "sweep": ("sizebench.stages.sweep", ("bench",)),
    "agreement": ("sizebench.stages.agreement_stage", ("bench",)),
}


def names() -> tuple[str, ...]:
    return tuple(STAGES)


def of_command(command: str) -> tuple[str, ...]:
    """The stages a command runs where its plan wants them (Stage.wanted)."""
    return tuple(name for name, (_, commands) in STAGES.items() if command in commands)


def check(chosen) -> None:
    """A plan's stages are registered ones (a stored plan's too)."""
    for name in chosen:
        if name not in STAGES:
            raise SizebenchError(f"invalid stage '{name}'; choose one of: {', '.join(STAGES)}")


def chosen(stages) -> list:
    """The Stage of each name in `stages`, in the registry's order."""
    check(stages)
    return [importlib.import_module(module).STAGE for name, (module, _) in STAGES.items() if name in stages]
