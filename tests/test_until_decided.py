"""The runner's answer after each chunk of `--until-decided`, and the report of a chunked task, from stored records
alone (no model: seconds)."""

from __future__ import annotations

import numpy as np

from sizebench.analysis import sequential, verdict
from sizebench.launch.runner import schedule
from sizebench.planning.plan import RunPlan
from sizebench.planning.registry import resolve
from sizebench.specs.settings import EvalSettings
from sizebench.report import verdict_section
from sizebench.runstore import frames
from sizebench.runstore.records import ChunkRecord, ItemsRecord, StopRecord
from sizebench.runstore.store import RunStore
from sizebench.stages.events import Event

from test_verdict import load

N = 196


def _run(tmp_path, small_right, big_right, chunks_run: int):
    """small answered all N items; big (the baseline) the first chunks_run chunks of 32 in a drawn order."""
    store = RunStore.create(
        tmp_path,
        {
            "command": "sizebench eval --until-decided",
            "environment": {},
            "plan": {
                "models": [
                    {"name": m, "params": p, "location": m, "source": "hub"}
                    for m, p in (("small", 10**8), ("big", 10**9))
                ]
            },
        },
    )
    store.append(load("small", 10**8))
    store.append(load("big", 10**9))
    store.append(
        ItemsRecord("small", "a", "geo", list(range(N)), [0] * N, scores={"acc": [int(x) for x in small_right]})
    )
    drawn = [int(i) for i in np.random.default_rng(1).permutation(N)]
    for k in range(chunks_run):
        part = drawn[32 * k : 32 * (k + 1)]
        store.append(
            ItemsRecord(
                "big",
                "b",
                "geo",
                sorted(part),
                [0] * len(part),
                scores={"acc": [int(big_right[i]) for i in sorted(part)]},
            )
        )
        store.append(ChunkRecord("big", "b", "geo", N, part, 2.0, 32, 0))
    return store, drawn


def test_a_clear_gap_is_decided_after_few_chunks_and_a_tie_goes_on(tmp_path):
    big = np.ones(N, dtype=int)
    settings = EvalSettings(until_decided=True, margin=0.05)
    worse = np.ones(N, dtype=int)
    worse[::2] = 0  # half the items wrong: far worse than the margin
    store, _ = _run(tmp_path / "a", worse, big, 2)
    assert sequential.answer(store.dir, "geo", 64, settings) == sequential.DECIDED
    store, _ = _run(tmp_path / "b", big, big, 1)
    assert sequential.answer(store.dir, "geo", 32, settings) == sequential.GO  # 32 ties cannot bound the gap yet
    assert sequential.answer(store.dir, "geo", 32, EvalSettings(until_decided=True, max_items=32)) == "--max-items 32"
    assert (
        sequential.answer(store.dir, "geo", 32, EvalSettings(until_decided=True, max_seconds=1.5))
        == "--max-seconds 1.5"
    )


def test_the_report_says_where_a_task_stopped_and_shows_the_sequence(tmp_path):
    worse = np.ones(N, dtype=int)
    worse[::2] = 0
    store, drawn = _run(tmp_path, worse, np.ones(N, dtype=int), 2)
    store.append(StopRecord("big", "b", "geo", N, 64, "decided", 4.0, 0.05))
    fr = frames.load([store.dir])
    (v,) = verdict.verdicts(fr)
    assert v.outcomes.chunked.population == N and v.n == 64
    assert list(v.outcomes.table.index) == drawn[:64]  # the order drawn, which the sequence follows
    assert v.baseline == "big" and v.status("small") == "worse by the margin or more"
    r, s = v.vs_baseline["small"], v.sequences["small"]
    assert (r.low, r.high) == (s.low, s.high) and s.low >= 0.05
    text = verdict_section.paragraph(v)
    assert (
        "64 of 196 items" in text and "stopped after 64 of 196 items (decided, margin 0.05): 3.1x fewer items" in text
    )
    assert f"[{s.low:+.3f}, {s.high:+.3f}]" in text  # the sequence's interval, not Tango's
    assert "Until decided" in verdict_section.verdict_section([v], 0.05, verdict.size_order(fr)[1], True)


def test_the_baseline_runs_its_tasks_after_every_other_rung():
    models = tuple(resolve("offline"))
    plan = RunPlan(models, ("prompts", "tasks"), "p.txt", eval=EvalSettings(until_decided=True))
    order = schedule(plan, {})
    assert [plan.models[i - 1].name for i, _ in order][-1] == "gemma3-270m"
    assert schedule(plan, {"smollm2-135m": "gemma3-270m"})[-1] == (2, ("tasks",))  # the reference runs first too


def test_accuracy_of_a_rung_stopped_early_says_n_of_the_task(tmp_path):
    from sizebench.report import sections
    from sizebench.analysis.per_model import summary
    from sizebench.report.summary import summary_table
    from sizebench.runstore.records import TaskRecord

    worse = np.ones(N, dtype=int)
    worse[::2] = 0
    store, _ = _run(tmp_path, worse, np.ones(N, dtype=int), 2)
    store.append(StopRecord("big", "b", "geo", N, 64, "decided", 4.0, 0.05))
    store.append(TaskRecord("big", "b", "geo", "acc", 1.0, 0.0, 64, None, None, None, 4.0))
    store.append(TaskRecord("small", "a", "geo", "acc", 0.5, 0.036, N, None, None, None, 9.0))
    fr = frames.load([store.dir])
    table = summary_table(summary(fr))
    assert "1.000 ± 0.000 (n 64 of 196, until decided)" in table and "0.500 ± 0.036 |" in table
    assert "64 of 196 (until decided)" in sections.tasks_section(fr, ["small", "big"])


def test_the_runner_s_answer_reaches_the_waiting_worker(tmp_path):
    """The local executor's pipe: a worker that asks after a chunk gets the runner's answer on its stdin."""
    import json
    import sys

    from sizebench.launch.runner import LocalExecutor
    from sizebench.planning.job import Job

    script = (
        "import json, sys\n"
        "print(json.dumps({'model': 'm', 'stage': 'chunk', 'task': 't', 'done': 32, 'total': 64}), flush=True)\n"
        "print(json.dumps({'model': 'm', 'stage': 'failed', 'reason': sys.stdin.readline().strip()}), flush=True)\n"
    )

    class Scripted(LocalExecutor):
        def command(self, job_path):
            return [sys.executable, "-c", script]

    store = RunStore.create(tmp_path, {"command": "test", "plan": {"models": []}})
    seen = []

    def on_event(event):
        seen.append(event)
        return "decided" if event.kind == "chunk" else None

    job = Job(str(store.dir), resolve("smollm2-135m")[0], "a", timeout=30)
    code, _ = Scripted().run(job, store, on_event)
    assert code == 0 and seen[-1] == Event("failed", "m", reason="decided")
    assert Job.from_dict(json.loads((store.dir / "jobs" / f"{job.stem}.json").read_text())) == job


def test_bad_sequential_options_are_one_line_errors():
    from conftest import sizebench

    for args, words in (
        (("eval", "--until-decided", "--chunk", "0"), "--chunk must be a positive integer"),
        (("eval", "--max-items", "5"), "go with --until-decided"),
        (("eval", "--until-decided", "--max-seconds", "-1"), "--max-seconds must be a positive"),
    ):
        done = sizebench(*args)
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [f"error: {done.stderr.strip()[7:]}"]
        assert words in done.stderr and "Traceback" not in done.stderr
