"""Published reference accuracies (the Dolly v2 model card), joined to measured task records.

Each published value carries its lm-eval metric (acc or acc_norm, settled in the CSV's comment from
Pythia's own results), and the join compares like with like: measured acc_norm against a published
acc_norm, measured acc against a published acc.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CARD = Path(__file__).parent / "reference" / "dolly_card.csv"
SOURCE_NOTE = (
    'Published values: the "Benchmark Metrics" table of the databricks/dolly-v2-12b model card '
    "(lm-evaluation-harness). The card names no metric: comparing its Pythia rows with Pythia's own "
    "zero-shot results shows `acc_norm` for openbookqa, arc_easy, arc_challenge, hellaswag and piqa, "
    "and `acc` for winogrande and boolq (evidence in sizebench/analysis/reference/dolly_card.csv); each row "
    "compares the same metric. The card does not state few-shot counts; they are read as zero-shot, "
    "so compare with zero-shot runs (`--num-fewshot 0`)."
)


def published() -> pd.DataFrame:
    """Long form: one row per (hub id, task, metric) with the published value."""
    card = pd.read_csv(CARD, comment="#")
    return card.rename(columns={"model": "location", "value": "published"})


def join(tasks: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Measured rows whose (model, task, metric) has a published value, with the difference in stderr units."""
    if tasks.empty:
        return pd.DataFrame()
    measured = tasks.merge(models[["model", "location"]], on="model", how="left")
    joined = measured.merge(published(), on=["location", "task", "metric"], how="inner")
    if joined.empty:
        return joined
    joined["diff_in_stderr"] = (joined["value"] - joined["published"]) / joined["stderr"]
    return joined.sort_values(["model", "task"]).reset_index(drop=True)
