"""The verdict's ladder-wide error and the power of "items needed", by seeded simulation (issue 32).

    .venv/bin/python benchmarks/verdict_error.py [--reps 20000] [--power-reps 4000] [--seed 0]

Ladder error: a baseline right on 60% of n = 500 items and k smaller rungs, each in truth exactly the margin
(0.05) worse (right for the baseline only on 10% of items, for the rung only on 5%), or in truth as good
(5% and 5%); the rungs' outcomes are correlated through a shared per-item draw (half the time). Each
simulated ladder goes through sizebench's own fixed sequence (`fixed_sequence.test`, Holm within tiers of
equal size) on Tango's counts; "error" is any rung in truth worse by the margin shown within it. Beside it,
"each on its own": the old rule's error, a rung recommended whenever its own 95% interval ends below the margin.

Power: for a grid of shares of items right for the baseline only and for the rung only, the items
`paired.items_needed` asks for, then the share of simulated item sets of that size whose Tango interval
ends below the margin (the rung shown within it), and `paired.power`'s exact value at that count and at one
item fewer (with few discordant items the power moves in steps larger than a few points).
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench.analysis import fixed_sequence, paired  # noqa: E402
from sizebench.analysis.paired import Paired  # noqa: E402

MARGIN = 0.05
ITEMS = 500
BASE_RIGHT = 0.6
SHARED = 0.5  # the chance that a rung's item draw is the item's shared one (correlated rungs)
AT_MARGIN = (0.10, 0.05)  # (baseline only, rung only): 0.05 worse, on the boundary of the null
AS_GOOD = (0.05, 0.05)
# (rungs, tier size, rungs in truth as good, largest first)
SCENARIOS = [(1, 1, 0), (4, 1, 0), (8, 1, 0), (8, 2, 0), (8, 1, 4)]
GRID = [
    (0.01, 0.0),
    (0.02, 0.0),
    (0.03, 0.0),
    (0.005, 0.005),
    (0.015, 0.005),
    (0.025, 0.005),
    (0.01, 0.01),
    (0.02, 0.01),
    (0.03, 0.01),
    (0.04, 0.01),
    (0.02, 0.02),
    (0.04, 0.02),
    (0.05, 0.02),
    (0.05, 0.05),
    (0.07, 0.05),
    (0.1, 0.1),
    (0.12, 0.1),
    (0.2, 0.2),
    (0.22, 0.2),
]


def discordant_counts(shares: list[tuple[float, float]], reps: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(reps, rungs) counts of items right for the baseline only and for each rung only."""
    base = rng.random((reps, ITEMS)) < BASE_RIGHT
    shared = rng.random((reps, ITEMS))
    a_only, b_only = [], []
    for base_only, rung_only in shares:
        draw = np.where(rng.random((reps, ITEMS)) < SHARED, shared, rng.random((reps, ITEMS)))
        lost = base & (draw < base_only / BASE_RIGHT)
        won = ~base & (draw < rung_only / (1 - BASE_RIGHT))
        a_only.append(lost.sum(axis=1))
        b_only.append(won.sum(axis=1))
    return np.array(a_only).T, np.array(b_only).T


def ladder_error(rungs: int, tier: int, as_good: int, reps: int, rng) -> dict:
    shares = [AS_GOOD] * as_good + [AT_MARGIN] * (rungs - as_good)  # largest first
    names = [f"r{i}" for i in range(rungs)]
    bad = set(names[as_good:])
    tiers = [names[i : i + tier] for i in range(0, rungs, tier)][::-1] + [["baseline"]]  # smallest first
    a_only, b_only = discordant_counts(shares, reps, rng)
    low, high = paired.tango_interval(a_only, b_only, ITEMS)
    wrong = own = 0
    for r in range(reps):
        vs = {
            m: Paired(
                ITEMS,
                (a_only[r, j] - b_only[r, j]) / ITEMS,
                low[r, j],
                high[r, j],
                int(a_only[r, j]),
                int(b_only[r, j]),
                float("nan"),
                float("nan"),
            )
            for j, m in enumerate(names)
        }
        test = fixed_sequence.test(tiers, "baseline", vs, MARGIN)
        wrong += bool(bad & set(test.within))
        own += bool((high[r, as_good:] < MARGIN).any())
    return {
        "rungs": rungs,
        "tier": tier,
        "as_good": as_good,
        "reps": reps,
        "error": wrong / reps,
        "error_se": float(np.sqrt(max(wrong, 1) / reps * (1 - wrong / reps) / reps)),
        "each_on_its_own": own / reps,
    }


def power_cell(base_only: float, rung_only: float, reps: int, rng) -> dict:
    scale = 10**6
    n = paired.items_needed(round(base_only * scale), round(rung_only * scale), scale, MARGIN)
    counts = rng.multinomial(n, [base_only, rung_only, 1 - base_only - rung_only], size=reps)
    high = paired.tango_interval(counts[:, 0], counts[:, 1], n)[1]
    return {
        "base_only": base_only,
        "rung_only": rung_only,
        "items": n,
        "power": float((high < MARGIN).mean()),
        "exact": paired.power(base_only, rung_only, n, MARGIN),
        "exact_one_fewer": paired.power(base_only, rung_only, n - 1, MARGIN),
    }


def run(reps: int, power_reps: int, seed: int, scenarios=SCENARIOS, grid=GRID) -> dict:
    paired.holm([0.5, 0.5])  # imports statsmodels' multipletests, which runs gc.collect() on every call:
    gc.freeze()  # with the imports' objects out of its reach, that takes microseconds, not 50 ms
    rng = np.random.default_rng(seed)
    return {
        "alpha": paired.ALPHA,
        "margin": MARGIN,
        "items": ITEMS,
        "seed": seed,
        "ladders": [ladder_error(*s, reps, rng) for s in scenarios],
        "power": [power_cell(*g, power_reps, rng) for g in grid],
    }


def markdown(result: dict) -> str:
    lines = [
        f"Ladder-wide error (alpha {result['alpha']:.3f}, margin {result['margin']}, n = {result['items']}):",
        "",
        "| smaller rungs | tier size | in truth as good (largest) | ladders | error (fixed sequence) | "
        "each on its own |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["ladders"]:
        lines.append(
            f"| {r['rungs']} | {r['tier']} | {r['as_good']} | {r['reps']} | {r['error']:.4f} ± "
            f"{r['error_se']:.4f} | {r['each_on_its_own']:.4f} |"
        )
    lines += [
        "",
        'Power of "items needed" (margin 0.05):',
        "",
        "| baseline only | rung only | items needed | simulated power | exact power | exact power, one item fewer |",
        "|---|---|---|---|---|---|",
    ]
    for c in result["power"]:
        lines.append(
            f"| {c['base_only']} | {c['rung_only']} | {c['items']} | {c['power']:.3f} | {c['exact']:.3f} | "
            f"{c['exact_one_fewer']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20000)
    parser.add_argument("--power-reps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run(args.reps, args.power_reps, args.seed)
    print(markdown(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
