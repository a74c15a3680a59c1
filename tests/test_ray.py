"""The Ray executor on a local 2-CPU cluster started here: same store as local, failures, resume, and the
records of finished stages kept through a killed task or a Ctrl-C."""

import io
import os
import signal
import threading
import time
import warnings

import psutil
import pytest

ray = pytest.importorskip("ray")
from ray.util.queue import Queue  # noqa: E402

from rich.console import Console  # noqa: E402

from conftest import command_line  # noqa: E402
from sizebench.launch import runner  # noqa: E402
from sizebench.system import supervise  # noqa: E402
from sizebench.stages.evaluation import EvalSettings  # noqa: E402
from sizebench.specs.settings import GenSettings  # noqa: E402
from sizebench.planning.plan import RunPlan  # noqa: E402
from sizebench.launch.ray_executor import Delivery, RayExecutor  # noqa: E402
from sizebench.planning.registry import resolve  # noqa: E402

pytestmark = pytest.mark.ray
QUIET = Console(file=io.StringIO())


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray_processes = psutil.Process().children(recursive=True)
    ray.shutdown()
    assert_gone(ray_processes)


@pytest.fixture
def two_models(tiny_model, tmp_path, suite_file):
    second = tmp_path / "second"
    second.symlink_to(tiny_model, target_is_directory=True)
    return RunPlan(
        models=tuple(resolve(f"{tiny_model},{second}")),
        stages=("prompts",),
        prompts_path=str(suite_file),
        gen=GenSettings(max_new_tokens=6, repeat=1),
    ).validate()


def content(store):
    """A store's records without what differs between runs: timings, memory, attempt ids; and the bandwidth, measured
    once per run and device locally but once per task on Ray (a task sees only its node's scratch store)."""
    keep = {
        "kind",
        "model",
        "stage",
        "prompt_id",
        "answer",
        "correct",
        "new_tokens",
        "prompt_tokens",
        "params",
        "dtype",
        "device",
        "prompt_format",
    }
    rows = [{k: v for k, v in r.items() if k in keep} for r in store.records() if r["kind"] != "bandwidth"]
    return sorted(rows, key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def test_two_tasks_give_the_same_store_as_the_local_executor(cluster, two_models, tmp_path):
    local = runner.new_run(two_models, tmp_path / "local", "test")
    assert runner.execute(two_models, local, QUIET).exit_code == 0
    on_ray = runner.new_run(two_models, tmp_path / "ray", "test")
    assert runner.execute(two_models, on_ray, QUIET, executor=RayExecutor()).exit_code == 0
    assert content(on_ray) == content(local)
    assert len([r for r in on_ray.records() if r["kind"] == "prompt"]) == 4


def test_a_task_that_raises_is_recorded_as_failed(cluster, two_models, tmp_path):
    executor = RayExecutor()
    executor.task = ray.remote(lambda job, inbox, outbox: 1 / 0)
    store = runner.new_run(two_models, tmp_path, "test")
    outcome = runner.execute(two_models, store, QUIET, executor=executor)
    assert outcome.exit_code == 1 and len(outcome.failed) == 2
    reasons = [r["reason"] for r in store.records() if r["kind"] == "failed"]
    assert len(reasons) == 2 and all("Ray task failed" in r and "ZeroDivisionError" in r for r in reasons)


def test_resume_across_executors(cluster, two_models, tmp_path):
    class StopAfterFirst(runner.LocalExecutor):
        calls = 0

        def run(self, job, store, on_event):
            self.calls += 1
            if self.calls == 2:
                raise runner.Interrupted()
            return super().run(job, store, on_event)

    store = runner.new_run(two_models, tmp_path, "test")
    assert runner.execute(two_models, store, QUIET, executor=StopAfterFirst()).interrupted
    assert runner.execute(two_models, store, QUIET, executor=RayExecutor()).exit_code == 0
    loads = [r["model"] for r in store.records() if r["kind"] == "load"]
    assert sorted(loads) == ["second", "tiny-neox"]  # each model loaded once: the first was not redone


def test_a_stop_signal_cancels_the_task_and_its_worker(cluster, tiny_model, tmp_path):
    """SIGTERM to the driver mid-task: ray.cancel, the task stops its worker, no worker is left running."""
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"Question number {i}? => {i}" for i in range(40)) + "\n")
    plan = RunPlan(
        models=tuple(resolve(str(tiny_model))),
        stages=("prompts",),
        prompts_path=str(many),
        gen=GenSettings(max_new_tokens=32, repeat=3),
    ).validate()
    store = runner.new_run(plan, tmp_path, "test")
    workers = []

    def signal_once_the_worker_runs():
        deadline = time.time() + 180
        while time.time() < deadline and not workers:
            time.sleep(0.2)
            workers.extend(
                p for p in psutil.Process().children(recursive=True) if "sizebench.launch.worker" in command_line(p)
            )
        time.sleep(3)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=signal_once_the_worker_runs, daemon=True).start()
    with supervise.stop_signals():
        outcome = runner.execute(plan, store, QUIET, executor=RayExecutor())
    assert workers and outcome.interrupted and outcome.exit_code == 143
    deadline = time.time() + supervise.GRACE_S + 10
    while time.time() < deadline and any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers):
        time.sleep(0.2)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def eval_plan(models: str, suite_file, stages=("prompts", "tasks")) -> RunPlan:
    return RunPlan(
        models=tuple(resolve(models)),
        stages=stages,
        prompts_path=str(suite_file),
        gen=GenSettings(max_new_tokens=6, repeat=1),
        eval=EvalSettings(tasks=("sizebench_geo_capitals",), limit=4, batch_size="4"),
    ).validate()


def stored(store) -> list[dict]:
    """The driver's records as they are now, read while the run writes them (a line being written is left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the line being written
        return store.records()


def started_by_the_run() -> list:
    """The model's worker and the queue actor that carries its records to the driver."""
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if "sizebench.launch.worker" in command_line(p) or "_QueueActor" in command_line(p)
    ]


GATE_TASK = """task: gated_capitals
custom_dataset: !function gate.load
test_split: test
output_type: multiple_choice
doc_to_text: "Question: What is the capital of {{country}}?\\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
"""
GATE_CODE = """import json, time
from pathlib import Path

def load(**_ignored):
    import datasets

    entered, gate = Path({entered!r}), Path({gate!r})
    if not entered.exists():  # the first attempt waits here, in its tasks stage, until the test opens the gate
        entered.touch()
        while not gate.exists():
            time.sleep(0.05)
    rows = [json.loads(line) for line in Path({data!r}).read_text().splitlines() if line]
    return datasets.DatasetDict({{"test": datasets.Dataset.from_list(rows)}})
"""


def gated_plan(models: str, suite_file, folder) -> tuple[RunPlan, object]:
    """A plan whose one task holds the first worker in its tasks stage (its prompts stage done and delivered)
    until the test opens the gate: signals and kills land there on every machine, however loaded."""
    from conftest import REPO

    tasks = folder / "gated-tasks"
    tasks.mkdir()
    data = REPO / "sizebench" / "stages" / "tasks" / "geo" / "data" / "capitals.jsonl"
    (tasks / "gated.yaml").write_text(GATE_TASK)
    (tasks / "gate.py").write_text(
        GATE_CODE.format(entered=str(folder / "entered"), gate=str(folder / "open"), data=str(data))
    )
    plan = RunPlan(
        models=tuple(resolve(models)),
        stages=("prompts", "tasks"),
        prompts_path=str(suite_file),
        gen=GenSettings(max_new_tokens=6, repeat=1),
        eval=EvalSettings(tasks=("gated_capitals",), task_path=str(tasks), limit=4, batch_size="4"),
    ).validate()
    return plan, folder / "entered"


def once_in_the_tasks_stage(store, entered, act, stop: threading.Event) -> list:
    """In a thread: once the worker waits at the gate (in its tasks stage) and the driver's store holds its prompts
    stage record, act on the worker process; returns the processes of the run seen then."""
    seen = []

    def watch():
        while not stop.wait(0.05):
            if entered.exists() and any(r["kind"] == "stage" and r["stage"] == "prompts" for r in stored(store)):
                seen.extend(started_by_the_run())
                act(next(p for p in seen if "sizebench.launch.worker" in command_line(p)))
                return

    threading.Thread(target=watch, daemon=True).start()
    return seen


def assert_gone(processes) -> None:
    deadline = time.time() + supervise.GRACE_S + 10
    while time.time() < deadline and any(command_line(p) for p in processes):
        time.sleep(0.2)
    assert not any(command_line(p) for p in processes), "a process sizebench started is still running"


def assert_prompts_kept_then_resumed(store, first_attempt_failed: bool):
    rows = store.records()
    stages = [r["stage"] for r in rows if r["kind"] == "stage"]
    assert stages == ["prompts"]
    assert len([r for r in rows if r["kind"] == "prompt"]) == 2
    assert any(r["kind"] == "failed" and "Ray task failed" in r["reason"] for r in rows) == first_attempt_failed
    resumed = runner.execute(RunPlan.from_dict(store.meta()["plan"]), store, QUIET, executor=RayExecutor())
    assert resumed.exit_code == 0
    rows = store.records()
    first, second = [r["attempt"] for r in rows if r["kind"] == "load"]
    assert [(r["stage"], r["attempt"]) for r in rows if r["kind"] == "stage"] == [("prompts", first), ("tasks", second)]
    assert {r["attempt"] for r in rows if r["kind"] == "prompt"} == {first}  # the resume ran only the tasks stage


def test_a_killed_ray_worker_keeps_the_stages_it_finished(cluster, tiny_model, suite_file, tmp_path):
    """SIGKILL to the Ray worker process in the tasks stage: a lost node, as far as the driver can tell."""
    plan, entered = gated_plan(str(tiny_model), suite_file, tmp_path)
    store = runner.new_run(plan, tmp_path, "test")
    killed, stop = [], threading.Event()

    def kill_its_ray_worker(worker):
        ray_worker = worker.parent()
        killed.append((ray_worker, command_line(ray_worker)))
        ray_worker.kill()

    processes = once_in_the_tasks_stage(store, entered, kill_its_ray_worker, stop)
    outcome = runner.execute(plan, store, QUIET, executor=RayExecutor())
    stop.set()
    assert killed and killed[0][1].startswith("ray::run_job_on_node")
    assert outcome.failed == ["tiny-neox"] and outcome.exit_code == 1
    assert_gone(processes + [killed[0][0]])
    assert_prompts_kept_then_resumed(store, first_attempt_failed=True)


def test_ctrl_c_keeps_the_stages_the_ray_task_finished(cluster, tiny_model, suite_file, tmp_path):
    plan, entered = gated_plan(str(tiny_model), suite_file, tmp_path)
    store = runner.new_run(plan, tmp_path, "test")
    stop = threading.Event()
    processes = once_in_the_tasks_stage(store, entered, lambda worker: os.kill(os.getpid(), signal.SIGINT), stop)
    with supervise.stop_signals():
        outcome = runner.execute(plan, store, QUIET, executor=RayExecutor())
    stop.set()
    assert processes and outcome.interrupted and outcome.exit_code == 130
    assert_gone(processes)
    assert_prompts_kept_then_resumed(store, first_attempt_failed=False)


def test_item_texts_are_written_once_per_run_on_ray(cluster, tiny_model, suite_file, tmp_path):
    second = tmp_path / "second"
    second.symlink_to(tiny_model, target_is_directory=True)
    plan = eval_plan(f"{tiny_model},{second}", suite_file, stages=("tasks",))
    store = runner.new_run(plan, tmp_path, "test")
    assert runner.execute(plan, store, QUIET, executor=RayExecutor()).exit_code == 0
    rows = store.records()
    assert sorted(r["model"] for r in rows if r["kind"] == "items") == ["second", "tiny-neox"]
    texts = [(r["task"], r["model"]) for r in rows if r["kind"] == "item_text"]
    assert texts == [("sizebench_geo_capitals", "tiny-neox")]

    racing = Queue()  # a task that started before the first one's texts were stored sends them too
    racing.put_nowait_batch([("record", row) for row in rows if row["kind"] == "item_text"])
    Delivery(store, print).take(racing)
    racing.shutdown(force=True)
    assert store.records() == rows
