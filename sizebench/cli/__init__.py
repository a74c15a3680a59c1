"""The command line: each command registers itself on the one typer app (sizebench.cli.app) when imported here.
Heavy libraries are imported inside the commands."""

from sizebench.cli import (
    bench_command,
    cache_command,
    compare_command,
    eval_command,
    judge_command,
    models_command,
    plan_command,
    report_command,
)
from sizebench.cli.app import app, main

COMMANDS = (
    bench_command,
    cache_command,
    compare_command,
    eval_command,
    judge_command,
    models_command,
    plan_command,
    report_command,
)  # each registered itself on `app` when imported
__all__ = ["COMMANDS", "app", "main"]
