"""The runner's answer after each chunk of `--until-decided`, from the stored records alone.

A task goes on while any rung the fixed sequence tests is undecided (its confidence sequence still holds the
margin); it stops when none is ("decided": a decision, once made, stays, since the sequence only narrows), or at
--max-items or --max-seconds. Rungs larger than the baseline are compared, never tested, so they never hold it up.
"""

from __future__ import annotations

from pathlib import Path

from sizebench.analysis import verdict
from sizebench.analysis.fixed_sequence import UNDECIDED
from sizebench.runstore import frames

GO = "go"
DECIDED = "decided"


def answer(run_dir: Path, task: str, done: int, settings) -> str:
    """ "go", or why the baseline stops on `task` after `done` items (settings: the run's EvalSettings)."""
    fr = frames.load([run_dir])
    if settings.max_items is not None and done >= settings.max_items:
        return f"--max-items {settings.max_items}"
    chunks = fr["chunk"]
    spent = float(chunks.loc[chunks["task"] == task, "wall_s"].sum()) if not chunks.empty else 0.0
    if settings.max_seconds is not None and spent >= settings.max_seconds:
        return f"--max-seconds {settings.max_seconds:g}"
    order, size_axis = verdict.size_order(fr)
    outcomes = next((o for o in verdict.outcome_sets(fr, order) if o.name == task), None)
    v = verdict.decide(outcomes, settings.margin, size_axis, settings.baseline) if outcomes is not None else None
    if v is None:  # no other rung answered these items: nothing to decide on
        return GO
    return GO if any(v.status(m) == UNDECIDED for m in v.vs_baseline) else DECIDED


def baseline_rung(models, baseline: str | None) -> str:
    """The rung run in chunks: --baseline, else the one with the most parameters in the registry (the last of
    equals in plan order). The report compares every rung with it (the verdict reads it from the records)."""
    if baseline is not None:
        return baseline
    ranked = sorted(enumerate(models), key=lambda pair: (pair[1].params or 0, pair[0]))
    return ranked[-1][1].name
