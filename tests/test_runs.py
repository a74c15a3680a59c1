"""Whole runs through the real CLI and worker processes: on the tiny GPT-NeoX fixture where what is checked is
the engine's (records, greedy repeats, stops, load failures), on the fake engine where it is the pipeline's
(signals, kills, resume, timeouts, the report)."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import command_line, records, sizebench
from fake_engine import make_model


@pytest.fixture
def fake_model(tmp_path):
    """A fake model answering the suite_file's two questions, a token each 10 ms on its clock."""
    return make_model(tmp_path / "tiny-fake", answers={"France": "Paris", "Japan": "Mount Fuji"})


def fake_many(tmp_path) -> tuple:
    """Thirty questions, and a fake model that takes 0.1 s on each (two tokens): stopped or killed mid-suite."""
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"Question number {i}? => {i}" for i in range(30)) + "\n")
    return many, make_model(tmp_path / "tiny-fake", token_s=0.05, default_answer="two words")


PROMPT_FIELDS = {
    "prompt_id",
    "prompt",
    "expected",
    "answer",
    "correct",
    "prompt_tokens",
    "new_tokens",
    "ttft_s",
    "latency_s",
    "decode_tok_per_s",
    "ttft_s_runs",
    "latency_s_runs",
    "decode_tok_per_s_runs",
}
LOAD_FIELDS = {"params", "weights_mb", "load_s", "peak_rss_mb", "dtype", "device", "prompt_format"}


def test_compare_writes_every_field_and_greedy_repeats_exactly(tiny_model, suite_file, tmp_path):
    args = [
        "compare",
        "--models",
        str(tiny_model),
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "12",
        "--repeat",
        "2",
        "--batch-size",
        "2",
    ]
    first = sizebench(*args, "--results", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    second = sizebench(*args, "--results", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    a, b = records(tmp_path / "a"), records(tmp_path / "b")
    load = next(r for r in a if r["kind"] == "load")
    assert LOAD_FIELDS <= load.keys() and load["prompt_format"] == "dolly" and load["params"] > 0
    assert load["hub_kernels"] is False  # never asked for unless --hub-kernels
    prompts = [r for r in a if r["kind"] == "prompt"]
    assert len(prompts) == 2 and all(PROMPT_FIELDS <= r.keys() for r in prompts)
    assert all(len(r["latency_s_runs"]) == 2 and r["same_answer_every_run"] for r in prompts)
    assert all(0 < r["ttft_s"] <= r["latency_s"] for r in prompts)
    assert [r["answer"] for r in prompts] == [r["answer"] for r in b if r["kind"] == "prompt"]
    throughput = next(r for r in a if r["kind"] == "throughput")
    assert throughput["batch_size"] == 2 and throughput["tok_per_s"] > 0
    assert {r["stage"] for r in a if r["kind"] == "stage"} == {"prompts"}
    assert "tiny-neox" in first.stdout and (tmp_path / "a" / "report.md").exists()
    assert "transformers' Hub kernels: off" in (tmp_path / "a" / "report.md").read_text()


def test_dolly_format_stops_at_end_token(tiny_ender, suite_file, tmp_path):
    done = sizebench(
        "compare",
        "--models",
        str(tiny_ender),
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    prompts = [r for r in records(tmp_path) if r["kind"] == "prompt"]
    assert all(r["new_tokens"] == 1 and r["answer"] == "" for r in prompts)


@pytest.mark.long
def test_a_broken_model_fails_alone_and_is_named(fake_model, suite_file, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    done = sizebench(
        "compare",
        "--models",
        f"{broken},fake:{fake_model}",
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--max-new-tokens",
        "4",
        "--results",
        str(tmp_path / "r"),
    )
    assert done.returncode == 1
    rows = records(tmp_path / "r")
    failed = [r for r in rows if r["kind"] == "failed"]
    assert [r["model"] for r in failed] == ["broken"] and failed[0]["reason"]
    assert len([r for r in rows if r["kind"] == "prompt" and r["model"] == "fake:tiny-fake"]) == 2
    assert "failed" in (tmp_path / "r" / "report.md").read_text()
    assert "Traceback" not in done.stderr


@pytest.mark.models
def test_remote_code_is_refused(tmp_path, suite_file):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "my_custom_arch", "auto_map": {"AutoModelForCausalLM": "modeling_x.MyModel"}})
    )
    done = sizebench("compare", "--models", str(folder), "--prompts", str(suite_file), "--results", str(tmp_path / "r"))
    assert done.returncode == 1
    failed = next(r for r in records(tmp_path / "r") if r["kind"] == "failed")
    assert "trust_remote_code" in failed["reason"] and "never runs remote code" in failed["reason"]


@pytest.mark.long
def test_sigkill_of_a_worker_keeps_the_others_and_resume_redoes_only_the_missing(tmp_path):
    many, tiny = fake_many(tmp_path)
    results = tmp_path / "r"
    second = tmp_path / "second"
    second.symlink_to(tiny, target_is_directory=True)
    cmd = [
        sys.executable,
        "-m",
        "sizebench",
        "compare",
        "--models",
        f"fake:{second},fake:{tiny}",
        "--prompts",
        str(many),
        "--max-new-tokens",
        "48",
        "--repeat",
        "3",
        "--results",
        str(results),
    ]
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    killed = False
    while time.time() < deadline and not killed:
        time.sleep(0.1)
        runs = list((results / "runs").glob("*/records.jsonl")) if (results / "runs").exists() else []
        lines = runs[0].read_text().splitlines() if runs else []
        if sum('"kind": "prompt"' in line and '"model": "fake:second"' in line for line in lines) >= 2:
            for child in psutil.Process(parent.pid).children(recursive=True):
                if "sizebench.launch.worker" in command_line(child):
                    os.kill(child.pid, signal.SIGKILL)
                    killed = True
    assert killed, "the worker finished before it could be killed"
    _, stderr = parent.communicate(timeout=300)
    assert parent.returncode == 1
    rows = records(results)
    failure = next(r for r in rows if r["kind"] == "failed")
    assert failure["model"] == "fake:second" and "SIGKILL" in failure["reason"]
    assert {r["stage"] for r in rows if r["kind"] == "stage" and r["model"] == "fake:tiny-fake"} == {"prompts"}
    tiny_prompts = len([r for r in rows if r["kind"] == "prompt" and r["model"] == "fake:tiny-fake"])

    run_id = next((results / "runs").iterdir()).name
    resumed = sizebench("bench", "--resume", run_id, "--results", str(results))
    assert resumed.returncode == 0, resumed.stderr
    after = records(results)
    loads = [r["model"] for r in after if r["kind"] == "load"]
    assert loads.count("fake:tiny-fake") == 1 and loads.count("fake:second") == 2  # only the killed model ran again
    assert len([r for r in after if r["kind"] == "prompt" and r["model"] == "fake:tiny-fake"]) == tiny_prompts

    from sizebench.runstore import frames

    current = frames.load([next((results / "runs").iterdir())])
    assert len(current["prompt"][current["prompt"]["model"] == "fake:second"]) == 30
    assert current["failed"].empty


@pytest.mark.long
def test_report_rerenders_from_disk(fake_model, suite_file, tmp_path):
    assert (
        sizebench(
            "compare",
            "--models",
            f"fake:{fake_model}",
            "--prompts",
            str(suite_file),
            "--repeat",
            "1",
            "--max-new-tokens",
            "4",
            "--results",
            str(tmp_path),
        ).returncode
        == 0
    )
    first = (tmp_path / "report.md").read_text()
    (tmp_path / "report.md").unlink()
    again = sizebench("report", "--results", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "report.md").read_text() == first


def workers_of(parent: subprocess.Popen) -> list[psutil.Process]:
    return [
        c for c in psutil.Process(parent.pid).children(recursive=True) if "sizebench.launch.worker" in command_line(c)
    ]


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def start(*args: str) -> subprocess.Popen:
    """The CLI as a foreground command in a terminal: none of the stop signals ignored, even when the tests run as
    a background job (SIGINT ignored) or under nohup (SIGHUP ignored), dispositions a child inherits."""

    def foreground_dispositions():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-m", "sizebench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=foreground_dispositions,
    )


@pytest.mark.long
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_each_stop_signal_ends_the_worker_exits_128_plus_it_and_resume_finishes(tmp_path, signum):
    """Ctrl-C, `kill PID` or a CI job cancelled, a closed terminal: no worker is left, nothing half-written."""
    many, tiny = fake_many(tmp_path)
    results = tmp_path / "r"
    parent = start(
        "compare",
        "--models",
        f"fake:{tiny}",
        "--prompts",
        str(many),
        "--max-new-tokens",
        "8",
        "--repeat",
        "2",
        "--results",
        str(results),
    )
    deadline, workers = time.time() + 180, []
    while time.time() < deadline:
        time.sleep(0.1)
        runs = list(results.glob("runs/*/records.jsonl"))
        workers = workers or workers_of(parent)
        if runs and runs[0].read_text().count('"kind": "prompt"') >= 2:
            parent.send_signal(signum)
            break
    assert workers, "no worker seen"
    _, stderr = parent.communicate(timeout=120)
    assert parent.returncode == 128 + signum, stderr
    assert not alive(workers), "a worker outlived the CLI"
    name = signal.Signals(signum).name
    assert f"interrupted by {name}: resume with `sizebench compare --resume" in stderr and "Traceback" not in stderr
    run_dir = next((results / "runs").iterdir())
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # nothing half-written
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not any(json.loads(line)["kind"] == "stage" for line in lines)
    from sizebench.runstore import frames
    from sizebench.analysis.per_model import summary

    # the rung stopped mid-stage says so in the report, not "ok" beside its half-measured prompts
    assert summary(frames.load([run_dir]))["status"].tolist() == [
        f"interrupted (prompts): stopped by {name}; --resume finishes it"
    ]

    resumed = sizebench("compare", "--resume", run_dir.name, "--results", str(results))
    assert resumed.returncode == 0, resumed.stderr
    assert len(frames.load([run_dir])["prompt"]) == 30
    assert summary(frames.load([run_dir]))["status"].tolist() == ["ok"]


def wait_for_line(parent: subprocess.Popen, text: str, timeout: float = 300) -> list[str]:
    """stderr lines of the CLI up to the first one holding `text` (progress lines go to stderr)."""
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = parent.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r}: {''.join(seen)[-2000:]}")


def silent_scorer(tmp_path):
    """A fake model that takes 10 s a request in lm-eval, printing nothing meanwhile."""
    return make_model(tmp_path / "tiny-fake", score_s=10.0)


@pytest.mark.long
def test_sigterm_in_the_accuracy_stage_stops_the_silent_worker(tmp_path):
    """The issue's case: `sizebench eval`, SIGTERM to the CLI while lm-eval prints nothing for minutes."""
    parent = start(
        "eval", "--models", f"fake:{silent_scorer(tmp_path)}", "--limit", "4", "--results", str(tmp_path / "r")
    )
    wait_for_line(parent, "fake:tiny-fake: tasks")
    workers = workers_of(parent)
    assert workers
    parent.send_signal(signal.SIGTERM)
    _, rest = parent.communicate(timeout=120)
    assert parent.returncode == 143, rest
    assert not alive(workers), "the worker outlived the CLI"
    assert "interrupted by SIGTERM: resume with" in rest and "Traceback" not in rest


def test_a_cli_killed_by_sigkill_takes_its_silent_worker_with_it(tmp_path):
    """SIGKILL cannot be caught or forwarded: the worker, silent in lm-eval, must notice its parent died."""
    parent = start(
        "eval", "--models", f"fake:{silent_scorer(tmp_path)}", "--limit", "4", "--results", str(tmp_path / "r")
    )
    wait_for_line(parent, "fake:tiny-fake: tasks")
    workers = workers_of(parent)
    assert workers
    parent.kill()
    parent.communicate(timeout=30)
    deadline = time.time() + 15
    while alive(workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(workers), "an orphaned worker is still running"


@pytest.mark.long
def test_timeout_one_second_fails_each_model_and_the_sweep_goes_on(suite_file, tmp_path):
    tiny = make_model(tmp_path / "tiny-fake", load_s=30.0)
    second = tmp_path / "second"
    second.symlink_to(tiny, target_is_directory=True)
    done = sizebench(
        "compare",
        "--models",
        f"fake:{tiny},fake:{second}",
        "--prompts",
        str(suite_file),
        "--timeout",
        "1",
        "--results",
        str(tmp_path / "r"),
    )
    assert done.returncode == 1, done.stderr
    failed = [r for r in records(tmp_path / "r") if r["kind"] == "failed"]
    assert [(r["model"], r["reason"]) for r in failed] == [
        ("fake:tiny-fake", "timeout after 1 s in stage load"),
        ("fake:second", "timeout after 1 s in stage load"),
    ]
    assert "failed: timeout after 1 s in stage load" in done.stderr and "Traceback" not in done.stderr
    assert "no model ran" in done.stderr  # nothing loaded within a second: the report is left as it was
    assert "reasons in the lines above" in done.stderr and "reasons in the report" not in done.stderr
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
