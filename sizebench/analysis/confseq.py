"""An anytime-valid confidence sequence for a paired accuracy difference, for `--until-decided`.

Each item's difference d = a - b (a, b in {0, 1}) lies in [-1, 1]; x = (d + 1) / 2 lies in [0, 1] and its mean is
(diff + 1) / 2. The sequence is Waudby-Smith & Ramdas's hedged capital confidence sequence ("Estimating means of
bounded random variables by betting", JRSS-B 86:1-27, 2024, section 4 and, for sampling without replacement from
the task's N items, section 6): for every candidate mean m, two nonnegative capital processes bet that the
mean is above and below m,

    K+_t(m) = prod_{i<=t} (1 + l+_i (x_i - m_i)),   K-_t(m) = prod_{i<=t} (1 - l-_i (x_i - m_i)),

with m_i = (N m - sum_{j<i} x_j) / (N - i + 1) the mean of the items not yet drawn (m_i = m with replacement),
predictable plug-in bets l_i = sqrt(2 log(2 / alpha) / (sigma2_{i-1} i log(1 + i))) (the regularised running
variance sigma2, prior mean 1/2 and variance 1/4 weighted as one item) truncated at 1/2 of 1/m_i (l+) or of
1/(1 - m_i) (l-). Under the mean m each is a martingale; Ville's inequality bounds the chance that
max(K+, K-) / 2 ever reaches 1 / alpha by alpha, at every time together, so the set of m not yet rejected is a
1 - alpha confidence sequence valid at any stopping time, however the stopping was decided. Candidates are a grid
of differences (GRID_STEP apart, the end points padded out by one step as confseq's `cs_from_martingale` does);
a candidate once rejected stays rejected (the running maximum of its capital), and a candidate whose m_i leaves
[0, 1], or that the items seen already rule out, is impossible (the logical bound of sampling without
replacement).

This is the construction of confseq 0.0.11's `hedged_cs(x, alpha, N, breaks=1000, running_intersection=True)`
(gostevehoward/confseq), composed here from numpy: that package is an sdist whose install compiles C++ with
pybind11 and pulls in matplotlib, and it has had no release since January 2023. benchmarks/sequential.py checks
the two agree and simulates coverage.

The margin test from the same capital: p_within = max over candidates m >= margin of 1 / max_s K-_s(m), an
anytime-valid p-value of "diff >= margin" (Ville's inequality for each such m); it is below ALPHA = alpha / 2
exactly when the sequence's upper end lies below the margin. That p-value goes into the ladder's fixed sequence
and Holm's correction in place of Tango's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sizebench.analysis.paired import ALPHA

GRID_STEP = 0.002  # in the difference: confseq's default 1000 breaks over [0, 1] for x
TRUNCATE = 0.5  # the bets at most half the largest that keeps the capital nonnegative (confseq's trunc_scale)
PRIOR_MEAN, PRIOR_VARIANCE, PRIOR_ITEMS = 0.5, 0.25, 1
BLOCK = 512  # items per block of the capital's computation
EXACT = 1e-9  # a mean of the items left this far outside [0, 1] is impossible; closer, it is rounding


@dataclass(frozen=True)
class Sequence:
    """The confidence sequence of diff = mean(a - b) after the n items given, of N in the task."""

    n: int
    population: int | None  # the task's items (None: sampling with replacement)
    low: float
    high: float
    p_within: float  # anytime-valid p of "diff >= margin", for the margin it was computed at
    margin: float

    def decided(self) -> bool:
        return self.high < self.margin or self.low >= self.margin


def _bets(x: np.ndarray, alpha: float) -> np.ndarray:
    """The predictable plug-in bets of the hedged process (each side at level alpha / 2)."""
    t = np.arange(1, len(x) + 1)
    mean = (PRIOR_ITEMS * PRIOR_MEAN + np.cumsum(x)) / (t + PRIOR_ITEMS)
    variance = (PRIOR_ITEMS * PRIOR_VARIANCE + np.cumsum((x - mean) ** 2)) / (t + PRIOR_ITEMS)
    before = np.append(PRIOR_VARIANCE, variance[:-1])
    return np.sqrt(2 * np.log(2 / alpha) / (t * np.log(1 + t) * before))


def max_log_capital(x, m, population: int | None, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The largest log K+ and log K- reached over the items of x, one value per candidate mean m of x (in [0, 1]);
    +inf where a candidate is impossible given the items seen (the logical bound of sampling without
    replacement, with the last item counted, as confseq's `logical_cs`). Computed BLOCK items at a time, so the
    memory stays candidates x BLOCK whatever the task's size."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)[:, None]
    bets = _bets(x, alpha)
    seen = np.append(0.0, np.cumsum(x))
    best_up = np.full(len(m), -np.inf)
    best_down = np.full(len(m), -np.inf)
    carry_up = np.zeros(len(m))
    carry_down = np.zeros(len(m))
    gone = np.zeros(len(m), dtype=bool)
    for start in range(0, len(x), BLOCK):
        t = np.arange(start + 1, min(start + BLOCK, len(x)) + 1)
        xs = x[start : t[-1]]
        if population is None:
            left = np.broadcast_to(m, (len(m), len(xs)))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                left = (population * m - seen[t - 1]) / (population - (t - 1))
        impossible = (left < -EXACT) | (left > 1 + EXACT)  # not a rounding error of an exact mean
        inside = np.clip(left, 0, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.minimum(bets[start : t[-1]], TRUNCATE / inside)
            down = np.minimum(bets[start : t[-1]], TRUNCATE / (1 - inside))
            grow_up = np.nan_to_num(np.log1p(np.where(impossible, 0, up * (xs - inside))), nan=0.0)
            grow_down = np.nan_to_num(np.log1p(np.where(impossible, 0, -down * (xs - inside))), nan=0.0)
        path_up = carry_up[:, None] + np.cumsum(grow_up, axis=1)
        path_down = carry_down[:, None] + np.cumsum(grow_down, axis=1)
        best_up, best_down = np.maximum(best_up, path_up.max(axis=1)), np.maximum(best_down, path_down.max(axis=1))
        carry_up, carry_down = path_up[:, -1], path_down[:, -1]
        gone |= impossible.any(axis=1)
    if population is not None:  # the items seen, the last one included, bound the population's mean
        total = seen[-1]
        gone |= (m[:, 0] < total / population - EXACT) | (m[:, 0] > 1 - (len(x) - total) / population + EXACT)
    return np.where(gone, np.inf, best_up), np.where(gone, np.inf, best_down)


def grid(margin: float | None = None) -> np.ndarray:
    values = np.round(np.arange(-1, 1 + GRID_STEP / 2, GRID_STEP), 10)
    return np.unique(np.append(values, margin)) if margin is not None else values


def sequence(diffs, margin: float, population: int | None = None, alpha: float = 2 * ALPHA) -> Sequence:
    """The confidence sequence after the items of `diffs` (a - b per item, each -1, 0 or 1, in the order drawn),
    and the anytime-valid p-value of "diff >= margin"."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or not len(d) or not np.isin(d, (-1, 0, 1)).all():
        raise ValueError("paired differences must be a non-empty 1-d array of -1, 0 and 1")
    if population is not None and population < len(d):
        raise ValueError(f"{len(d)} items drawn from a population of {population}")
    candidates = grid(margin)
    best_up, best_down = max_log_capital((d + 1) / 2, (candidates + 1) / 2, population, alpha)  # once rejected, always
    threshold = np.log(2 / alpha)  # max(K+, K-) / 2 >= 1 / alpha
    kept = candidates[(best_up < threshold) & (best_down < threshold)]
    low, high = (max(kept[0] - GRID_STEP, -1.0), min(kept[-1] + GRID_STEP, 1.0)) if len(kept) else (-1.0, 1.0)
    if population is not None:  # the logical bound, between grid points too
        unseen = population - len(d)  # each a difference of -1 at worst and 1 at best
        low, high = max(low, (d.sum() - unseen) / population), min(high, (d.sum() + unseen) / population)
    at_or_above = candidates >= margin
    p = float(np.exp(-best_down[at_or_above]).max()) if at_or_above.any() else 0.0
    return Sequence(len(d), population, float(low), float(high), min(p, 1.0), margin)
