"""The typer application every command registers on, its consoles, and main(): every error one line."""

from __future__ import annotations

import signal
import sys
import warnings

import typer
from rich.console import Console
from typer.exceptions import TyperException

from sizebench.errors import SizebenchError

_python_warning = warnings.formatwarning
app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Compare language models of different sizes: answers, accuracy, latency, memory.",
)
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks.")) -> None:
    pass


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A skipped or repaired record is said in one line, as the errors are; other warnings as Python says them."""
    from sizebench.runstore.jsonl import StoreWarning

    if issubclass(category, StoreWarning):
        return f"warning: {message}\n"
    return _python_warning(message, category, filename, lineno, line)


def main() -> None:
    debug = "--debug" in sys.argv
    warnings.formatwarning = _one_line_warning
    try:
        code = app(standalone_mode=False)  # typer.Exit comes back as the return value here
        sys.exit(code if isinstance(code, int) else 0)
    except SizebenchError as exc:
        if debug:
            raise
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except TyperException as exc:  # typer's own usage errors: unknown option, bad number, ...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        err.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)  # supervise.Signalled carries SIGTERM or SIGHUP
        err.print(f"interrupted by {signal.Signals(signum).name}", highlight=False)
        sys.exit(128 + signum)
    except Exception as exc:  # a bug of ours: still one line, the traceback behind --debug
        if debug:
            raise
        err.print(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        sys.exit(1)
