"""The report: results/report.md and a terminal summary, rendered only from stored runs.

The same Markdown sections go to the file and (the short ones) to the terminal through rich.
Rendering is deterministic: the same runs give byte-identical Markdown. The figures are computed in
sizebench.analysis (analyse); each section formats them from one Page, and `layout` lists the sections in order.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markdown import Markdown

from sizebench.analysis import agreement as agreement_figures
from sizebench.analysis import per_model, serving
from sizebench.analysis.analyse import Analysis, analyse
from sizebench.specs.settings import DEFAULT_MARGIN
from sizebench.report import layout, sections, verdict_section
from sizebench.report.markdown import cell, table
from sizebench.report.notes import skipped_tasks
from sizebench.report.page import Page
from sizebench.report.serving_section import plot as serving_plot
from sizebench.report.summary import summary_table
from sizebench.runstore import frames as frames_module
from sizebench.system import atomic
from sizebench.runstore.frames import Frames

__all__ = ["cell", "table", "summary_table", "render", "publish"]


def render(
    fr: Frames,
    plot_files: list[str],
    df: pd.DataFrame | None = None,
    margin: float = DEFAULT_MARGIN,
    price_per_hour: float | None = None,
    analysis: Analysis | None = None,
    prefix: str = "plot_",
) -> str:
    df = per_model.summary(fr) if df is None else df
    a = analyse(fr, df, margin, price_per_hour) if analysis is None else analysis
    return layout.markdown(Page(fr, df, a, tuple(plot_files), prefix))


def publish(
    run_dirs: list[Path],
    results_dir: Path,
    console: Console,
    latest_only: bool = True,
    margin: float = DEFAULT_MARGIN,
    price_per_hour: float | None = None,
    name: str = "report.md",
    reference: str | None = None,
    baseline: str | None = None,
) -> Path:
    """Write results/<name> (and plots) and print the verdict, summary, answers and conclusion.

    Plots of report.md are plot_*.png; another name's take its stem (precision-report_accuracy.png),
    so two reports side by side keep their own."""
    from sizebench.report import plots

    fr = frames_module.load(run_dirs, latest_only)
    df = per_model.summary(fr)
    a = analyse(fr, df, margin, price_per_hour, reference, baseline)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / name
    prefix = "plot_" if name == "report.md" else f"{path.stem}_"
    plot_files = plots.write(df, a.size_axis, results_dir, prefix)
    if a.frontier and a.frontier.points:
        plots.frontier(
            a.frontier.points,
            a.frontier.recommended,
            a.frontier.front,
            f"{a.frontier.outcomes.name} accuracy",
            results_dir,
            prefix,
        )
    plots.scaling_fit(a.fits, f"{a.headline} accuracy", results_dir, prefix)
    serving_plot(serving.levels(fr), results_dir, prefix)
    figures = agreement_figures.token_figures(fr, a.agreement)
    drawn = (
        plots.agreement(figures, dict(zip(df["model"], df.get("weights_mem_mb", []))), results_dir, prefix)
        if not figures.empty
        else None
    )
    plot_files = plot_files + ([drawn] if drawn else [])
    atomic.write_text(path, render(fr, plot_files, df, analysis=a, prefix=prefix))
    page = Page(fr, df, a, tuple(plot_files), prefix)
    console.print(Markdown(verdict_section.page_verdict(page)))
    console.print(Markdown("## Summary\n\n" + summary_table(df)))
    for text in (sections.page_answers(page), skipped_tasks(fr), sections.page_conclusion(page)):
        if text:
            console.print(Markdown(text))
    console.print(f"report: {path}", highlight=False)
    return path
