"""Paired statistics on per-item outcomes (1 right, 0 wrong) of two models that answered the same items.

The 95% interval of the accuracy difference is Tango's score interval for paired data (T. Tango,
"Equivalence test and confidence interval for the difference in proportions for the paired-sample
design", Statistics in Medicine 17:891-908, 1998): the differences whose score statistic, with the
restricted maximum likelihood variance, lies within +-z. It depends only on the discordant counts and n
and has width at every count, zero discordant items included. In benchmarks/coverage.md it covers at
least 93% in 89 of 90 cells (92.8% in the last), the fewest failing cells of the intervals compared.
The margin is tested with the same score statistic: Tango's non-inferiority test, its one-sided p-value
at delta = margin (below ALPHA exactly when the interval's upper end is below the margin). Items needed
come from that test's variance at the margin and under the observed discordance (Nam, "Establishing
equivalence of two treatments and sample size requirements in matched-pairs design", Biometrics
53:1422-1430, 1997); benchmarks/accuracy.py checks their power by simulating Tango's interval.
McNemar's exact test is `scipy.stats.binomtest` on the discordant items, Holm's correction comes from
statsmodels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
ALPHA = (1 - CONFIDENCE) / 2  # one-sided level of a margin test: the 95% interval's upper end below the margin
POWER = 0.8  # items needed: the interval settles the question 4 times out of 5 if the observed gap is real
MAX_ITEMS = 10_000_000
EXACT_ITEMS = 2_000  # items needed up to this many are counted with the exact power, beyond with its approximation


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

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - (1 - confidence) / 2))


def _restricted_b_share(a_only, b_only, n, delta):
    """The maximum likelihood share of b-only items under accuracy(a) - accuracy(b) = delta (Tango)."""
    linear = -a_only - b_only + (2 * n - a_only + b_only) * delta
    return (np.sqrt(np.maximum(linear**2 + 8 * n * b_only * delta * (1 - delta), 0)) - linear) / (4 * n)


def score(a_only, b_only, n, delta):
    """Tango's score statistic of H: accuracy(a) - accuracy(b) = delta (standard normal under H)."""
    spread = n * (2 * _restricted_b_share(a_only, b_only, n, delta) + delta * (1 - delta))
    gap = a_only - b_only - n * delta
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, gap / np.sqrt(spread), np.sign(gap) * np.inf)


def tango_interval(a_only, b_only, n, confidence: float = CONFIDENCE):
    """Tango's (1998) score interval of accuracy(a) - accuracy(b) from the discordant counts of n paired
    items; numpy arrays of counts give arrays of limits. Returns (low, high)."""
    a_only, b_only, n = np.broadcast_arrays(*(np.asarray(c, dtype=float) for c in (a_only, b_only, n)))
    z = _z(confidence)

    def solve(target, low, high):  # bisection: the score falls as delta grows
        for _ in range(60):
            middle = (low + high) / 2
            above = score(a_only, b_only, n, middle) > target
            low, high = np.where(above, middle, low), np.where(above, high, middle)
        return (low + high) / 2

    estimate = (a_only - b_only) / n
    return solve(z, np.full_like(estimate, -1.0), estimate), solve(-z, estimate, np.full_like(estimate, 1.0))


def noninferiority_p(a_only, b_only, n, margin: float) -> float:
    """One-sided p-value of H0: accuracy(a) - accuracy(b) >= margin against < margin (Tango's score test at the
    margin): below ALPHA exactly when the 95% interval's upper end is below the margin."""
    from scipy.stats import norm

    return float(norm.cdf(score(float(a_only), float(b_only), float(n), margin)))


def compare(a, b) -> Paired:
    """a - b with Tango's paired score interval and McNemar's exact p-value."""
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("paired outcomes must be two equally long, non-empty 1-d arrays")
    if not np.isin(a, (0, 1)).all() or not np.isin(b, (0, 1)).all():
        raise ValueError("paired outcomes must be 0 or 1")
    n = len(a)
    a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    discordant = a_only + b_only
    low, high = tango_interval(a_only, b_only, n)
    p = float(binomtest(a_only, discordant, 0.5).pvalue) if discordant else 1.0
    sd = float(np.std(a - b, ddof=1)) if n > 1 else 0.0
    return Paired(n, float(a.mean() - b.mean()), float(low), float(high), a_only, b_only, p, sd)


def holm(pvalues: list[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    if len(pvalues) < 2:  # nothing to correct for
        return [float(p) for p in pvalues]
    return [float(p) for p in multipletests(pvalues, alpha=1 - CONFIDENCE, method="holm")[1]]


def _tie_bound(items: int) -> float:
    """The upper end of the interval for two models that agree on every one of `items` items."""
    return float(tango_interval(0, 0, items)[1])


def items_needed(a_only: int, b_only: int, n: int, margin: float) -> int | None:
    """Items for Tango's interval to end on one side of the margin with 80% power, if the observed shares of
    items right for a only and for b only hold; None when no count would do (the observed difference on the
    margin). The score test's variance at the margin and under those shares gives the count (Nam 1997); up to
    EXACT_ITEMS, where few discordant items make that approximation coarse, the count is the smallest whose
    exact power (over every outcome of the discordant counts) reaches 80%."""
    a_share, b_share = a_only / n, b_only / n
    if abs(margin - (a_share - b_share)) < 1e-9:
        return None
    if a_only + b_only == 0:  # no discordant item yet: enough items for the interval's upper end to fall below
        return _tie_items(margin)
    needed = _approximate_items(a_share, b_share, margin)
    if needed > MAX_ITEMS:
        return None
    if needed > EXACT_ITEMS:
        return needed
    low, high = 1, max(2 * needed, 2)
    while power(a_share, b_share, high, margin) < POWER:
        low, high = high, 2 * high
    while low < high:  # the smallest count with 80% power (power grows with the count, up to small steps)
        middle = (low + high) // 2
        if power(a_share, b_share, middle, margin) >= POWER:
            high = middle
        else:
            low = middle + 1
    return high


def _approximate_items(a_share: float, b_share: float, margin: float) -> int:
    from scipy.stats import norm

    diff = a_share - b_share
    null_sd = np.sqrt(2 * float(_restricted_b_share(a_share, b_share, 1.0, margin)) + margin * (1 - margin))
    true_sd = np.sqrt(a_share + b_share - diff**2)
    needed = ((_z(CONFIDENCE) * null_sd + float(norm.ppf(POWER)) * true_sd) / abs(margin - diff)) ** 2
    return int(min(np.ceil(needed), MAX_ITEMS + 1))


def power(a_share: float, b_share: float, n: int, margin: float) -> float:
    """The chance that Tango's 95% interval of n items ends on the side of the margin the true difference
    (a_share - b_share) is on, summed over every outcome of the discordant counts (outcomes less likely
    than 1e-12 left out)."""
    from scipy.stats import binom

    a = np.arange(int(binom.ppf(1e-12, n, a_share)), int(binom.isf(1e-12, n, a_share)) + 1)
    other = b_share / (1 - a_share) if a_share < 1 else 0.0
    b = np.arange(int(binom.ppf(1e-12, n, b_share)), int(binom.isf(1e-12, n, b_share)) + 1)
    a, b = np.meshgrid(a, b, indexing="ij")
    mass = binom.pmf(a, n, a_share) * binom.pmf(b, n - a, other)
    low, high = tango_interval(a, b, n)
    settled = high < margin if a_share - b_share < margin else low >= margin
    return float(mass[settled].sum())


def _tie_items(gap: float) -> int | None:
    low, high = 1, 2
    while _tie_bound(high) >= gap:
        low, high = high, high * 2
        if high > MAX_ITEMS:
            return None
    while low < high:
        middle = (low + high) // 2
        if _tie_bound(middle) < gap:
            high = middle
        else:
            low = middle + 1
    return high
