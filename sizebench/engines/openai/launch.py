"""A server process for one rung: a free port on 127.0.0.1, its log in the run folder, health-checked, measured, stopped.

The server runs in the worker's process group, so the CLI stopping the worker's group (any signal, a
stage's --timeout) stops it too, and it gets SIGKILL when the worker dies without unwinding
(PR_SET_PDEATHSIG); the worker unwinding stops it with SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.launch import supervise

HEALTH_TIMEOUT_S = float(os.environ.get("SIZEBENCH_SERVER_START_S", "600"))  # vLLM compiles graphs for minutes
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 8


class ServerFailed(SizebenchError):
    """The launched server did not become healthy, or exited while in use: the message has its log's last lines."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_worker() -> None:  # runs in the child between fork and exec
    supervise.set_pdeathsig(signal.SIGKILL)


@dataclass
class Server:
    command: list[str]
    port: int
    log_path: Path
    what: str  # e.g. "llama-cpp-python server", for messages
    proc: subprocess.Popen | None = None
    started_s: float = 0.0  # from start to healthy
    peak_tree_rss_mb: float = 0.0
    _log: object = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, health) -> "Server":
        """Start the command and wait until `health(base_url)` is true; ServerFailed with the log's tail if it exits
        or stays unhealthy past HEALTH_TIMEOUT_S."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        began = time.perf_counter()
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_worker)
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise ServerFailed(f"the {self.what} exited with status {self.proc.returncode} before it was healthy; "
                                   f"{self.log_path.name}: {self.tail()}")
            if health(self.base_url):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise ServerFailed(f"the {self.what} was not healthy after {HEALTH_TIMEOUT_S:g} s; "
                                   f"{self.log_path.name}: {self.tail()}")
            time.sleep(0.2)
        self.started_s = time.perf_counter() - began
        threading.Thread(target=self._sample_while_alive, daemon=True).start()
        return self

    def _sample_while_alive(self) -> None:
        while self.alive():
            self.sample_rss()
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited(self) -> str | None:
        """A sentence saying the server died, with its log's tail; None while it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code = self.proc.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        return f"the {self.what} {how} mid-run; {self.log_path.name}: {self.tail()}"

    def tree_rss_mb(self) -> float | None:
        """MiB resident in the server and its children now (psutil), None once it is gone."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            members = [root, *root.children(recursive=True)]
        except (psutil.Error, AttributeError):
            return None
        total = 0
        for member in members:
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def sample_rss(self) -> float | None:
        now = self.tree_rss_mb()
        if now is not None:
            self.peak_tree_rss_mb = max(self.peak_tree_rss_mb, now)
        return now

    def tail(self) -> str:
        try:
            lines = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        return " | ".join(lines[-LOG_TAIL_LINES:])[-1200:] or "empty log"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
