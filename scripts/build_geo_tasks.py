#!/usr/bin/env python3
"""Build the geography multiple-choice tasks from countries.csv.

Reads sizebench/stages/tasks/geo/data/countries.csv and writes three JSON-lines
files (capitals.jsonl, highest_points.jsonl, currencies.jsonl), one item
per country:

    {"id": "capitals-001", "country": "...", "choices": [4 strings], "label": 0-3}

Distractors are other values of the same field, drawn from countries of the
same continent where possible. The position of the correct answer is
balanced over each file. Output is deterministic (fixed seed).

Usage: python3 scripts/build_geo_tasks.py [--out DIR]
"""

import argparse
import csv
import json
import random
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "sizebench" / "stages" / "tasks" / "geo" / "data"
CSV_PATH = DATA_DIR / "countries.csv"
SEED = 1234
N_CHOICES = 4

# task name -> CSV column
TASKS = {
    "capitals": "capital",
    "highest_points": "highest_point",
    "currencies": "currency",
}

# Values that are not in the CSV cell but are still defensible answers for a
# country (co-circulating legal tender, claimed highest points). They are
# never used as distractors for that country.
ALSO_CORRECT = {
    "currency": {
        "Bhutan": {"Indian rupee"},
        "Brunei": {"Singapore dollar"},
        "Cambodia": {"United States dollar"},
        "Eswatini": {"South African rand"},
        "Lesotho": {"South African rand"},
        "Liberia": {"United States dollar"},
        "Namibia": {"South African rand"},
        "Panama": {"United States dollar"},
    },
    "highest_point": {
        "India": {"K2"},
        "Israel": {"Mount Hermon"},
    },
}


def read_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = [{k: v.strip() for k, v in row.items()} for row in csv.DictReader(f)]
    return sorted(rows, key=lambda r: r["country"])


def pick_distractors(rng, banned, continent, by_continent, all_values):
    """Three values not in `banned`: same continent first, then any."""
    same = [v for v in by_continent[continent] if v not in banned]
    if len(same) >= N_CHOICES - 1:
        return rng.sample(same, N_CHOICES - 1)
    others = [v for v in all_values if v not in banned and v not in same]
    return same + rng.sample(others, N_CHOICES - 1 - len(same))


def build_task(rows, task, field):
    rng = random.Random(SEED)
    items = [r for r in rows if r[field]]

    by_continent = {}
    for r in items:
        by_continent.setdefault(r["continent"], set()).add(r[field])
    by_continent = {c: sorted(vals) for c, vals in by_continent.items()}
    all_values = sorted({r[field] for r in items})

    # Balanced answer positions: label = position % 4 after a seeded shuffle.
    order = list(range(len(items)))
    rng.shuffle(order)
    labels = [0] * len(items)
    for pos, i in enumerate(order):
        labels[i] = pos % N_CHOICES

    out = []
    for i, r in enumerate(items):
        answer = r[field]
        banned = {answer} | ALSO_CORRECT.get(field, {}).get(r["country"], set())
        choices = pick_distractors(rng, banned, r["continent"], by_continent, all_values)
        rng.shuffle(choices)
        choices.insert(labels[i], answer)
        assert len(set(choices)) == N_CHOICES and choices.count(answer) == 1
        out.append(
            {
                "id": f"{task}-{i + 1:03d}",
                "country": r["country"],
                "choices": choices,
                "label": labels[i],
            }
        )
    return out


def write_jsonl(path, items):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output directory (default: the data folder)")
    args = parser.parse_args(argv)

    rows = read_rows(CSV_PATH)
    args.out.mkdir(parents=True, exist_ok=True)
    for task, field in TASKS.items():
        items = build_task(rows, task, field)
        write_jsonl(args.out / f"{task}.jsonl", items)
        print(f"{task}: {len(items)} items -> {args.out / (task + '.jsonl')}")


if __name__ == "__main__":
    main()
