"""`sizebench compare`: the prompt suite on each model."""

from sizebench.cli import run_command

run_command.register("compare", help="Send a prompt suite to each model; answers side by side with latency and memory.")
