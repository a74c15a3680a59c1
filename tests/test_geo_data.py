"""Checks on the generated geography multiple-choice data files."""

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "sizebench" / "stages" / "tasks" / "geo" / "data"
CSV_PATH = DATA_DIR / "countries.csv"
SCRIPT = ROOT / "scripts" / "build_geo_tasks.py"

# jsonl task name -> CSV column holding the correct answer
TASKS = {
    "capitals": "capital",
    "highest_points": "highest_point",
    "currencies": "currency",
}
MIN_ITEMS = 150


def load_csv():
    with open(CSV_PATH, encoding="utf-8", newline="") as f:
        return {row["country"]: row for row in csv.DictReader(f)}


def load_jsonl(task):
    with open(DATA_DIR / f"{task}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def countries():
    return load_csv()


def test_csv_header_and_rows(countries):
    with open(CSV_PATH, encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["country", "capital", "continent", "highest_point", "currency"]
    assert len(countries) >= 185
    continents = {"Africa", "Asia", "Europe", "North America", "South America", "Oceania"}
    assert {row["continent"] for row in countries.values()} <= continents


@pytest.mark.parametrize("task", sorted(TASKS))
def test_item_count_and_uniqueness(task):
    items = load_jsonl(task)
    assert len(items) >= MIN_ITEMS
    countries = [it["country"] for it in items]
    ids = [it["id"] for it in items]
    assert len(set(countries)) == len(countries), "duplicate country"
    assert len(set(ids)) == len(ids), "duplicate id"
    assert all(i.startswith(f"{task}-") for i in ids)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_choices_and_label(task):
    for it in load_jsonl(task):
        choices = it["choices"]
        assert isinstance(choices, list) and len(choices) == 4, it
        assert all(isinstance(c, str) and c.strip() for c in choices), it
        assert len(set(choices)) == 4, it
        label = it["label"]
        assert isinstance(label, int) and not isinstance(label, bool), it
        assert 0 <= label < 4, it


@pytest.mark.parametrize("task", sorted(TASKS))
def test_labels_balanced(task):
    counts = Counter(it["label"] for it in load_jsonl(task))
    per_label = [counts.get(i, 0) for i in range(4)]
    assert max(per_label) - min(per_label) <= 1, per_label


@pytest.mark.parametrize("task", sorted(TASKS))
def test_answers_match_csv(task, countries):
    field = TASKS[task]
    for it in load_jsonl(task):
        row = countries[it["country"]]
        assert row[field], it
        assert it["choices"][it["label"]] == row[field], it
        assert it["choices"].count(row[field]) == 1, it


def test_generator_reproduces_files(tmp_path):
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for task in TASKS:
        name = f"{task}.jsonl"
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), name
