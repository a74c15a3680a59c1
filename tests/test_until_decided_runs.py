"""`--until-decided` end to end on the fake engine: the CLI as a user types it, an interrupted run resumed, and the
Ray executor, each on real worker processes (the runner answers each chunk on the worker's stdin)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from conftest import REPO, sizebench
from fake_engine import make_model
from sizebench.launch import runner
from sizebench.planning.plan import RunPlan
from sizebench.planning.registry import resolve
from sizebench.specs.settings import EvalSettings, GenSettings

TASK = "sizebench_geo_capitals"
ITEMS = 196
QUIET = Console(file=io.StringIO())


@pytest.fixture
def knows_more(tmp_path) -> str:
    """fake:small knows no capital (it picks the shortest choice), fake:big (the baseline) nearly every one: a gap
    far beyond the margin, decided long before the task's last item."""
    capitals = [
        json.loads(line)
        for line in (REPO / "sizebench/stages/tasks/geo/data/capitals.jsonl").read_text().splitlines()
        if line
    ]
    known = {row["country"].split()[-1]: row["choices"][row["label"]] for row in capitals}
    small = make_model(tmp_path / "fake-models" / "small", params=1_000_000)
    big = make_model(tmp_path / "fake-models" / "big", params=3_000_000, answers=known)
    return f"fake:{small},fake:{big}"


def plan_of(models: str, suite_file) -> RunPlan:
    return RunPlan(
        models=tuple(resolve(models)),
        stages=("tasks",),
        prompts_path=str(suite_file),
        gen=GenSettings(max_new_tokens=4, repeat=1),
        eval=EvalSettings(tasks=(TASK,), until_decided=True),
    ).validate()


def stops(records: list[dict]) -> list[tuple]:
    return [
        (r["model"], r["task"], r["items"], r["population"], r["reason"]) for r in records if r["kind"] == "stopped"
    ]


def test_the_cli_stops_the_baseline_once_decided_and_the_report_says_so(knows_more, tmp_path):
    results = tmp_path / "results"
    done = sizebench("eval", "--models", knows_more, "--tasks", TASK, "--until-decided", "--results", str(results))
    assert done.returncode == 0, done.stderr
    (run,) = [p for p in (results / "runs").iterdir() if p.is_dir()]
    rows = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    ((model, task, items, population, reason),) = stops(rows)
    assert (model, task, population, reason) == ("fake:big", TASK, ITEMS, "decided") and items % 32 == 0
    assert items <= ITEMS // 3  # a gap this wide is decided within two chunks
    small = next(r for r in rows if r["kind"] == "task" and r["model"] == "fake:small" and r["metric"] == "acc")
    big = next(r for r in rows if r["kind"] == "task" and r["model"] == "fake:big" and r["metric"] == "acc")
    assert (small["n"], big["n"]) == (ITEMS, items)  # the cheaper rung in full, the baseline as far as needed
    report = (results / "report.md").read_text()
    assert f"stopped after {items} of {ITEMS} items (decided" in report
    assert f"(n {items} of {ITEMS}, until decided)" in report


def test_an_interrupted_baseline_is_finished_by_resume_on_its_own_records(knows_more, suite_file, tmp_path):
    """The baseline's worker stopped by a signal after its first chunk: --resume reruns the baseline in a new
    attempt, decides on that attempt's chunks alone, and the run's records hold one stop for the task."""

    class StopAfterFirstChunk(runner.LocalExecutor):
        def run(self, job, store, on_event):
            def interrupt_at_a_chunk(event):
                if event.kind == "chunk":
                    raise runner.Interrupted()
                return on_event(event)

            return super().run(job, store, interrupt_at_a_chunk)

    plan = plan_of(knows_more, suite_file)
    store = runner.new_run(plan, tmp_path / "results", "test")
    assert runner.execute(plan, store, QUIET, executor=StopAfterFirstChunk()).interrupted
    first = store.records()
    assert not stops(first) and [r["model"] for r in first if r["kind"] == "failed" and r["interrupted"]] == [
        "fake:big"
    ]
    assert any(r["kind"] == "chunk" for r in first)  # the chunk before the signal was stored
    assert runner.execute(plan, store, QUIET, executor=runner.LocalExecutor()).exit_code == 0
    rows = store.records()
    ((model, _, items, _, reason),) = stops(rows)
    assert (model, reason) == ("fake:big", "decided")
    last = next(r["attempt"] for r in rows if r["kind"] == "stopped")
    assert sum(len(r["drawn"]) for r in rows if r["kind"] == "chunk" and r["attempt"] == last) == items
    assert [r["model"] for r in rows if r["kind"] == "load"].count("fake:small") == 1  # the finished rung kept


@pytest.mark.ray
def test_the_ray_executor_stops_where_the_local_one_does(knows_more, suite_file, tmp_path):
    ray = pytest.importorskip("ray")
    from sizebench.launch.ray_executor import RayExecutor

    plan = plan_of(knows_more, suite_file)
    local = runner.new_run(plan, tmp_path / "local", "test")
    assert runner.execute(plan, local, QUIET, executor=runner.LocalExecutor()).exit_code == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = runner.new_run(plan, tmp_path / "ray", "test")
        assert runner.execute(plan, on_ray, QUIET, executor=RayExecutor()).exit_code == 0
    finally:
        ray.shutdown()
    assert stops(on_ray.records()) == stops(local.records()) and stops(local.records())
    drawn = [[r["drawn"] for r in s.records() if r["kind"] == "chunk"] for s in (local, on_ray)]
    assert drawn[0] == drawn[1]
