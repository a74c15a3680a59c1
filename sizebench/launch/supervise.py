"""Supervising a worker process: how it is started, followed, timed and stopped.

Workers run in their own session, so a terminal's Ctrl-C reaches only the CLI; the CLI forwards
every way of stopping (SIGINT, SIGTERM, SIGHUP, a stage's time limit) to the worker's process group
itself: SIGTERM, which the worker turns into an unwind outside any record write, then SIGKILL after
a grace period. A worker whose parent dies without forwarding anything (SIGKILL, a crash) stops on
its own through `die_with_parent`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = float(os.environ.get("SIZEBENCH_STOP_GRACE_S", "10"))
PARENT_ENV = "SIZEBENCH_PARENT_PID"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
STAGE_OF_EVENT = {"loading": "load", "prompts": "prompts", "batched": "prompts", "tasks": "tasks", "sweep": "sweep"}


class Signalled(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP to the CLI, raised in its main thread as Ctrl-C is."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupted(Exception):
    """The CLI was told to stop; the worker has been stopped and its finished records are kept."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class TimedOut(Exception):
    """A stage ran past --timeout; the worker has been stopped and its finished records are kept."""

    def __init__(self, stage: str, limit: float):
        super().__init__(f"timeout after {limit:g} s in stage {stage}")
        self.stage, self.limit = stage, limit


_received: list[int] = []  # the signals stop_signals saw, for a library that re-raises a bare KeyboardInterrupt


def signum_of(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: its own, else the last one received (ray.get re-raises a
    bare KeyboardInterrupt), else SIGINT."""
    return getattr(exc, "signum", None) or (_received[-1] if _received else signal.SIGINT)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handled(signum: int) -> bool:
    """False for a signal the user asked to ignore (nohup's SIGHUP, SIGINT of a background job)."""
    return signal.getsignal(signum) is not signal.SIG_IGN


@contextmanager
def stop_signals():
    """Inside: SIGINT, SIGTERM and SIGHUP raise Signalled in the main thread, so a sweep stops its worker."""
    if not _main_thread():
        yield
        return

    def raise_signalled(signum, frame):
        _received.append(signum)
        raise Signalled(signum)

    _received.clear()
    previous = {s: signal.signal(s, raise_signalled) for s in STOP_SIGNALS if _handled(s)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start_worker(args: list[str], **popen) -> subprocess.Popen:
    """The worker in its own session (group), told our pid so it can tell when we are gone."""
    env = {**popen.pop("env", os.environ), PARENT_ENV: str(os.getpid())}
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, start_new_session=True, env=env, **popen)


def stop(proc: subprocess.Popen, grace: float | None = None) -> None:
    """SIGTERM to the worker's group, SIGKILL after `grace` s; another stop signal meanwhile kills at once."""
    grace = GRACE_S if grace is None else grace
    previous = {}
    if _main_thread():
        previous = {s: signal.signal(s, lambda signum, frame: _kill(proc)) for s in STOP_SIGNALS if _handled(s)}
    try:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _kill(proc: subprocess.Popen) -> None:
    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def follow(proc: subprocess.Popen, on_event: Callable[[dict], None], limit: float | None = None,
           grace: float | None = None) -> str | None:
    """Pass the worker's JSON progress lines to on_event until its stdout closes.

    With a limit, the clock restarts at each stage (load, prompts, tasks); a stage that runs past it
    stops the worker. Returns that stage, or None when the worker ended by itself.
    """
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    stage, started = "load", time.monotonic()
    while True:
        try:
            line = lines.get(timeout=None if limit is None else max(0.0, started + limit - time.monotonic()))
        except queue.Empty:
            stop(proc, grace)
            return stage
        if line is None:
            return None
        event = _parse(line)
        if event is None:
            continue
        entered = STAGE_OF_EVENT.get(event.get("stage"))
        if entered and entered != stage:
            stage, started = entered, time.monotonic()
        on_event(event)


def _pump(stream, lines: queue.Queue) -> None:
    """A reader thread: the main thread waits on the queue, with a deadline, and stays free for signals."""
    try:
        for line in stream:
            lines.put(line)
    finally:
        lines.put(None)


def _parse(line: str) -> dict | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:  # a library printing to stdout, not one of our events
        return None
    return event if isinstance(event, dict) else None


def die_with_parent() -> None:
    """In the worker: get SIGTERM (an unwind, as from the CLI) when the process that started it dies,
    even by SIGKILL. Linux: prctl(PR_SET_PDEATHSIG); elsewhere a thread polling the parent's pid."""
    expected = int(os.environ.get(PARENT_ENV) or os.getppid())
    if not (sys.platform.startswith("linux") and set_pdeathsig(signal.SIGTERM)):
        threading.Thread(target=_watch_parent, args=(expected,), daemon=True).start()
    if os.getppid() != expected:  # it died before we asked to be told
        os.kill(os.getpid(), signal.SIGTERM)


def set_pdeathsig(signum: int) -> bool:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(expected: int) -> None:
    while os.getppid() == expected:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
