"""The command line: each command registers itself on the one typer app (sizebench.cli.app) when imported here.
Heavy libraries are imported inside the commands."""

from sizebench.cli import (bench_command, cache_command, compare_command, eval_command, judge_command,  # noqa: F401
                           models_command, plan_command, report_command)
from sizebench.cli.app import app, main  # noqa: F401
