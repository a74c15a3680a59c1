"""Supervising a worker process: how it is started and stopped (followed and timed: sizebench.launch.progress).

Workers run in their own session, so a terminal's Ctrl-C reaches only the CLI; the CLI forwards
every way of stopping (SIGINT, SIGTERM, SIGHUP, a stage's time limit) to the worker's process group
itself: SIGTERM, which the worker turns into an unwind outside any record write, then SIGKILL after
a grace period. Every process sizebench starts (workers, launched servers, judges) is `Owned`: a group of
its own, and a watchdog that stops that group when its owner dies without forwarding anything (SIGKILL,
a crash), so nothing it started outlives it on any path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = float(os.environ.get("SIZEBENCH_STOP_GRACE_S", "10"))
SETTLE_S = 5.0  # past the grace (SIGKILL sent), how long a stopped process's group takes to be gone


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


WATCHDOG = """
import os, select, signal, sys, time
group, grace = int(sys.argv[1]), float(sys.argv[2])
def signal_group(signum):
    try:
        os.killpg(group, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while signal_group(0):
    if select.select([0], [], [], 1.0)[0] and not os.read(0, 64):
        break
else:
    sys.exit(0)
if signal_group(signal.SIGTERM):
    deadline = time.monotonic() + grace
    while signal_group(0) and time.monotonic() < deadline:
        time.sleep(0.1)
    signal_group(signal.SIGKILL)
"""


class Owned(subprocess.Popen):
    """A process in a group (session) of its own that never outlives us.

    Beside it runs a watchdog (a tiny `python -c`, in a session of its own too) that reads a pipe whose
    other end only we hold: when we are gone, by any death (SIGKILL, a crash, a Ray task killed), the pipe
    ends, and the watchdog stops the whole group, SIGTERM then SIGKILL after the grace. It ends by itself
    once the group is gone. Nothing runs in the child between fork and exec.
    """

    def __init__(self, args, grace: float | None = None, **popen):
        super().__init__(args, start_new_session=True, **popen)
        self.grace = GRACE_S if grace is None else grace
        self.watchdog: subprocess.Popen | None = None
        read, self._watch_end = os.pipe()
        try:
            self.watchdog = subprocess.Popen(
                [sys.executable, "-I", "-c", WATCHDOG, str(self.pid), str(self.grace)],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            _signal_group(self, signal.SIGKILL)
            self.release()
            raise
        finally:
            os.close(read)

    def wait(self, timeout: float | None = None) -> int:
        code = super().wait(timeout)
        self.release()
        return code

    def release(self) -> None:
        """Once the process has ended (or been stopped): the watchdog ends what is left of its group, and itself."""
        end, self._watch_end = getattr(self, "_watch_end", None), None
        if end is not None:
            os.close(end)
        if getattr(self, "watchdog", None) is not None:
            try:
                self.watchdog.wait(timeout=self.grace + SETTLE_S)
            except subprocess.TimeoutExpired:
                pass


def start_worker(args: list[str], **popen) -> Owned:
    """A worker: its own group, owned (Owned), its stdout the progress events."""
    return Owned(args, stdout=subprocess.PIPE, text=True, **popen)


def stop(proc: subprocess.Popen, grace: float | None = None) -> None:
    """SIGTERM to the process's group, SIGKILL after `grace` s to all that is left of it (a child the leader left
    behind included); another stop signal meanwhile kills at once."""
    grace = getattr(proc, "grace", GRACE_S) if grace is None else grace
    previous = {}
    if _main_thread():
        previous = {s: signal.signal(s, lambda signum, frame: _kill(proc)) for s in STOP_SIGNALS if _handled(s)}
    try:
        _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        try:
            proc.wait(timeout=grace)
            while _signal_group(proc, 0) and time.monotonic() < deadline:  # the leader's children
                time.sleep(0.05)
        except subprocess.TimeoutExpired:
            pass
        _kill(proc)
        proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _kill(proc: subprocess.Popen) -> None:
    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, signum: int) -> bool:
    """Signal every process of the group `proc` leads; False when none is left."""
    try:
        os.killpg(proc.pid, signum)
        return True
    except ProcessLookupError:
        return False
