"""Coverage of 95% intervals for a paired accuracy difference (issue 19): the verdict's, the others, the old.

    .venv/bin/python benchmarks/coverage.py    # ~2 min on one core; writes coverage.md and RESULTS.md's section

Two models answer n items; each item falls in one of four cells: only a right (probability p10), only b
right (p01), both right, both wrong. Discordance q = p10 + p01, true difference d = p10 - p01, so
p10 = (q + d) / 2 and p01 = (q - d) / 2, over n in {20, 40, 100, 200, 565, 2000}, q in {2, 5, 10, 20, 40}%
and d in {0, 1/2, 1} x q: 90 cells.

Intervals compared, each a method the issue allows:
- Tango's score interval (Statistics in Medicine 17:891-908, 1998): `sizebench.analysis.paired.tango_interval`,
  the function the verdict's `compare` calls, on every outcome at once.
- Bonett & Price's adjusted Wald interval (J. Educ. Behav. Stat. 37:479-488, 2012): one pseudo-count
  added to each discordant cell, (n12 + 1) / (n + 2) and (n21 + 1) / (n + 2), Wald limits around their
  difference with variance ((p12 + p21) - (p12 - p21)^2) / (n + 2), truncated to [-1, 1].
- Newcombe's hybrid score interval (Statistics in Medicine 17:2635-2650, 1998, method 10): Wilson
  intervals for both accuracies combined through the corrected phi. It also depends on how the
  concordant items split into both right and both wrong, so each cell runs it at five shares r of
  concordant items both right, r in {0, 1/4, 1/2, 3/4, 1}, and reports the worst.
Tango's and Bonett-Price's depend on the discordant counts and n alone. Each is checked at start against
the published intervals for the Cavo et al. example (Fagerland, Lydersen & Laake, Statistics in
Medicine 33:2850-2875, 2014, and ocbe-uio/contingencytables' tests).

The verdict's interval is the one with no cell below 0.93 if any, else the fewest cells below 0.93, then
the highest worst cell; the text above the table ranks them by that rule.

Old: the percentile paired bootstrap (10,000 resamples) that `compare` used before, with its exact
(Clopper-Pearson) bound of +-(1 - 0.025^(1/n)) when no item is discordant. Running 10,000 resamples
per outcome is too slow here, so its limits are computed exactly instead: for 0/1 outcomes, a bootstrap
resample's difference is (A - B) / n with (A, B, rest) ~ Multinomial(n, (a_only/n, b_only/n, rest/n)),
whose distribution is the n-fold convolution of one item's (+1, -1, 0), computed by FFT; its 2.5% and
97.5% quantiles are the limits the bootstrap's percentiles converge to with many resamples.

For n <= 200 coverage is exact: every outcome weighted by its multinomial probability. For n = 565 and
2000 it is 20,000 seeded draws of (a_only, b_only, concordant), shared by all methods, the concordant
items then split binomially at each r for Newcombe's (Monte Carlo standard error about 0.0015 at 95%).
A cell counts as covered when low <= d <= high; failing cells (below 0.93) are reported, never dropped.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import gammaln, xlogy
from scipy.stats import norm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench.analysis.paired import CONFIDENCE, tango_interval  # noqa: E402

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
VERDICT = "Tango"  # the interval sizebench.analysis.paired.compare uses
METHODS = ("Tango", "Bonett-Price", "Newcombe")
CAVO = {"Tango": (-0.1240, -0.0054), "Bonett-Price": (-0.1195, -0.0032), "Newcombe": (-0.1186, -0.0046)}


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
        values = (p_b + (1 - p_a - p_b) * roots + p_a * roots**2) ** n
        cdf = np.cumsum(np.fft.fft(values, axis=1).real / size, axis=1)
        low[part] = (np.argmax(cdf >= tail - TOLERANCE, axis=1) - n) / n
        high[part] = (np.argmax(cdf >= 1 - tail - TOLERANCE, axis=1) - n) / n
    bound = 1 - tail ** (1 / n)  # Clopper-Pearson upper limit for 0 of n
    tie = (a_only + b_only) == 0
    return np.where(tie, -bound, low), np.where(tie, bound, high)


def bonett_price_interval(a_only, b_only, n: int) -> tuple[np.ndarray, np.ndarray]:
    p12, p21 = (np.asarray(a_only, dtype=float) + 1) / (n + 2), (np.asarray(b_only, dtype=float) + 1) / (n + 2)
    half = norm.ppf(1 - (1 - CONFIDENCE) / 2) * np.sqrt((p12 + p21 - (p12 - p21) ** 2) / (n + 2))
    return np.maximum(p12 - p21 - half, -1.0), np.minimum(p12 - p21 + half, 1.0)


def newcombe_interval(a_only, b_only, both, neither) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's method 10 from the four cells: statsmodels' Wilson intervals, phi corrected, 0 where
    a margin is empty (as Newcombe specifies)."""
    from statsmodels.stats.proportion import proportion_confint

    a_only, b_only, both, neither = np.broadcast_arrays(
        *(np.asarray(c, dtype=float) for c in (a_only, b_only, both, neither))
    )
    n = a_only + b_only + both + neither
    right_a, right_b = both + a_only, both + b_only
    p_a, p_b = right_a / n, right_b / n
    low_a, high_a = proportion_confint(right_a, n, alpha=1 - CONFIDENCE, method="wilson")
    low_b, high_b = proportion_confint(right_b, n, alpha=1 - CONFIDENCE, method="wilson")
    margins = right_a * (n - right_a) * right_b * (n - right_b)
    cross = both * neither - a_only * b_only
    corrected = np.where(cross > n / 2, cross - n / 2, np.where(cross < 0, cross, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(margins > 0, corrected / np.sqrt(margins), 0.0)
    down_a, up_a, down_b, up_b = p_a - low_a, high_a - p_a, p_b - low_b, high_b - p_b
    low = p_a - p_b - np.sqrt(np.maximum(down_a**2 - 2 * phi * down_a * up_b + up_b**2, 0))
    high = p_a - p_b + np.sqrt(np.maximum(down_b**2 - 2 * phi * down_b * up_a + up_a**2, 0))
    return low, high


def discordant_limits(a_only, b_only, n: int) -> dict:
    """The limits of the intervals that depend on the discordant counts alone."""
    return {
        "Tango": tango_interval(a_only, b_only, n),
        "Bonett-Price": bonett_price_interval(a_only, b_only, n),
        "old": old_limits(a_only, b_only, n),
    }


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
    limits = discordant_limits(pairs[0], pairs[1], n)
    counts = np.stack([a_only, b_only, both, neither])
    log_factor = gammaln(n + 1) - gammaln(counts + 1).sum(axis=0)
    pair_factor = gammaln(n + 1) - gammaln(pairs + 1).sum(axis=0) - gammaln(n - pairs.sum(axis=0) + 1)
    rows = {}
    for q in DISCORDANCE:
        for share in DIFFERENCE:
            d = share * q
            p = probabilities(q, d, 0.5)
            pair_weight = np.exp(
                pair_factor + xlogy(pairs[0], p[0]) + xlogy(pairs[1], p[1]) + xlogy(n - pairs.sum(axis=0), 1 - q)
            )
            row = {name: float(pair_weight[covers(*limit, d)].sum()) for name, limit in limits.items()}
            row["Newcombe"] = {}
            for r in SPLITS:
                p = probabilities(q, d, r)
                weight = np.exp(log_factor + xlogy(counts, p[:, None]).sum(axis=0))
                row["Newcombe"][r] = float(weight[covers(low, high, d)].sum())
            rows[(q, share)] = row
    return rows


def sampled(n: int, rng: np.random.Generator) -> dict:
    rows = {}
    for q in DISCORDANCE:
        for share in DIFFERENCE:
            d = share * q
            p = probabilities(q, d, 0.5)
            a_only, b_only, concordant = rng.multinomial(n, [p[0], p[1], 1 - q], size=DRAWS).T
            pairs, inverse = np.unique(np.stack([a_only, b_only]), axis=1, return_inverse=True)
            limits = discordant_limits(pairs[0], pairs[1], n)
            row = {name: float(covers(*limit, d)[inverse.ravel()].mean()) for name, limit in limits.items()}
            row["Newcombe"] = {}
            for r in SPLITS:
                both = rng.binomial(concordant, r)
                limits = newcombe_interval(a_only, b_only, both, concordant - both)
                row["Newcombe"][r] = float(covers(*limits, d).mean())
            rows[(q, share)] = row
    return rows


def figure(row: dict, name: str) -> float:
    return min(row[name].values()) if name == "Newcombe" else row[name]


def failing(results: dict, name: str) -> list[tuple]:
    return [
        (n, q, share, figure(row, name))
        for n, rows in results.items()
        for (q, share), row in rows.items()
        if figure(row, name) < FLOOR
    ]


def ranked(results: dict) -> list[tuple[str, int, float]]:
    """(method, cells below the floor, worst cell): none below first, then fewest, then the highest worst."""
    worst = {
        name: min(figure(row, name) for rows in results.values() for row in rows.values())
        for name in METHODS + ("old",)
    }
    return sorted(
        ((name, len(failing(results, name)), worst[name]) for name in METHODS + ("old",)),
        key=lambda entry: (entry[0] == "old", entry[1], -entry[2]),
    )


def table(results: dict) -> str:
    lines = [
        (
            f"| n | discordance | true d | {VERDICT} (the verdict's) | Bonett-Price | Newcombe (worst split) | "
            "Newcombe's worst split (both right) | old | how | flag |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, rows in results.items():
        how = "exact" if n <= EXACT_UP_TO else f"{DRAWS:,} draws"
        for (q, share), row in rows.items():
            split = min(row["Newcombe"], key=row["Newcombe"].get)
            flag = f"**{VERDICT} below {FLOOR:g}**" if row[VERDICT] < FLOOR else ""
            lines.append(
                f"| {n} | {q:.0%} | {share * q:.3f} | {row['Tango']:.4f} | {row['Bonett-Price']:.4f} | "
                f"{row['Newcombe'][split]:.4f} | {split:g} | {row['old']:.4f} | {how} | {flag} |"
            )
    return "\n".join(lines)


def choice(results: dict, cells: int) -> str:
    ranking = ranked(results)
    named = {
        "Tango": "Tango's score interval",
        "Bonett-Price": "Bonett-Price's adjusted Wald",
        "Newcombe": "Newcombe's method 10 (worst of the splits)",
        "old": "the old percentile bootstrap (exact bound at 0 discordant)",
    }
    text = (
        f"The verdict uses {named[VERDICT]}: the rule is no cell below {FLOOR:g} if any interval has none, "
        f"else the fewest such cells, then the highest worst cell, over all {cells} cells. Cells below "
        f"{FLOOR:g} (worst cell): "
        + "; ".join(f"{named[name]} {count} ({worst:.4f})" for name, count, worst in ranking)
        + "."
    )
    if ranking[0][0] != VERDICT:
        text += f" **This run ranks {named[ranking[0][0]]} first, not the verdict's {VERDICT}.**"
    elif ranking[1][1] == ranking[0][1]:
        text += (
            f" {VERDICT} and {ranking[1][0]} fail as many cells; {VERDICT}'s worst cell is higher by "
            f"{ranking[0][2] - ranking[1][2]:.5f}, so on this grid the two are about equally good."
        )
    return text


def summary(results: dict) -> str:
    parts = []
    for name in (VERDICT,) + tuple(m for m in METHODS + ("old",) if m != VERDICT):
        cells = failing(results, name)
        listed = "; ".join(f"n = {n}, q = {q:.0%}, d = {share * q:.3f} ({c:.4f})" for n, q, share, c in cells)
        parts.append(f"{name}: {len(cells)} cell(s) below {FLOOR:g}" + (f": {listed}." if cells else "."))
    return "Failing cells, all of them. " + " ".join(parts)


def write(markdown: str) -> None:
    (REPO / "benchmarks" / "coverage.md").write_text(markdown + "\n")
    results_md = REPO / "benchmarks" / "RESULTS.md"
    text = results_md.read_text()
    section = f"{BEGIN}\n## Interval coverage (issue 19)\n\n{markdown}\n{END}"
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results_md.write_text(text)


def check_published() -> None:
    got = {
        "Tango": tango_interval(6, 16, 161),
        "Bonett-Price": bonett_price_interval(6, 16, 161),
        "Newcombe": newcombe_interval(6, 16, 59, 80),
    }
    for name, expected in CAVO.items():
        if not np.allclose([float(v) for v in got[name]], expected, atol=5e-5):
            sys.exit(f"coverage.py: {name} gives {got[name]} for the Cavo example, not {expected}")


def main() -> None:
    check_published()
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    results = {n: exact(n) if n <= EXACT_UP_TO else sampled(n, rng) for n in SIZES}
    cells = sum(len(rows) for rows in results.values())
    markdown = (
        f"Made by `{COMMAND}` (the docstring says how); {time.perf_counter() - started:.0f} s. "
        f"Coverage of 95% intervals for the paired difference d. {choice(results, cells)} "
        f"Newcombe's at the worst of {len(SPLITS)} shares of concordant items both right "
        f"({', '.join(f'{r:g}' for r in SPLITS)}); the others do not depend on the split. Flag: the "
        f"verdict's interval below {FLOOR:g}.\n\n{table(results)}\n\n{summary(results)}\n"
    )
    write(markdown)
    print(markdown)
    print(
        json.dumps(
            {
                "cells": cells,
                "ranking": [dict(zip(("method", "failing", "worst"), r)) for r in ranked(results)],
                "failing": {
                    name: [dict(zip(("n", "q", "d_over_q", "coverage"), f)) for f in failing(results, name)]
                    for name in METHODS + ("old",)
                },
            }
        )
    )


if __name__ == "__main__":
    main()
