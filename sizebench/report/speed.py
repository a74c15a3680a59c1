"""Decode speed across prompts: how far one model's per-prompt figures spread around the median it reports.

The default protocol times each prompt once (`--repeat 1`); the summary's decode tok/s is the median
over prompts, so its precision comes from the number of prompts, and this section shows their spread.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from sizebench.runstore.frames import Frames
from sizebench.report.markdown import fmt_num, table
from sizebench.report.page import Page


def speed_section(fr: Frames, order: list[str]) -> str:
    prompts = fr["prompt"]
    if prompts.empty:
        return ""
    rows = []
    for name in order:
        mine = prompts[prompts["model"] == name]
        rates = mine["decode_tok_per_s"].dropna().to_numpy(dtype=float)
        if len(rates) < 2:
            continue
        runs = mine["decode_tok_per_s_runs"].map(len).median() if "decode_tok_per_s_runs" in mine else None
        p25, p75 = np.percentile(rates, [25, 75])
        rows.append(
            [
                name,
                len(rates),
                fmt_num(runs, "{:.0f}"),
                fmt_num(float(np.median(rates)), "{:.1f}"),
                f"{p25:.1f}-{p75:.1f}",
                fmt_num(float(stats.variation(rates, ddof=1)) * 100, "{:.1f}%"),
            ]
        )
    if not rows:
        return ""
    return (
        "## Decode speed across prompts\n\nThe summary's decode tok/s is the median over prompts; each prompt's "
        "figure is the median of its timed runs. Spread here is across prompts (prompt length and answer "
        "length differ), not run-to-run noise.\n\n"
        + table(
            [
                "model",
                "prompts",
                "timed runs per prompt",
                "median tok/s",
                "interquartile range",
                "coefficient of variation",
            ],
            rows,
        )
    )


def page_speed(p: Page) -> str:
    return speed_section(p.fr, p.order)
