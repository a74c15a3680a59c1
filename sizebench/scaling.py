"""Accuracy against log10(total parameters) within one model family: a line, only with three or more rungs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sizebench.frames import Frames
from sizebench.verdict import Outcomes

MIN_RUNGS = 3


@dataclass(frozen=True)
class Fit:
    family: str
    models: list[str]
    params: list[float]
    accuracy: list[float]
    per_decade: float  # accuracy gained per 10x parameters (the slope)
    per_decade_stderr: float
    intercept: float
    r_squared: float


def families(fr: Frames, models: list[str]) -> dict[str, list[tuple[str, float]]]:
    """family -> [(model, total params)], smallest first, for the given models."""
    loads = fr["load"]
    if loads.empty:
        return {}
    last = loads.drop_duplicates("model", keep="last")
    out: dict[str, list[tuple[str, float]]] = {}
    for _, r in last[last["model"].isin(models)].iterrows():
        out.setdefault(str(r["family"]), []).append((r["model"], float(r["params"])))
    return {f: sorted(rungs, key=lambda x: (x[1], x[0])) for f, rungs in sorted(out.items())}


def fits(fr: Frames, outcomes: Outcomes) -> tuple[list[Fit], dict[str, int]]:
    """Fits for families with >= MIN_RUNGS distinct sizes, and the rung count of the families without one."""
    from scipy.stats import linregress

    done, too_few = [], {}
    for family, rungs in families(fr, list(outcomes.table.columns)).items():
        if len({p for _, p in rungs}) < MIN_RUNGS:
            too_few[family] = len(rungs)
            continue
        x = [math.log10(p) for _, p in rungs]
        y = [float(outcomes.table[m].mean()) for m, _ in rungs]
        line = linregress(x, y)
        done.append(Fit(family, [m for m, _ in rungs], [p for _, p in rungs], y, float(line.slope),
                        float(line.stderr), float(line.intercept), float(line.rvalue ** 2)))
    return done, too_few
