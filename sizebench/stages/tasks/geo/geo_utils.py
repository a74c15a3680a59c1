"""Loads the bundled geography items from the JSON lines beside this file (no network)."""

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"


def load(data_file: str, **_ignored):
    import datasets

    rows = [json.loads(line) for line in (DATA / data_file).read_text(encoding="utf-8").splitlines() if line]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
