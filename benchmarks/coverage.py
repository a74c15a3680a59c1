"""Coverage of the verdict's 95% interval for a paired accuracy difference (issue 19), old method beside it.

    .venv/bin/python benchmarks/coverage.py    # ~2 min on one core; writes coverage.md and RESULTS.md's section

Two models answer n items; each item falls in one of four cells: only a right (probability p10), only b
right (p01), both right, both wrong. Discordance q = p10 + p01, true difference d = p10 - p01, so
p10 = (q + d) / 2 and p01 = (q - d) / 2, over n in {20, 40, 100, 200, 565, 2000}, q in {2, 5, 10, 20, 40}%
and d in {0, 1/2, 1} x q. Newcombe's interval also depends on how the concordant items split into both
right and both wrong (their correlation and the two accuracies enter it), so each cell is run at five
shares r of concordant items both right, r in {0, 1/4, 1/2, 3/4, 1}, and reports the worst.

New: `sizebench.paired.newcombe_interval`, the function `compare` calls, on every outcome at once.
For n <= 200 coverage is exact: every outcome (a_only, b_only, both, neither) weighted by its multinomial
probability. For n = 565 and 2000 it is 20,000 seeded draws of (a_only, b_only, concordant), the
concordant items then split binomially at each r (Monte Carlo standard error about 0.0015 at 95%).

Old: the percentile paired bootstrap (10,000 resamples) that `compare` used before, with its exact
(Clopper-Pearson) bound of +-(1 - 0.025^(1/n)) when no item is discordant. Running 10,000 resamples
per outcome is too slow here, so its limits are computed exactly instead: for 0/1 outcomes, a bootstrap
resample's difference is (A - B) / n with (A, B, rest) ~ Multinomial(n, (a_only/n, b_only/n, rest/n)),
whose distribution is the n-fold convolution of one item's (+1, -1, 0), computed by FFT; its 2.5% and
97.5% quantiles are the limits the bootstrap's percentiles converge to with many resamples. The old
interval does not depend on the concordant split, so it has one figure per cell.

Tango, for comparison only (the verdict does not use it): Tango's score interval (Statistics in Medicine
17:891-908, 1998), which depends on the discordant counts alone; solved here by bisection, and checked at
start against Fagerland, Lydersen & Laake's Cavo example (-0.1240 to -0.0054, as in contingencytables).

A cell counts as covered when low <= d <= high; failing cells (new coverage < 0.93) are flagged in the
table, never dropped.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import gammaln, xlogy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench.paired import CONFIDENCE, newcombe_interval  # noqa: E402

SIZES = (20, 40, 100, 200, 565, 2000)
DISCORDANCE = (0.02, 0.05, 0.10, 0.20, 0.40)
DIFFERENCE = (0.0, 0.5, 1.0)  # times the discordance
SPLITS = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of concordant items both models get right
EXACT_UP_TO = 200
DRAWS = 20_000
SEED = 19
FLOOR = 0.93
TOLERANCE = 1e-12  # a limit equal to d (up to float rounding) covers it
COMMAND = ".venv/bin/python benchmarks/coverage.py"
BEGIN, END = "<!-- coverage.py:begin -->", "<!-- coverage.py:end -->"


def old_limits(a_only: np.ndarray, b_only: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The old method's limits per outcome: exact bootstrap percentiles, the exact bound at 0 discordant."""
    tail = (1 - CONFIDENCE) / 2
    size = 2 * n + 1
    roots = np.exp(2j * np.pi * np.arange(size) / size)
    low, high = np.empty(len(a_only)), np.empty(len(a_only))
    for start in range(0, len(a_only), max(1, 4_000_000 // size)):
        part = slice(start, start + max(1, 4_000_000 // size))
        p_a, p_b = a_only[part, None] / n, b_only[part, None] / n
        # one item adds +1, -1 or 0; shifted by z^n its generating function is a polynomial of degree 2n
        values = (p_b + (1 - p_a - p_b) * roots + p_a * roots ** 2) ** n
        cdf = np.cumsum(np.fft.fft(values, axis=1).real / size, axis=1)
        low[part] = (np.argmax(cdf >= tail - TOLERANCE, axis=1) - n) / n
        high[part] = (np.argmax(cdf >= 1 - tail - TOLERANCE, axis=1) - n) / n
    bound = 1 - tail ** (1 / n)  # Clopper-Pearson upper limit for 0 of n
    tie = (a_only + b_only) == 0
    return np.where(tie, -bound, low), np.where(tie, bound, high)


def tango_limits(a_only, b_only, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tango's score interval: the differences whose score statistic lies within +-z."""
    from scipy.stats import norm

    b, c = np.asarray(a_only, dtype=float), np.asarray(b_only, dtype=float)
    z = norm.ppf(1 - (1 - CONFIDENCE) / 2)

    def score(delta):
        linear = -b - c + (2 * n - b + c) * delta
        p_b_only = (np.sqrt(np.maximum(linear ** 2 + 8 * n * c * delta * (1 - delta), 0)) - linear) / (4 * n)
        spread = n * (2 * p_b_only + delta * (1 - delta))  # restricted maximum likelihood, Tango's eq.
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(spread > 0, (b - c - n * delta) / np.sqrt(spread), np.sign(b - c - n * delta) * np.inf)

    def solve(target, low, high):  # the score falls as delta grows
        for _ in range(60):
            middle = (low + high) / 2
            above = score(middle) > target
            low, high = np.where(above, middle, low), np.where(above, high, middle)
        return (low + high) / 2

    estimate = (b - c) / n
    return solve(z, np.full_like(estimate, -1.0), estimate), solve(-z, estimate, np.full_like(estimate, 1.0))


def covers(low, high, d) -> np.ndarray:
    return (low <= d + TOLERANCE) & (d <= high + TOLERANCE)


def probabilities(q: float, d: float, r: float) -> np.ndarray:
    """(a_only, b_only, both, neither)."""
    return np.array([(q + d) / 2, (q - d) / 2, (1 - q) * r, (1 - q) * (1 - r)])


def exact(n: int) -> dict:
    grid = np.indices((n + 1,) * 3).reshape(3, -1)
    grid = grid[:, grid.sum(axis=0) <= n]
    a_only, b_only, both = grid
    neither = n - a_only - b_only - both
    low, high = newcombe_interval(a_only, b_only, both, neither)
    pairs = np.indices((n + 1,) * 2).reshape(2, -1)
    pairs = pairs[:, pairs.sum(axis=0) <= n]
    old_low, old_high = old_limits(pairs[0], pairs[1], n)
    tango_low, tango_high = tango_limits(pairs[0], pairs[1], n)
    counts = np.stack([a_only, b_only, both, neither])
    log_factor = gammaln(n + 1) - gammaln(counts + 1).sum(axis=0)
    pair_factor = gammaln(n + 1) - gammaln(pairs + 1).sum(axis=0) - gammaln(n - pairs.sum(axis=0) + 1)
    rows = {}
    for q in DISCORDANCE:
        for share in DIFFERENCE:
            d = share * q
            p = probabilities(q, d, 0.5)
            old_weight = np.exp(pair_factor + xlogy(pairs[0], p[0]) + xlogy(pairs[1], p[1])
                                + xlogy(n - pairs.sum(axis=0), 1 - q))
            old = float(old_weight[covers(old_low, old_high, d)].sum())
            tango = float(old_weight[covers(tango_low, tango_high, d)].sum())
            new = {}
            for r in SPLITS:
                p = probabilities(q, d, r)
                weight = np.exp(log_factor + xlogy(counts, p[:, None]).sum(axis=0))
                new[r] = float(weight[covers(low, high, d)].sum())
            rows[(q, share)] = (new, old, tango)
    return rows


def sampled(n: int, rng: np.random.Generator) -> dict:
    rows = {}
    for q in DISCORDANCE:
        for share in DIFFERENCE:
            d = share * q
            p = probabilities(q, d, 0.5)
            a_only, b_only, concordant = rng.multinomial(n, [p[0], p[1], 1 - q], size=DRAWS).T
            pairs, inverse = np.unique(np.stack([a_only, b_only]), axis=1, return_inverse=True)
            old_low, old_high = old_limits(pairs[0], pairs[1], n)
            old = float(covers(old_low, old_high, d)[inverse.ravel()].mean())
            tango = float(covers(*tango_limits(a_only, b_only, n), d).mean())
            new = {}
            for r in SPLITS:
                both = rng.binomial(concordant, r)
                low, high = newcombe_interval(a_only, b_only, both, concordant - both)
                new[r] = float(covers(low, high, d).mean())
            rows[(q, share)] = (new, old, tango)
    return rows


def table(results: dict) -> tuple[str, list[str]]:
    lines = [("| n | discordance | true d | new coverage (worst split) | worst split (both right) | "
              "new, even split | old coverage | Tango (comparison) | how | flag |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    failing = []
    for n, rows in results.items():
        how = "exact" if n <= EXACT_UP_TO else f"{DRAWS:,} draws"
        for (q, share), (new, old, tango) in rows.items():
            worst = min(new, key=new.get)
            flag = f"**below {FLOOR:g}**" if new[worst] < FLOOR else ""
            if flag:
                failing.append((n, q, share, new[worst], worst))
            lines.append(f"| {n} | {q:.0%} | {share * q:.3f} | {new[worst]:.4f} | {worst:g} | {new[0.5]:.4f} | "
                         f"{old:.4f} | {tango:.4f} | {how} | {flag} |")
    return "\n".join(lines), failing


def summary(results: dict, failing: list[str]) -> str:
    cells = [row for rows in results.values() for row in rows.values()]
    worst = min(min(new.values()) for new, _, _ in cells)
    text = (f"New (Newcombe 1998 method 10): worst coverage {worst:.4f} over all {len(cells)} cells and "
            f"{len(SPLITS)} splits; ")
    text += (f"{len(failing)} cell(s) below {FLOOR:g}, reported above: "
             + "; ".join(f"n = {n}, q = {q:.0%}, d = {share * q:.3f} ({c:.3f})" for n, q, share, c, _ in failing) + "."
             if failing else f"no cell below {FLOOR:g}.")
    if failing and all(share == 1 for _, _, share, _, _ in failing):
        text += " Every failing cell has d = q: b is never right alone, so every discordant item goes one way."
    if failing and all(split == 0.5 for *_, split in failing):
        text += " In every one the worst split is the even one (as many concordant items both right as both wrong)."
    for name, column in (("Old (percentile bootstrap, exact bound at 0 discordant)", 1), ("Tango", 2)):
        figures = [row[column] for row in cells]
        text += (f" {name}: worst {min(figures):.4f}, {sum(f < FLOOR for f in figures)} of {len(cells)} "
                 f"cells below {FLOOR:g}.")
    return text


def write(markdown: str) -> None:
    (REPO / "benchmarks" / "coverage.md").write_text(markdown + "\n")
    results_md = REPO / "benchmarks" / "RESULTS.md"
    text = results_md.read_text()
    section = f"{BEGIN}\n## Interval coverage (issue 19)\n\n{markdown}\n{END}"
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results_md.write_text(text)


def main() -> None:
    cavo = tango_limits(6, 16, 161)  # Fagerland et al.'s Cavo example: -0.1240 to -0.0054
    if not np.allclose(cavo, (-0.1240, -0.0054), atol=5e-5):
        sys.exit(f"coverage.py: Tango's interval gives {cavo} for the Cavo example, not (-0.1240, -0.0054)")
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    results = {n: exact(n) if n <= EXACT_UP_TO else sampled(n, rng) for n in SIZES}
    body, failing = table(results)
    markdown = (f"Made by `{COMMAND}` (the docstring says how); {time.perf_counter() - started:.0f} s. "
                f"Coverage of 95% intervals for the paired difference d; the new interval at the worst of "
                f"{len(SPLITS)} shares of concordant items both right ({', '.join(f'{r:g}' for r in SPLITS)}), "
                f"and at an even split; the old one and Tango's do not depend on the split. Flag: new coverage below "
                f"{FLOOR:g}.\n\n{body}\n\n{summary(results, failing)}\n")
    write(markdown)
    print(markdown)
    print(json.dumps({"cells": sum(len(r) for r in results.values()),
                      "failing": [dict(zip(("n", "q", "d_over_q", "coverage", "split"), f)) for f in failing]}))


if __name__ == "__main__":
    main()
