"""Coverage and items saved by `--until-decided`'s confidence sequence (sizebench.analysis.confseq), simulated.

Each cell: a task of N items whose paired differences (baseline - rung) have the given share of discordant items
and accuracy gap; the items drawn in a random order, in chunks of 32, stopping as the runner does (the sequence's
interval wholly below or at/above the margin) or when the items run out. Reported per cell:
- covered always: the share of tasks where the sequence held the task's own difference (the full run's) at
  every chunk boundary up to all N items (the time-uniform guarantee, >= 95% required);
- covered at stop: held it where the run stopped;
- wrong decisions: called within the margin with the truth at or beyond it, or worse with the truth below;
- items run: the mean share of the N items the baseline answered.
The last line of stdout is one JSON object with every cell.

    python benchmarks/sequential.py [--reps 200] [--items 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sizebench.analysis import confseq

MARGIN, CHUNK, ALPHA = 0.05, 32, 0.05
CELLS = [(0.1, 0.0), (0.1, 0.03), (0.1, 0.05), (0.1, 0.08), (0.3, 0.0), (0.3, 0.05), (0.3, 0.10), (0.3, 0.20)]


def task(rng, items: int, discordant: float, gap: float) -> np.ndarray:
    """A population with (discordant + gap) / 2 baseline-only items and (discordant - gap) / 2 rung-only, shuffled."""
    a_only, b_only = round(items * (discordant + gap) / 2), round(items * (discordant - gap) / 2)
    d = np.zeros(items, dtype=int)
    d[:a_only], d[a_only : a_only + b_only] = 1, -1
    return rng.permutation(d)


def one(rng, items: int, discordant: float, gap: float) -> dict:
    d = task(rng, items, discordant, gap)
    truth = d.mean()
    up, down = confseq.max_log_capital((d + 1) / 2, [(truth + 1) / 2], items, ALPHA)
    always = max(up[0], down[0]) < np.log(2 / ALPHA)  # never excluded at any item, so at no chunk boundary
    n = CHUNK
    while True:
        n = min(n, items)
        s = confseq.sequence(d[:n], MARGIN, items, ALPHA)
        if s.decided() or n == items:
            break
        n += CHUNK
    wrong = (s.high < MARGIN and truth >= MARGIN) or (s.low >= MARGIN and truth < MARGIN)
    return {
        "always": bool(always),
        "at_stop": bool(s.low <= truth <= s.high),
        "wrong": bool(wrong),
        "n": n,
        "decided": s.decided(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows = []
    print(f"{args.reps} tasks of {args.items} items per cell, margin {MARGIN}, chunks of {CHUNK}, alpha {ALPHA}\n")
    print(
        "| discordant | gap | covered always | covered at stop | wrong decisions | decided | items run (mean) | "
        "baseline items cut |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for discordant, gap in CELLS:
        runs = [one(rng, args.items, discordant, gap) for _ in range(args.reps)]
        share = np.mean([r["n"] for r in runs]) / args.items
        row = {
            "discordant": discordant,
            "gap": gap,
            "covered_always": np.mean([r["always"] for r in runs]),
            "covered_at_stop": np.mean([r["at_stop"] for r in runs]),
            "wrong": np.mean([r["wrong"] for r in runs]),
            "decided": np.mean([r["decided"] for r in runs]),
            "items_share": share,
        }
        rows.append({k: float(v) for k, v in row.items()})
        print(
            f"| {discordant:g} | {gap:g} | {row['covered_always']:.1%} | {row['covered_at_stop']:.1%} | "
            f"{row['wrong']:.1%} | {row['decided']:.0%} | {share:.1%} | {1 / share:.1f}x |"
        )
    print(f"\n{time.perf_counter() - started:.0f} s")
    print(json.dumps({"reps": args.reps, "items": args.items, "seed": args.seed, "cells": rows}))


if __name__ == "__main__":
    main()
