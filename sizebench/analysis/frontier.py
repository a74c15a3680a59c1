"""The cost frontier: the headline accuracy beside each rung's memory and decode time, and the rungs no other
beats on both (Pareto), with the verdict's recommendation; the report draws and describes it."""

from __future__ import annotations

from dataclasses import dataclass

from sizebench.analysis import cost as cost_module
from sizebench.analysis.cost import Cost
from sizebench.analysis.verdict import POOLED, Outcomes, Verdict


@dataclass(frozen=True)
class Frontier:
    outcomes: Outcomes  # the accuracy the plot shows
    points: dict  # model -> (memory to run MiB, decode ms/token, accuracy, low, high)
    front: dict  # "memory"/"decode" -> Pareto-optimal models, cheapest first
    recommended: list[str]  # the recommended row and the rows equal to it in size and within the margin


def headline(sets: list[Outcomes]) -> Outcomes | None:
    """All tasks pooled, else the only task, else the prompt suite."""
    for wanted in (lambda o: o.name == POOLED, lambda o: True):
        for o in sets:
            if wanted(o):
                return o
    return None


def frontier(sets: list[Outcomes], vs: list[Verdict], costs: list[Cost]) -> Frontier | None:
    from scipy.stats import binomtest

    outcomes = headline(sets)
    if outcomes is None:
        return None
    verdict = next((v for v in vs if v.outcomes.name == outcomes.name), None)
    points = {}
    for c in costs:
        if c.model not in outcomes.table:
            continue
        right, n = int(outcomes.table[c.model].sum()), len(outcomes.table)
        ci = binomtest(right, n).proportion_ci(0.95)
        decode_ms = c.decode_s_per_token * 1000 if c.decode_s_per_token else None
        points[c.model] = (c.memory_mb, decode_ms, right / n, float(ci.low), float(ci.high))
    front = {
        key: cost_module.pareto({m: (v[i], v[2]) for m, v in points.items() if v[i] is not None})
        for i, key in ((0, "memory"), (1, "decode"))
    }
    return Frontier(outcomes, points, front, [verdict.recommended, *verdict.equal] if verdict else [])
