"""Published reference accuracies (the Dolly v2 model card), joined to measured task records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CARD = Path(__file__).parent / "reference" / "dolly_card.csv"
SOURCE_NOTE = ("Published values: the \"Benchmark Metrics\" table of the databricks/dolly-v2-12b model card "
               "(lm-evaluation-harness). The card does not state few-shot counts; they are read as zero-shot, "
               "so compare with zero-shot runs (`--num-fewshot 0`).")


def published() -> pd.DataFrame:
    """Long form: one row per (hub id, task) with the published accuracy."""
    wide = pd.read_csv(CARD, comment="#")
    return wide.melt(id_vars="model", var_name="task", value_name="published").rename(columns={"model": "location"})


def join(tasks: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Measured `acc` rows that have a published value, with the difference in stderr units."""
    if tasks.empty:
        return pd.DataFrame()
    measured = tasks[tasks["metric"] == "acc"].merge(models[["model", "location"]], on="model", how="left")
    joined = measured.merge(published(), on=["location", "task"], how="inner")
    if joined.empty:
        return joined
    joined["diff_in_stderr"] = (joined["value"] - joined["published"]) / joined["stderr"]
    return joined.sort_values(["model", "task"]).reset_index(drop=True)
