"""The report: results/report.md and a terminal summary, rendered only from stored runs.

The same Markdown sections go to the file and (the short ones) to the terminal through rich.
Rendering is deterministic: the same runs give byte-identical Markdown. One module per concern:
`markdown` (cells and tables), `summary` (the per-model table), `verdict` (the verdict, paired
comparisons and flips), `cost` (cost frontier, scaling fit), `sections` (everything else).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markdown import Markdown

from sizebench.analysis import agreement as agreement_figures
from sizebench.analysis.analyse import Analysis, analyse
from sizebench.runstore import atomic, frames as frames_module
from sizebench.runstore.frames import Frames
from sizebench.report import cost_section as report_cost
from sizebench.report.agreement_section import agreement_section, verdict_notes
from sizebench.report import verdict_section as verdict_report
from sizebench.report.markdown import cell, table
from sizebench.report.notes import skipped_tasks
from sizebench.report.precision_section import precision_section
from sizebench.report.serving_section import plot as serving_plot, serving_section
from sizebench.analysis import serving
from sizebench.report.preference_section import preference_section
from sizebench.report.sections import (answers_section, conclusion_section, metadata_section, protocol_section,
                                       published_section, tasks_section)
from sizebench.report.speed import speed_section
from sizebench.analysis import per_model
from sizebench.report.summary import summary_prose, summary_table
from sizebench.analysis.verdict import DEFAULT_MARGIN

__all__ = ["cell", "table", "summary_table", "render", "publish"]


def render(fr: Frames, plot_files: list[str], df: pd.DataFrame | None = None, margin: float = DEFAULT_MARGIN,
           price_per_hour: float | None = None, analysis: Analysis | None = None, prefix: str = "plot_") -> str:
    df = per_model.summary(fr) if df is None else df
    a = analyse(fr, df, margin, price_per_hour) if analysis is None else analysis
    order = list(df["model"])
    scaling_plots = [p for p in plot_files if not p.endswith("agreement.png")]
    judged = frozenset(v.outcomes.name for v in a.verdicts)
    notes = verdict_notes(fr, a.agreement)
    agreement_plot = next((p for p in plot_files if p.endswith("agreement.png")), None)
    sections = ["# sizebench report",
                verdict_report.verdict_section(a.verdicts, a.margin, a.size_axis, not fr["task"].empty, notes,
                                               a.baseline),
                preference_section(fr, a.margin, a.baseline), metadata_section(fr),
                "## Summary\n\n" + summary_prose(a.size_axis, _mapped(df), a.overhead) + "\n\n" + summary_table(df),
                verdict_report.evidence_section(a.verdicts),
                report_cost.cost_section(a.costs, a.frontier, a.price_per_hour, prefix, a.overhead),
                report_cost.scaling_section(a.fits, a.too_few, a.headline, prefix),
                conclusion_section(df, a.size_axis, judged, a.overhead is None), precision_section(fr, df),
                agreement_section(fr, df, a.agreement, agreement_plot), tasks_section(fr, order), published_section(fr),
                "## Scaling plots\n\n" + "\n\n".join(f"![{Path(p).stem}]({p})" for p in scaling_plots)
                if scaling_plots else "",
                serving_section(serving.levels(fr), prefix),
                verdict_report.flips_section(fr, a.verdicts), answers_section(fr, order), speed_section(fr, order),
                protocol_section(fr)]
    return "\n\n".join(s for s in sections if s) + "\n"


def publish(run_dirs: list[Path], results_dir: Path, console: Console, latest_only: bool = True,
            margin: float = DEFAULT_MARGIN, price_per_hour: float | None = None, name: str = "report.md",
            reference: str | None = None, baseline: str | None = None) -> Path:
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
        plots.frontier(a.frontier.points, a.frontier.recommended, a.frontier.front,
                       f"{a.frontier.outcomes.name} accuracy", results_dir, prefix)
    plots.scaling_fit(a.fits, f"{a.headline} accuracy", results_dir, prefix)
    serving_plot(serving.levels(fr), results_dir, prefix)
    figures = agreement_figures.token_figures(fr, a.agreement)
    drawn = plots.agreement(figures, dict(zip(df["model"], df.get("weights_mem_mb", []))), results_dir, prefix) \
        if not figures.empty else None
    plot_files = plot_files + ([drawn] if drawn else [])
    atomic.write_text(path, render(fr, plot_files, df, analysis=a, prefix=prefix))
    console.print(Markdown(verdict_report.verdict_section(a.verdicts, a.margin, a.size_axis, not fr["task"].empty,
                                                          verdict_notes(fr, a.agreement), a.baseline)))
    console.print(Markdown("## Summary\n\n" + summary_table(df)))
    answers = answers_section(fr, list(df["model"]))
    if answers:
        console.print(Markdown(answers))
    skipped = skipped_tasks(fr)
    if skipped:
        console.print(Markdown(skipped))
    conclusion = conclusion_section(df, a.size_axis, frozenset(v.outcomes.name for v in a.verdicts),
                                    a.overhead is None)
    if conclusion:
        console.print(Markdown(conclusion))
    console.print(f"report: {path}", highlight=False)
    return path


def _mapped(df: pd.DataFrame) -> bool:
    return "weights_resident_mb" in df and df["weights_resident_mb"].notna().any()
