"""Launched servers and judges are always owned (issue 34, items 6-8): stopped as a whole group on every way out
(a stop signal during the health wait, a load record that fails, a judge that fails, the worker killed outright),
bound to a port no other rung takes, healthy only under their own name; --host/--port refused."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import psutil
import pytest

from sizebench.engines.serving import launch
from sizebench.engines.serving.launch import Server, ServerFailed, free_port, listening_socket, served_name

FAST_STOP = {"SIZEBENCH_STOP_GRACE_S": "1"}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def all_gone(pids, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return all(gone(p) for p in pids)


def stand_in_server(tmp_path, ignore_sigterm: bool = False) -> list[str]:
    """A server that never turns healthy (a model loading forever), with a child of its own, as vLLM's
    tensor-parallel workers are; it writes 'server-pid child-pid' to pids.txt."""
    path = tmp_path / "stand_in_server.py"
    path.write_text(
        textwrap.dedent(f"""
        import signal, subprocess, sys, time
        {"signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_sigterm else ""}
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                  "signal.SIG_IGN); time.sleep(600)"])
        with open(sys.argv[1] + ".tmp", "w") as out:
            out.write(f"{{__import__('os').getpid()}} {{child.pid}}")
        __import__('os').replace(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(600)
    """)
    )
    return [sys.executable, str(path), str(tmp_path / "pids.txt")]


def server_pids(tmp_path, within: float = 30.0) -> list[int]:
    deadline = time.monotonic() + within
    while not (tmp_path / "pids.txt").exists():
        assert time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.05)
    return [int(p) for p in (tmp_path / "pids.txt").read_text().split()]


@pytest.mark.parametrize(
    "signum",
    [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL],
    ids=["SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"],
)
def test_a_worker_stopped_during_the_health_wait_takes_the_whole_server_with_it(tmp_path, signum):
    """A worker waiting for its server (up to 600 s for vLLM) is stopped: by a signal it unwinds from, or killed
    outright (its watchdog then ends the server's group). The server, and the child it started, are gone."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from sizebench.engines.serving.launch import Server, free_port, served_name
        import signal
        from sizebench.launch import worker
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's, whatever this test inherited
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        worker.stop_on_signals()  # as every worker starts
        try:
            Server({stand_in_server(tmp_path)!r}, free_port(), Path({str(tmp_path / "server.log")!r}), "stand-in",
                   served_name()).start()
        except KeyboardInterrupt:
            sys.exit(130)
    """),
        ],
        env={**os.environ, **FAST_STOP, "PYTHONPATH": os.pathsep.join(sys.path)},
        start_new_session=True,
    )
    pids = server_pids(tmp_path)
    worker.send_signal(signum)
    assert worker.wait(timeout=30) == (-signal.SIGKILL if signum == signal.SIGKILL else 130)
    assert all_gone(pids), [psutil.Process(p).cmdline() for p in pids if not gone(p)]


@pytest.mark.long
def test_a_server_that_never_turns_healthy_fails_in_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """Stopped as a group, SIGKILL after the grace: the server shrugs off SIGTERM and so does its child."""
    monkeypatch.setattr(launch, "HEALTH_TIMEOUT_S", 1.0)
    monkeypatch.setattr("sizebench.system.supervise.GRACE_S", 0.5)
    server = Server(
        stand_in_server(tmp_path, ignore_sigterm=True), free_port(), tmp_path / "server.log", "stand-in", served_name()
    )
    with pytest.raises(ServerFailed, match="the stand-in was not healthy after 1 s; server.log: empty log"):
        server.start()
    assert all_gone(server_pids(tmp_path))


class Models(BaseHTTPRequestHandler):
    """Another server's /v1/models (another rung's, started on the same node)."""

    def do_GET(self):
        body = json.dumps({"data": [{"id": self.server.name}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.long
def test_another_server_on_the_port_is_never_taken_for_ours(tmp_path, monkeypatch):
    """Two rungs launching at once: the port chosen for ours is taken by the other rung's server first. Its
    /v1/models answers, but not under our name: ours is not healthy (the old check passed at once)."""
    monkeypatch.setattr(launch, "HEALTH_TIMEOUT_S", 2.0)
    monkeypatch.setattr("sizebench.system.supervise.GRACE_S", 0.5)
    other = HTTPServer(("127.0.0.1", 0), Models)
    other.name = served_name()
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        server = Server(
            stand_in_server(tmp_path), other.server_address[1], tmp_path / "server.log", "stand-in", served_name()
        )
        with pytest.raises(ServerFailed, match=f"answers as another server \\({other.name}\\)"):
            server.start()
    finally:
        other.shutdown()
    assert all_gone(server_pids(tmp_path))


def test_a_handed_over_socket_keeps_the_port_while_the_model_loads(tmp_path):
    """The port is bound before the server starts: no other server can take it while the model loads, and the
    server that answers there is ours (its unique name)."""
    script = tmp_path / "socket_server.py"
    script.write_text(
        textwrap.dedent("""
        import json, os, socket, sys, time
        from http.server import BaseHTTPRequestHandler, HTTPServer
        class Models(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"data": [{"id": sys.argv[1]}]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        time.sleep(1.5)  # loading the model
        server = HTTPServer(("127.0.0.1", 0), Models, bind_and_activate=False)
        server.socket = socket.socket(fileno=int(os.environ["SIZEBENCH_LISTEN_FD"]))
        server.serve_forever()
    """)
    )
    listener = listening_socket()
    port, served = listener.getsockname()[1], served_name()
    server = Server([sys.executable, str(script), served], port, tmp_path / "s.log", "stand-in", served, listener)
    started = threading.Thread(target=server.start)
    started.start()
    try:
        time.sleep(0.5)
        with socket.socket() as rival, pytest.raises(OSError, match="Address already in use"):
            rival.bind(("127.0.0.1", port))
        started.join(timeout=30)
        assert server.alive() and launch.listed_models(server.base_url) == [served]
    finally:
        started.join(timeout=30)
        server.stop()
    assert not server.alive()


class ClosingSession:
    closed = False

    def __init__(self, fail_at: str):
        self.fail_at = fail_at

    def load_record(self, attempt):
        raise RuntimeError("the server's process tree could not be read")

    def lm(self, batch_size):
        raise RuntimeError("the judge's endpoint refused the probe")

    def close(self):
        ClosingSession.closed = True


def test_a_load_record_that_raises_still_stops_the_launched_server(tmp_path, monkeypatch):
    from sizebench.launch import worker
    from sizebench.planning.job import Job
    from sizebench.planning.registry import builtin
    from sizebench.runstore.store import RunStore

    ClosingSession.closed = False
    monkeypatch.setattr(
        "sizebench.engines.get", lambda name: type("E", (), {"load": lambda s, sp, j: ClosingSession("")})()
    )
    with pytest.raises(RuntimeError, match="process tree"):
        worker.load(
            builtin("smollm2-135m"),
            Job(str(tmp_path), builtin("smollm2-135m"), "a1"),
            RunStore.create(tmp_path, {}),
            "a1",
        )
    assert ClosingSession.closed


def test_a_judge_that_fails_still_closes_its_session(tmp_path, monkeypatch):
    from sizebench.judging import judge_worker
    from sizebench.planning.job import Job
    from sizebench.planning.registry import builtin
    from sizebench.runstore.store import RunStore

    ClosingSession.closed = False
    monkeypatch.setattr(
        "sizebench.engines.get", lambda name: type("E", (), {"load": lambda s, sp, j: ClosingSession("")})()
    )
    with pytest.raises(RuntimeError, match="refused the probe"):
        judge_worker.judge(
            builtin("smollm2-135m"),
            Job(str(tmp_path), builtin("smollm2-135m"), "a1", judge={"source": "judge:x", "judgements": []}),
            RunStore.create(tmp_path, {}),
        )
    assert ClosingSession.closed


@pytest.mark.parametrize(
    "args",
    [
        "--host 0.0.0.0",
        "--port=8000",
        "--n_ctx 512 --port 8000",
        "--served-model-name mine",
        "--model_alias mine",
        "'--host",
    ],
)
def test_server_args_that_move_or_rename_the_server_are_refused_in_one_line(cli, args):
    code, _, err = cli("bench", "-m", "llama.cpp-server:smollm2-135m", "--concurrency", "1", "--server-args", args)
    assert code == 2 and "--server-args" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_server_args_that_do_not_move_the_server_are_kept():
    from sizebench.specs.settings import parse_server_args

    assert (
        parse_server_args("--n_ctx 512 --hostname-file x --max-model-len 8192")
        == "--n_ctx 512 --hostname-file x --max-model-len 8192"
    )


def test_a_worker_killed_outright_does_not_leave_a_child_holding_its_output(tmp_path):
    """The OOM killer takes the worker (SIGKILL) while a child it forked (a GGUF conversion) still holds its stdout:
    the parent notices the worker is gone, ends the rest of its group and goes on (it used to wait for the child)."""
    from sizebench.launch import progress
    from sizebench.system import supervise

    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent("""
        import json, os, signal, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # stdout inherited
        open(sys.argv[1], "w").write(str(child.pid))
        print(json.dumps({"stage": "loading"}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    )
    child = tmp_path / "child.pid"
    proc = supervise.start_worker([sys.executable, str(script), str(child)], grace=0.5)
    events = []
    following = threading.Thread(target=lambda: progress.follow(proc, events.append), daemon=True)
    following.start()
    following.join(timeout=60)
    assert not following.is_alive(), "follow() is still waiting for the worker's output"
    assert (
        proc.wait() == -signal.SIGKILL
        and [e.kind for e in events] == ["loading"]
        and all_gone([int(child.read_text())])
    )
