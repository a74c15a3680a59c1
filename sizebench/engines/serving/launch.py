"""A server process for one rung: owned, on a port of its own on 127.0.0.1, told apart by a name of its own.

The server is `supervise.Owned`: a process group of its own, stopped as a whole (SIGTERM, then SIGKILL
after a grace) on every way out of the worker (an exception, a load record that fails, a stop signal
during the health wait), and by its watchdog when the worker dies without unwinding. Its port cannot be
taken by another server launched meanwhile (two rungs on one node, under Ray): where the server takes a
listening socket (llama-cpp-python, through sizebench.engines.llamacpp_server.serve_llamacpp) sizebench binds it
first and hands it over; elsewhere (vLLM, which binds before loading) a free port is chosen. Either way it
is healthy only when its /v1/models lists the unique name it was launched with (`served_name`), never
because another server answers on that port.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sizebench.engines.serving import client
from sizebench.errors import SizebenchError
from sizebench.system import supervise

HEALTH_TIMEOUT_S = float(os.environ.get("SIZEBENCH_SERVER_START_S", "600"))  # vLLM compiles graphs for minutes
LOG_TAIL_LINES = 8
LISTEN_FD = "SIZEBENCH_LISTEN_FD"  # the listening socket's descriptor, for a server that takes one


class ServerFailed(SizebenchError):
    """The launched server did not become healthy, or exited while in use: the message has its log's last lines."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_socket() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1 and listening, for a server to take over."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def served_name() -> str:
    """A name no other server has: the model name a launched server answers to, checked in its health check."""
    return f"sizebench-{uuid.uuid4().hex[:12]}"


def listed_models(base_url: str) -> list[str] | None:
    """The model ids the server at base_url lists; None while nothing answers there."""
    try:
        listed = client.get_json(base_url, "/models", timeout=2.0)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    data = listed.get("data") if isinstance(listed, dict) else None
    return [str(m.get("id")) for m in data if isinstance(m, dict)] if isinstance(data, list) else []


@dataclass
class Server:
    command: list[str]
    port: int
    log_path: Path
    what: str  # e.g. "llama-cpp-python server", for messages
    served: str  # the unique name it serves the model as (served_name())
    listener: socket.socket | None = None  # bound by us, handed to the server (LISTEN_FD)
    proc: supervise.Owned | None = None
    started_s: float = 0.0  # from start to healthy
    peak_tree_rss_mb: float = 0.0
    _log: object = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "Server":
        """Start the command and wait until it lists `served`; ServerFailed with the log's tail if it exits or is not
        healthy past HEALTH_TIMEOUT_S. On any way out of here but success (a stop signal included) it is stopped."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "Server":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}  # llama-cpp-python reads them
        fds = ()
        if self.listener is not None:
            env[LISTEN_FD] = str(self.listener.fileno())
            fds = (self.listener.fileno(),)
        began = time.perf_counter()
        self.proc = supervise.Owned(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, pass_fds=fds
        )
        if self.listener is not None:
            self.listener.close()  # the server holds it now
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        models = None
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"the {self.what} exited with status {self.proc.returncode} before it was healthy; "
                    f"{self.log_path.name}: {self.tail()}"
                )
            models = listed_models(self.base_url)
            if models is not None and self.served in models:
                break
            if time.monotonic() > deadline:
                other = f"; port {self.port} answers as another server ({', '.join(models)[:200]})" if models else ""
                raise ServerFailed(
                    f"the {self.what} was not healthy after {HEALTH_TIMEOUT_S:g} s{other}; "
                    f"{self.log_path.name}: {self.tail()}"
                )
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
        """The server's whole group: SIGTERM, SIGKILL after the grace (vLLM's tensor-parallel workers too)."""
        if self.listener is not None:
            self.listener.close()
        if self.proc is not None:
            supervise.stop(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None
