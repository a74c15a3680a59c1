"""Paired statistics on per-item outcomes (1 right, 0 wrong) of two models that answered the same items.

Every figure comes from scipy or statsmodels: the 95% interval of the accuracy difference from
`scipy.stats.bootstrap(paired=True)` (items resampled jointly; fixed seed, 10,000 resamples, so
reports are byte-identical), McNemar's exact test as `scipy.stats.binomtest` on the discordant items,
Holm's correction from statsmodels, and sample sizes from statsmodels' power of a t-test on the
per-item differences (a paired design is a one-sample test on them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

SEED = 12
RESAMPLES = 10_000
CONFIDENCE = 0.95
POWER = 0.8  # items needed: the interval settles the question 4 times out of 5 if the observed gap is real
MAX_ITEMS = 10_000_000


@dataclass(frozen=True)
class Paired:
    """Model a against model b on n shared items."""

    n: int
    diff: float  # accuracy of a minus accuracy of b
    low: float  # 95% interval of diff
    high: float
    a_only: int  # items a gets right and b wrong
    b_only: int
    p: float  # McNemar's exact test, two-sided, not corrected
    sd: float  # standard deviation of the per-item differences
    exact_bound: bool = False  # no discordant item: the interval is the exact bound on the discordance rate

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


def _mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def compare(a, b) -> Paired:
    """a - b with a paired bootstrap interval and McNemar's exact p-value."""
    from scipy.stats import binomtest, bootstrap

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("paired outcomes must be two equally long, non-empty 1-d arrays")
    if not np.isin(a, (0, 1)).all() or not np.isin(b, (0, 1)).all():
        raise ValueError("paired outcomes must be 0 or 1")
    n = len(a)
    a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    discordant = a_only + b_only
    diff = float(a.mean() - b.mean())
    sd = float(np.std(a - b, ddof=1)) if n > 1 else 0.0
    if discordant == 0:
        # Every resample gives 0, a zero-width interval that would claim certainty from any n. The
        # difference is at most the discordance rate, whose exact (Clopper-Pearson) bound is honest.
        bound = float(binomtest(0, n).proportion_ci(CONFIDENCE).high)
        return Paired(n, diff, -bound, bound, 0, 0, 1.0, sd, exact_bound=True)
    p = float(binomtest(a_only, discordant, 0.5).pvalue)
    if n < 2:  # one item: nothing to resample, every difference stays possible
        return Paired(n, diff, -1.0, 1.0, a_only, b_only, p, sd)
    result = bootstrap((a, b), _mean_difference, paired=True, vectorized=True, n_resamples=RESAMPLES,
                       confidence_level=CONFIDENCE, method="percentile", batch=max(1, 2_000_000 // n),
                       rng=np.random.default_rng(SEED))
    low, high = (float(v) for v in result.confidence_interval)
    return Paired(n, diff, low, high, a_only, b_only, p, sd)


def holm(pvalues: list[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    if not pvalues:
        return []
    return [float(p) for p in multipletests(pvalues, alpha=1 - CONFIDENCE, method="holm")[1]]


def detectable(n: int, sd: float) -> float | None:
    """The smallest true accuracy difference these n items find (two-sided 5%) with 80% power."""
    from statsmodels.stats.power import TTestPower

    if n < 3 or sd <= 0:
        return None
    return float(TTestPower().solve_power(nobs=n, alpha=1 - CONFIDENCE, power=POWER, alternative="two-sided")) * sd


def items_needed(gap: float, sd: float, n: int) -> int | None:
    """Items for the interval to end on one side of the margin (80% power), if `gap` (distance of the
    observed difference to the margin) and the per-item spread hold; None when no count would do."""
    from scipy.stats import binomtest
    from statsmodels.stats.power import TTestPower

    gap = abs(gap)
    if gap < 1e-9:  # the observed difference sits on the margin (up to float rounding)
        return None
    if sd <= 0:  # no discordant item yet: enough items for the exact bound to fall below the gap
        low, high = 1, max(n, 1)
        while binomtest(0, high).proportion_ci(CONFIDENCE).high >= gap:
            low, high = high, high * 2
            if high > MAX_ITEMS:
                return None
        while low < high:
            middle = (low + high) // 2
            if binomtest(0, middle).proportion_ci(CONFIDENCE).high < gap:
                high = middle
            else:
                low = middle + 1
        return high
    with warnings.catch_warnings():  # no convergence means no count would do: None below
        warnings.simplefilter("ignore")
        needed = TTestPower().solve_power(effect_size=gap / sd, alpha=1 - CONFIDENCE, power=POWER,
                                          alternative="two-sided")
    return int(np.ceil(needed)) if np.isfinite(needed) and needed <= MAX_ITEMS else None
