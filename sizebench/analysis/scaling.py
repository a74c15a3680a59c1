"""Accuracy against log10(total parameters) within one model family: a line, only with three or more sizes.

A size is a parameter count. Variants of one model (precisions, engines) are not sizes: the fit runs
per family, engine and precision, so one model at three precisions is one size at each of three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sizebench.analysis import sizes
from sizebench.runstore.frames import Frames
from sizebench.analysis.verdict import Outcomes

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
    """Fit group (family, and the engine and precision where the rows hold more than one) ->
    [(model, total params)], smallest first, for the given models."""
    loads = fr["load"]
    if loads.empty:
        return {}
    ids = sizes.identities(fr)
    last = loads.drop_duplicates("model", keep="last")
    last = last[last["model"].isin(models)]
    kinds = {(ids[m].engine, ids[m].precision) for m in last["model"]}
    out: dict[str, list[tuple[str, float]]] = {}
    for _, r in last.iterrows():
        i = ids[r["model"]]
        group = str(r["family"]) + (f" ({i.engine}, {i.precision})" if len(kinds) > 1 else "")
        out.setdefault(group, []).append((r["model"], float(r["params"])))
    return {f: sorted(rungs, key=lambda x: x[1]) for f, rungs in sorted(out.items())}


def fits(fr: Frames, outcomes: Outcomes) -> tuple[list[Fit], dict[str, int]]:
    """Fits for groups with >= MIN_RUNGS distinct sizes, and the size count of the groups without one."""
    from scipy.stats import linregress

    done, too_few = [], {}
    for family, rungs in families(fr, list(outcomes.table.columns)).items():
        distinct = len({p for _, p in rungs})
        if distinct < MIN_RUNGS:
            too_few[family] = distinct
            continue
        x = [math.log10(p) for _, p in rungs]
        y = [float(outcomes.table[m].mean()) for m, _ in rungs]
        line = linregress(x, y)
        done.append(
            Fit(
                family,
                [m for m, _ in rungs],
                [p for _, p in rungs],
                y,
                float(line.slope),
                float(line.stderr),
                float(line.intercept),
                float(line.rvalue**2),
            )
        )
    return done, too_few
