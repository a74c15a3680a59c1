"""`sizebench judge`: blind side-by-side judging of a run's answers."""

from __future__ import annotations

from typing import Optional

import typer

from sizebench.cli import options
from sizebench.cli.app import app, err, out

RESULTS = options.typer_option(options.option_of("--results"))
DEVICE, DTYPE = options.typer_option(options.option_of("--device")), options.typer_option(options.option_of("--dtype"))
THREADS, FORCE = (
    options.typer_option(options.option_of("--threads")),
    options.typer_option(options.option_of("--force")),
)


@app.command()
def judge(
    run: str = typer.Argument(..., help="Run id or folder (as `sizebench report` takes)."),
    results: str = RESULTS,
    judge_model: Optional[str] = typer.Option(
        None,
        "--judge",
        metavar="MODEL",
        help="An LLM judge instead of the page: any model expression (built-in, hub id, folder, .gguf).",
    ),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address the page listens on: loopback (127.0.0.1, ::1), or another with --allow-remote.",
    ),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Let --host be an address other machines reach (plain HTTP: anyone who sees the token there can vote).",
    ),
    port: int = typer.Option(0, "--port", help="Port of the page (0: any free port)."),
    no_open: bool = typer.Option(False, "--no-open", help="Only print the page's URL; do not open a browser."),
    device: str = DEVICE,
    dtype: str = DTYPE,
    threads: Optional[int] = THREADS,
    force: bool = FORCE,
) -> None:
    """Blind side-by-side judging of a run's answers: a local page for people, or --judge MODEL."""
    from sizebench.judging import command

    store = command.open_run(results, run)
    if judge_model:
        from sizebench.judging.llm_judge import Settings

        command.judge_with_model(store, judge_model, Settings(device, dtype, threads, force), out, err)
    else:
        command.serve_page(store, host, port, not no_open, out, err, allow_remote)
