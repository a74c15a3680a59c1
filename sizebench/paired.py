"""Paired statistics on per-item outcomes (1 right, 0 wrong) of two models that answered the same items.

The 95% interval of the accuracy difference is Newcombe's hybrid score interval for paired data (method 10
of R. G. Newcombe, "Improved confidence intervals for the difference between binomial proportions based on
paired data", Statistics in Medicine 17:2635-2650, 1998): statsmodels' Wilson intervals for both accuracies,
combined with the correlation of the two models' outcomes (phi, with Newcombe's correction). Unlike the
percentile bootstrap it replaced, it has width at every count of discordant items, zero included; its
coverage, cell by cell, is in benchmarks/coverage.md (made by benchmarks/coverage.py). McNemar's
exact test is `scipy.stats.binomtest` on the discordant items, Holm's correction comes from statsmodels, and
sample sizes from statsmodels' power of a t-test on the per-item differences (a paired design is a
one-sample test on them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

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
    both: int = 0  # items both models get right

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


def newcombe_interval(a_only, b_only, both, neither, confidence: float = CONFIDENCE):
    """Newcombe's (1998) method 10 interval of accuracy(a) - accuracy(b) from the four cells of the paired
    table; numpy arrays of counts give arrays of limits. Returns (low, high)."""
    from statsmodels.stats.proportion import proportion_confint

    a_only, b_only, both, neither = np.broadcast_arrays(*(np.asarray(c, dtype=float)
                                                          for c in (a_only, b_only, both, neither)))
    n = a_only + b_only + both + neither
    right_a, right_b = both + a_only, both + b_only
    p_a, p_b = right_a / n, right_b / n
    low_a, high_a = proportion_confint(right_a, n, alpha=1 - confidence, method="wilson")
    low_b, high_b = proportion_confint(right_b, n, alpha=1 - confidence, method="wilson")
    margins = right_a * (n - right_a) * right_b * (n - right_b)
    cross = both * neither - a_only * b_only
    corrected = np.where(cross > n / 2, cross - n / 2, np.where(cross < 0, cross, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(margins > 0, corrected / np.sqrt(margins), 0.0)  # 0 for an empty margin (Newcombe)
    down_a, up_a, down_b, up_b = p_a - low_a, high_a - p_a, p_b - low_b, high_b - p_b
    diff = p_a - p_b
    low = diff - np.sqrt(np.maximum(down_a ** 2 - 2 * phi * down_a * up_b + up_b ** 2, 0))
    high = diff + np.sqrt(np.maximum(down_b ** 2 - 2 * phi * down_b * up_a + up_a ** 2, 0))
    return low, high


def compare(a, b) -> Paired:
    """a - b with Newcombe's paired interval and McNemar's exact p-value."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("paired outcomes must be two equally long, non-empty 1-d arrays")
    if not np.isin(a, (0, 1)).all() or not np.isin(b, (0, 1)).all():
        raise ValueError("paired outcomes must be 0 or 1")
    n = len(a)
    a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    both = int(((a == 1) & (b == 1)).sum())
    discordant = a_only + b_only
    low, high = newcombe_interval(a_only, b_only, both, n - both - discordant)
    p = float(binomtest(a_only, discordant, 0.5).pvalue) if discordant else 1.0
    sd = float(np.std(a - b, ddof=1)) if n > 1 else 0.0
    return Paired(n, float(a.mean() - b.mean()), float(low), float(high), a_only, b_only, p, sd, both)


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


def _tie_bound(items: int, accuracy: float) -> float:
    """The upper end of Newcombe's interval for two models that agree on every one of `items` items."""
    return float(newcombe_interval(0, 0, accuracy * items, (1 - accuracy) * items)[1])


def items_needed(gap: float, sd: float, n: int, accuracy: float = 0.5) -> int | None:
    """Items for the interval to end on one side of the margin (80% power), if `gap` (distance of the
    observed difference to the margin) and the per-item spread hold; None when no count would do.
    `accuracy` (of either model) matters only with no discordant item, where it alone sets the interval."""
    from statsmodels.stats.power import TTestPower

    gap = abs(gap)
    if gap < 1e-9:  # the observed difference sits on the margin (up to float rounding)
        return None
    if sd <= 0:  # no discordant item yet: enough items for the interval's upper end to fall below the gap
        low, high = 1, max(n, 1)
        while _tie_bound(high, accuracy) >= gap:
            low, high = high, high * 2
            if high > MAX_ITEMS:
                return None
        while low < high:
            middle = (low + high) // 2
            if _tie_bound(middle, accuracy) < gap:
                high = middle
            else:
                low = middle + 1
        return high
    with warnings.catch_warnings():  # no convergence means no count would do: None below
        warnings.simplefilter("ignore")
        needed = TTestPower().solve_power(effect_size=gap / sd, alpha=1 - CONFIDENCE, power=POWER,
                                          alternative="two-sided")
    return int(np.ceil(needed)) if np.isfinite(needed) and needed <= MAX_ITEMS else None
