"""Worker supervision with stand-in workers (short Python scripts): stage clocks, stopping, parent death."""

import io
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from rich.console import Console

from conftest import command_line
from fake_engine import make_model
from sizebench.launch import progress, runner
from sizebench.system import supervise
from sizebench.specs.settings import GenSettings
from sizebench.planning.plan import RunPlan
from sizebench.planning.registry import resolve

QUIET = Console(file=io.StringIO())


def script(tmp_path, body: str) -> list[str]:
    path = tmp_path / "stand_in.py"
    path.write_text(
        "import json, signal, sys, time\ndef event(**f): print(json.dumps(f), flush=True)\n" + textwrap.dedent(body)
    )
    return [sys.executable, str(path)]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_clock_restarts_at_each_stage(tmp_path):
    """Every stage (and the load) 0.8 s under a 1.5 s limit: no stage over, nothing stopped. Two stages on one
    clock would be 1.6 s (the agreement stage ran on the tasks' clock before the stages' list was one)."""
    from sizebench.stages import names

    stages = ("loading", "tasks", "agreement", "prompts", "sweep")
    assert set(stages[1:]) == set(names())
    proc = supervise.start_worker(
        script(
            tmp_path,
            f"""
        for stage in {stages!r}:
            event(stage=stage)
            time.sleep(0.8)
    """,
        )
    )
    seen = []
    assert progress.follow(proc, seen.append, limit=1.5) is None
    assert proc.wait() == 0 and [e.kind for e in seen] == list(stages)


def test_a_stage_past_the_limit_stops_the_worker_even_one_that_ignores_sigterm(tmp_path):
    """SIGTERM first, which this worker notes and shrugs off, then SIGKILL: it never ends by itself."""
    marker = tmp_path / "sigterm"
    proc = supervise.start_worker(
        script(
            tmp_path,
            f"""
        signal.signal(signal.SIGTERM, lambda signum, frame: open({str(marker)!r}, "w").write("seen"))
        event(stage="loading")
        event(stage="prompts", done=0, total=9)
        event(stage="prompts", done=1, total=9)
        print("{{not json, a library printing", flush=True)
        while True:
            time.sleep(60)
    """,
        )
    )
    assert progress.follow(proc, lambda e: None, limit=1.0, grace=0.5) == "prompts"
    assert marker.read_text() == "seen" and proc.returncode == -signal.SIGKILL
    assert gone(proc.pid)


@pytest.mark.parametrize("stuck", [False, True], ids=["unwinds", "stuck-in-native-code"])
def test_a_worker_and_its_children_stop_when_its_parent_died_by_sigkill(tmp_path, stuck):
    """The parent (a stand-in CLI) is SIGKILLed: it forwards nothing, and the worker prints nothing. The worker
    must still get SIGTERM, and its whole group (here a child, as a launched server) end; a worker that cannot
    unwind (stuck in native code: SIGTERM does nothing) is SIGKILLed after the grace."""
    worker = script(
        tmp_path,
        f"""
        import subprocess
        def stop(signum, frame):
            open(sys.argv[1], "w").write("stopped by SIGTERM")
            {"pass" if stuck else "sys.exit(0)"}
        signal.signal(signal.SIGTERM, stop)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(sys.argv[1], "w").write(f"asleep {{child.pid}}")
        while True:
            time.sleep(60)
    """,
    )
    marker = tmp_path / "marker"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time
        from sizebench.system import supervise
        proc = supervise.start_worker({worker + [str(marker)]!r})
        print(proc.pid, flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "SIZEBENCH_STOP_GRACE_S": "1"},
    )
    worker_pid = int(parent.stdout.readline())
    while not (marker.exists() and marker.read_text().startswith("asleep")):
        assert not gone(worker_pid), "the worker ended before its parent was killed"
        time.sleep(0.05)
    child_pid = int(marker.read_text().split()[1])
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while not (gone(worker_pid) and gone(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(worker_pid) and gone(child_pid) and marker.read_text() == "stopped by SIGTERM"


class SlowStandIn(runner.LocalExecutor):
    """A worker that writes a load record and two prompt records, then hangs in the prompt stage until stopped
    (SIGTERM: it leaves <model>.stopped in the run folder)."""

    def command(self, job_path):
        return script(
            job_path.parent,
            f"""
            from pathlib import Path
            from sizebench.runstore.records import LoadRecord, PromptRecord
            from sizebench.runstore.store import RunStore
            job = json.load(open({str(job_path)!r}))
            store, model, attempt = RunStore(job["run_dir"]), job["model"]["name"], job["attempt"]
            def stopped(signum, frame):
                Path(job["run_dir"], model + ".stopped").write_text("SIGTERM")
                sys.exit(0)
            signal.signal(signal.SIGTERM, stopped)
            event(model=model, stage="loading")
            store.append(LoadRecord(model, attempt, "f", "local", 1000, 1.0, 1.0, None, None, 0.1, "cached",
                                    "float32", "cpu", 1, 1, "plain", 100.0, None))
            event(model=model, stage="prompts", done=0, total=3)
            for i in (1, 2):
                store.append(PromptRecord(model, attempt, f"p{{i}}", "Q?", [], "A", None, 3, 1, 0.1, 0.1, None))
                event(model=model, stage="prompts", done=i, total=3)
            while True:
                time.sleep(60)
        """,
        )


def test_timeout_fails_the_model_keeps_its_records_and_the_sweep_goes_on(tmp_path, suite_file):
    """The stand-in executor does the work: the models are only names (fake model folders, nothing built)."""
    tiny = make_model(tmp_path / "tiny")
    second = tmp_path / "second"
    second.symlink_to(tiny, target_is_directory=True)
    plan = RunPlan(
        models=tuple(resolve(f"{tiny},{second}")),
        stages=("prompts",),
        prompts_path=str(suite_file),
        gen=GenSettings(max_new_tokens=4, repeat=1),
        timeout=1.5,
    ).validate()
    store = runner.new_run(plan, tmp_path / "r", "test")
    outcome = runner.execute(plan, store, QUIET, executor=SlowStandIn())
    assert outcome.failed == ["tiny", "second"] and outcome.exit_code == 1
    assert [(store.dir / f"{m}.stopped").read_text() for m in ("tiny", "second")] == ["SIGTERM"] * 2
    rows = store.records()
    reasons = {r["model"]: (r["stage"], r["reason"]) for r in rows if r["kind"] == "failed"}
    assert reasons == {m: ("prompts", "timeout after 1.5 s in stage prompts") for m in ("tiny", "second")}
    assert len([r for r in rows if r["kind"] == "prompt"]) == 4  # what each finished is kept
    assert not [p for p in psutil.Process().children(recursive=True) if "stand_in.py" in command_line(p)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stop_signals_raise_in_the_main_thread_and_nohup_is_respected(signum):
    """Each disposition set here, not inherited: under `nohup make test` SIGHUP comes in ignored."""
    previous = signal.signal(signum, signal.SIG_DFL)  # a terminal's: the signal stops the process
    try:
        with supervise.stop_signals():
            with pytest.raises(supervise.Signalled) as caught:
                os.kill(os.getpid(), signum)
                time.sleep(1)
        assert caught.value.signum == signum
        signal.signal(signum, signal.SIG_IGN)  # nohup's (for SIGHUP): the user asked not to be stopped by it
        with supervise.stop_signals():
            os.kill(os.getpid(), signum)
            time.sleep(0.2)
        assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        signal.signal(signum, previous)
