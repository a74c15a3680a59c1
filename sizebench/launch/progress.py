"""Following a worker: its progress events (JSON lines on its stdout) passed on, each stage timed against --timeout.

The process side (starting a worker owned, stopping its group) is sizebench.system.supervise's.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable

from sizebench.stages import events
from sizebench.stages.events import Event
from sizebench.system.supervise import stop

LOOK_S = 1.0  # how often a silent worker is looked at


def follow(
    proc: subprocess.Popen, on_event: Callable[[Event], None], limit: float | None = None, grace: float | None = None
) -> str | None:
    """Pass the worker's progress events (JSON lines) to on_event until its stdout closes.

    With a limit, the clock restarts at each stage (Event.clock: the events that start one); a stage that runs
    past it stops the worker. Returns that stage, or None when the worker ended by itself.
    """
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    stage, started = "load", time.monotonic()
    while True:
        left = None if limit is None else max(0.0, started + limit - time.monotonic())
        try:
            line = lines.get(timeout=LOOK_S if left is None else min(left, LOOK_S))
        except queue.Empty:
            if left is not None and left <= LOOK_S:
                stop(proc, grace)
                return stage
            if proc.poll() is not None:  # the worker is gone, a process it left holds its stdout: end the group
                stop(proc, grace)
            continue
        if line is None:
            return None
        event = events.from_json(line)
        if event is None:  # a library printing to stdout, not one of our events
            continue
        entered = event.clock
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
