"""Everything the report's verdict, evidence, cost and scaling sections show, computed from the runs in one call."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from sizebench.analysis import agreement as agreement_figures
from sizebench.analysis import cost as cost_figures
from sizebench.analysis import limit
from sizebench.analysis import scaling
from sizebench.analysis import verdict as verdict_rule
from sizebench.analysis.frontier import Frontier, frontier, headline
from sizebench.analysis.sizes import SizeAxis
from sizebench.specs.settings import DEFAULT_MARGIN
from sizebench.runstore.frames import Frames


@dataclass(frozen=True)
class Analysis:
    """Everything the verdict, evidence, cost and scaling sections show; a pure function of the runs."""

    verdicts: list[verdict_rule.Verdict]
    size_axis: SizeAxis
    costs: list[cost_figures.Cost]
    frontier: Frontier | None
    fits: list[scaling.Fit]
    too_few: dict[str, int]  # family -> sizes measured, where too few for a fit
    margin: float
    price_per_hour: float | None
    headline: str  # the benchmark the frontier and the scaling fit show
    agreement: dict[str, str] = field(default_factory=dict)  # variant -> reference rung (the agreement stage)
    baseline: str | None = None  # --baseline, where given
    overhead: str | None = None  # why the decode figures are overhead-bound, where they are


def analyse(
    fr: Frames,
    df: pd.DataFrame,
    margin: float = DEFAULT_MARGIN,
    price_per_hour: float | None = None,
    reference: str | None = None,
    baseline: str | None = None,
) -> Analysis:
    order, size_axis = verdict_rule.size_order(fr)
    verdict_rule.check_baseline(baseline, order)
    sets = verdict_rule.outcome_sets(fr, order)
    vs = [v for v in (verdict_rule.decide(o, margin, size_axis, baseline) for o in sets) if v is not None]
    costs = cost_figures.costs(fr, df)
    top = headline(sets)
    fits, too_few = scaling.fits(fr, top) if top is not None else ([], {})
    return Analysis(
        vs,
        size_axis,
        costs,
        frontier(sets, vs, costs),
        fits,
        too_few,
        margin,
        price_per_hour,
        top.name if top is not None else "",
        agreement_figures.references(fr, reference),
        baseline,
        limit.overhead_bound(limit.limits(fr)),
    )
