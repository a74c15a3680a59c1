"""`sizebench bench`: every stage on each model, then the report."""

from sizebench.cli import run_command

run_command.register(
    "bench",
    help="The whole benchmark per model: load, prompt suite, lm-eval tasks, agreement with a "
    "reference rung, the load sweep of served rungs; then the report.",
)
