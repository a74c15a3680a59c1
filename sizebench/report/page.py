"""What every section of the report renders from: one signature, `section(page) -> Markdown` ("" leaves it out)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sizebench.analysis.analyse import Analysis
from sizebench.runstore.frames import Frames


@dataclass(frozen=True)
class Page:
    fr: Frames  # the runs' records as tables
    df: pd.DataFrame  # the per-model table (sizebench.analysis.per_model)
    a: Analysis
    plot_files: tuple[str, ...]  # the plots drawn beside the report, by file name
    prefix: str  # their names' prefix (plot_, or the report's stem)

    @property
    def order(self) -> list[str]:
        return list(self.df["model"])
