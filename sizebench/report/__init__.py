"""The report: results/report.md and a terminal summary, rendered only from stored runs.

The same Markdown sections go to the file and (the short ones) to the terminal through rich.
Rendering is deterministic: the same runs give byte-identical Markdown. One module per concern:
`markdown` (cells and tables), `summary` (the per-model table), `sections` (everything else).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markdown import Markdown

from sizebench import frames as frames_module
from sizebench.frames import Frames
from sizebench.report.markdown import cell, table
from sizebench.report.notes import skipped_tasks
from sizebench.report.sections import (answers_section, conclusion_section, metadata_section, protocol_section,
                                       published_section, tasks_section)
from sizebench.report.summary import summary, summary_table

__all__ = ["cell", "table", "summary", "summary_table", "render", "publish"]


def render(fr: Frames, plot_files: list[str], df: pd.DataFrame | None = None) -> str:
    df = summary(fr) if df is None else df
    order = list(df["model"])
    sections = ["# sizebench report", metadata_section(fr),
                "## Summary\n\nOne row per model, smallest first by total parameters (embeddings included; "
                "non-emb: without the input and untied output embeddings, Pythia's count). "
                "Accuracy is lm-eval `acc` ± stderr.\n\n"
                + summary_table(df),
                conclusion_section(df), tasks_section(fr, order), published_section(fr),
                "## Scaling plots\n\n" + "\n\n".join(f"![{Path(p).stem}]({p})" for p in plot_files) if plot_files else "",
                answers_section(fr, order), protocol_section(fr)]
    return "\n\n".join(s for s in sections if s) + "\n"


def publish(run_dirs: list[Path], results_dir: Path, console: Console, latest_only: bool = True) -> Path:
    """Write results/report.md (and plots) and print the summary, answers and conclusion."""
    from sizebench import plots

    fr = frames_module.load(run_dirs, latest_only)
    df = summary(fr)
    results_dir.mkdir(parents=True, exist_ok=True)
    plot_files = plots.write(df, results_dir)
    path = results_dir / "report.md"
    path.write_text(render(fr, plot_files, df), encoding="utf-8")
    console.print(Markdown("## Summary\n\n" + summary_table(df)))
    answers = answers_section(fr, list(df["model"]))
    if answers:
        console.print(Markdown(answers))
    skipped = skipped_tasks(fr)
    if skipped:
        console.print(Markdown(skipped))
    conclusion = conclusion_section(df)
    if conclusion:
        console.print(Markdown(conclusion))
    console.print(f"report: {path}", highlight=False)
    return path
