"""`sizebench eval`: lm-evaluation-harness tasks on each model."""

from sizebench.cli import run_command

run_command.register("eval", help="Run lm-evaluation-harness tasks on each model (accuracy +- stderr).")
