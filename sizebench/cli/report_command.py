"""`sizebench report`: the verdict, the terminal summary and the report file, from stored runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from sizebench.cli import options
from sizebench.cli.app import app, out
from sizebench.errors import SizebenchError
from sizebench.specs.settings import check_margin

RESULTS, REPORT = (
    options.typer_option(options.option_of("--results")),
    options.typer_option(options.option_of("--report")),
)
MARGIN, BASELINE = (
    options.typer_option(options.option_of("--margin")),
    options.typer_option(options.option_of("--baseline")),
)


@app.command()
def report(
    runs: Optional[list[str]] = typer.Argument(None, help="Run ids or folders (default: the latest run)."),
    results: str = RESULTS,
    report_name: str = REPORT,
    every_run: bool = typer.Option(False, "--every-run", help="Keep a model measured in several runs once per run."),
    margin: float = MARGIN,
    baseline: Optional[str] = BASELINE,
    price_per_hour: Optional[float] = typer.Option(
        None, "--price-per-hour", help="Price of one device-hour; adds money per million tokens to the cost table."
    ),
    reference: Optional[str] = typer.Option(
        None,
        "--reference",
        metavar="MODEL",
        help="Show agreement against this rung only (one whose distributions the run stored).",
    ),
) -> None:
    """Render the verdict, the terminal summary and results/report.md from stored runs."""
    from sizebench import report as report_module
    from sizebench.runstore.store import RunStore

    check_margin(margin)
    if price_per_hour is not None and not price_per_hour > 0:
        raise SizebenchError(f"--price-per-hour must be a positive price, not {price_per_hour:g}")
    stores = [RunStore.open(Path(results), r) for r in runs] if runs else [RunStore.latest(Path(results))]
    report_module.publish(
        [s.dir for s in stores],
        Path(results),
        out,
        latest_only=not every_run,
        margin=margin,
        price_per_hour=price_per_hour,
        name=options.report_name(report_name),
        reference=reference,
        baseline=baseline,
    )
