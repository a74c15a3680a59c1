"""`sizebench judge RUN`: the judging page for a run's answers, or with --judge an LLM judge over them."""

from __future__ import annotations

import fcntl
import html
import ipaddress
import os
import signal
import socket
import sys
import tempfile
import webbrowser
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from sizebench.errors import SizebenchError
from sizebench.judging import pairs
from sizebench.system import supervise
from sizebench.runstore import frames
from sizebench.runstore.store import RunStore


def run_items(store: RunStore) -> list[pairs.Item]:
    fr = frames.load([store.dir])
    order = pairs.ladder(fr)
    if len(order) < 2:
        raise SizebenchError(
            f"run {store.run_id} has prompt answers from {len(order)} model(s); judging compares "
            f"two or more (run `sizebench compare` with several models)"
        )
    return pairs.items(fr)


def judge_with_model(store: RunStore, expression: str, settings, console: Console, err: Console) -> None:
    from sizebench import engines
    from sizebench.judging import llm_judge
    from sizebench.planning.registry import resolve

    specs = resolve(expression)
    if len(specs) != 1:
        raise SizebenchError(f"--judge takes one model, and '{expression}' names {len(specs)}")
    spec = specs[0]
    from sizebench.measurement.measure import resolve_device

    engines.get(spec.engine).check(spec, resolve_device(settings.device))
    items = run_items(store)
    rung = spec.name in pairs.ladder(frames.load([store.dir]))
    err.print(
        f"judge {spec.name}"
        + (" (itself one of the run's rungs)" if rung else "")
        + f": {sum(not i.identical for i in items)} pairs of answers, each in both orders; "
        f"{sum(i.identical for i in items)} identical pairs are ties",
        highlight=False,
        soft_wrap=True,
    )
    with stopped_cleanly(err, "judgements"):
        try:
            stored = llm_judge.run(store, items, spec, settings, err)
        except llm_judge.JudgeFailed as exc:
            import typer

            err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
    console.print(
        f"{stored} judgements by {spec.name} stored in run {store.run_id}; "
        f"`sizebench report {store.run_id}` renders them",
        highlight=False,
        soft_wrap=True,
    )


def serve_page(
    store: RunStore,
    host: str,
    port: int,
    open_browser: bool,
    console: Console,
    err: Console,
    allow_remote: bool = False,
) -> None:
    from sizebench.judging.screens import Judging
    from sizebench.judging.server import JudgingServer

    if not 0 <= port <= 65535:
        raise SizebenchError(f"--port must be 0 (any free port) to 65535, not {port}")
    if not _loopback(host) and not allow_remote:
        raise SizebenchError(
            f"--host {host} is not this machine's loopback: over plain HTTP anyone on that network "
            f"who sees the token can vote; add --allow-remote to serve it there anyway"
        )
    if not _loopback(host):
        err.print(
            f"warning: the judging page listens on {host} over plain HTTP (--allow-remote); anyone there who "
            f"sees the token can vote",
            highlight=False,
            soft_wrap=True,
        )
    with page_lock(store):
        judging = Judging(store, run_items(store))
        new = judging.record_identical()
        try:
            server = JudgingServer((host, port), judging)
        except (OSError, OverflowError) as exc:
            raise SizebenchError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from exc
        try:
            err.print(
                f"run {store.run_id}: {len(judging.shown)} screens to judge; {len(judging.identical)} identical "
                f"answers counted as ties"
                + (f" ({new} recorded now)" if new else "")
                + "; stop with Ctrl-C, start again to resume",
                highlight=False,
                soft_wrap=True,
            )
            console.print(f"judging page: {server.url}", highlight=False, soft_wrap=True)
            sys.stdout.flush()
            with stopped_cleanly(err, "votes"), opened_in_browser(server.url, open_browser):
                server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()


@contextmanager
def page_lock(store: RunStore):
    """One judging page per run: two would each keep their own open screens and votes."""
    path = store.dir / "judging.lock"
    try:
        handle = path.open("a+")
    except OSError as exc:
        raise SizebenchError(
            f"cannot write {path}: {exc.strerror or exc}; the page stores votes in the run folder"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when this process ends, however
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise SizebenchError(
                f"run {store.run_id} already has a judging page ({holder}); use that page, or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield


@contextmanager
def opened_in_browser(url: str, wanted: bool):
    """As Jupyter does: the browser gets a file only this user can read that redirects to the URL, so the token
    is never on a command line (which every user can read in /proc)."""
    if not (wanted and _has_browser()):
        yield
        return
    handle, name = tempfile.mkstemp(prefix="sizebench-judge-", suffix=".html")  # mode 0600
    try:
        target = html.escape(url, quote=True)
        with os.fdopen(handle, "w", encoding="utf-8") as page:
            page.write(
                f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={target}">'
                f'<title>sizebench judge</title><p><a href="{target}">Open the judging page</a></p>\n'
            )
        webbrowser.open(Path(name).as_uri())
        yield
    finally:
        Path(name).unlink(missing_ok=True)


@contextmanager
def stopped_cleanly(err: Console, what: str):
    """SIGINT, SIGTERM or SIGHUP: one line and exit 128 + the signal; what was stored stays."""
    import typer

    try:
        with supervise.stop_signals():
            yield
    except KeyboardInterrupt as exc:
        signum = supervise.signum_of(exc)
        err.print(
            f"stopped by {signal.Signals(signum).name}; the {what} made so far are stored, start again to resume",
            highlight=False,
        )
        raise typer.Exit(128 + signum) from None


def _loopback(host: str) -> bool:
    """Every address the name stands for is this machine's loopback (127.0.0.0/8 or ::1)."""
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def _has_browser() -> bool:
    """A graphical browser only: on a headless Linux, webbrowser would start a text one in this terminal."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        webbrowser.get()
        return True
    except webbrowser.Error:
        return False


def open_run(results: str, run: str) -> RunStore:
    return RunStore.open(Path(results), run)
