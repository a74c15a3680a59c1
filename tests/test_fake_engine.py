"""The pipeline around an engine in this process: the runner, the worker, the stages and the store on the fake
engine (tests/fake_engine), whose clock makes the timed figures exact; and how such an engine registers."""

import io
import signal

import pytest
from rich.console import Console

from fake_engine import make_model
from sizebench import engines
from sizebench.errors import SizebenchError
from sizebench.launch import runner, worker
from sizebench.planning.plan import RunPlan
from sizebench.planning.registry import resolve
from sizebench.specs.settings import EvalSettings, GenSettings

QUIET = Console(file=io.StringIO())


class InProcess:
    """The runner's executor seam, the worker run in this process: no child process, no interpreter start."""

    def run(self, job: dict, store, on_event) -> tuple[int, str]:
        return worker.run(job), ""


@pytest.fixture(autouse=True)
def _signals_restored():
    """worker.run installs its stop handlers (SIGTERM, SIGHUP) in this process; put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def execute(models: str, tmp_path, suite_file, stages=("prompts",), **gen):
    plan = RunPlan(
        models=tuple(resolve(models)),
        stages=stages,
        prompts_path=str(suite_file),
        gen=GenSettings(**{"max_new_tokens": 8, "repeat": 1, **gen}),
        eval=EvalSettings(tasks=("sizebench_geo",), limit=2),
    ).validate()
    store = runner.new_run(plan, tmp_path / "results", "test")
    return runner.execute(plan, store, QUIET, executor=InProcess()), store.records()


def test_every_stage_runs_and_the_timed_figures_are_the_fake_clocks(fake_ladder, suite_file, tmp_path):
    outcome, rows = execute(fake_ladder, tmp_path, suite_file, ("prompts", "tasks", "agreement"), repeat=2)
    assert outcome.exit_code == 0 and not outcome.failed
    assert {(r["model"], r["stage"]) for r in rows if r["kind"] == "stage"} == {
        (m, s) for m in ("fake:small", "fake:big") for s in ("prompts", "tasks", "agreement")
    }
    loads = [r for r in rows if r["kind"] == "load"]
    assert [r["model"] for r in loads] == ["fake:big", "fake:small"]  # the agreement reference runs first
    assert [r["params"] for r in loads] == [3_000_000, 1_000_000] and {r["engine"] for r in loads} == {"fake"}
    prompts = {(r["model"], r["prompt_id"]): r for r in rows if r["kind"] == "prompt"}
    answers = {key: (r["answer"], r["correct"]) for key, r in prompts.items()}
    assert answers == {
        ("fake:small", "mini-001"): ("Paris", True),
        ("fake:small", "mini-002"): ("I do not know", False),
        ("fake:big", "mini-001"): ("Paris", True),
        ("fake:big", "mini-002"): ("Mount Fuji", True),
    }
    for r in prompts.values():  # Behaviour's defaults: 1 ms a prompt token, 10 ms a new token
        assert r["ttft_s_runs"] == [pytest.approx(r["prompt_tokens"] * 0.001 + 0.01)] * 2
        assert r["latency_s"] == pytest.approx(r["ttft_s"] + 0.01 * (r["new_tokens"] - 1))
        assert r["decode_tok_per_s"] == (pytest.approx(100.0) if r["new_tokens"] > 1 else None)
        assert r["same_answer_every_run"]
    assert not [r for r in rows if r["kind"] == "bandwidth"]  # no real device to measure
    assert {r["model"] for r in rows if r["kind"] == "task"} == {"fake:small", "fake:big"}
    figures = [r for r in rows if r["kind"] == "agreement"]
    assert {(r["model"], r["reference"]) for r in figures} == {("fake:small", "fake:big")}
    assert all(r["kld_mean"] > 0 for r in figures)


def test_an_unavailable_model_is_not_a_failure_and_a_failing_one_keeps_what_it_finished(suite_file, tmp_path):
    gone = make_model(tmp_path / "gone", fail_at="load", failure="unavailable")
    flaky = make_model(tmp_path / "flaky", fail_at="generate", fail_after=2)  # the warm-up and the first prompt
    outcome, rows = execute(f"fake:{gone},fake:{flaky}", tmp_path, suite_file)
    assert outcome.unavailable == ["fake:gone"] and outcome.failed == ["fake:flaky"] and outcome.exit_code == 1
    failures = {r["model"]: (r["stage"], r["reason"], r["unavailable"]) for r in rows if r["kind"] == "failed"}
    assert failures == {
        "fake:gone": ("load", "fake model unavailable at load", True),
        "fake:flaky": ("prompts", "RuntimeError: fake failure at generate", False),
    }
    assert [r["prompt_id"] for r in rows if r["kind"] == "prompt"] == ["mini-001"]
    assert not [r for r in rows if r["kind"] == "stage"]


def test_a_worker_that_dies_without_a_word_is_failed_by_the_runner_with_the_signal(suite_file, tmp_path):
    """A worker process SIGKILLed mid-stage (the OOM killer's way) writes nothing more: the runner names it."""
    crashing = make_model(tmp_path / "crashing", fail_at="generate", fail_after=2, failure="crash")
    plan = RunPlan(
        models=tuple(resolve(f"fake:{crashing}")),
        stages=("prompts",),
        prompts_path=str(suite_file),
        gen=GenSettings(max_new_tokens=8, repeat=1),
    ).validate()
    store = runner.new_run(plan, tmp_path / "results", "test")
    outcome = runner.execute(plan, store, QUIET)  # the local executor: a worker process
    assert outcome.failed == ["fake:crashing"]
    (failure,) = [r for r in store.records() if r["kind"] == "failed"]
    assert failure["stage"] == "prompts" and failure["reason"].startswith("worker killed by SIGKILL (out of memory?")
    assert [r["prompt_id"] for r in store.records() if r["kind"] == "prompt"] == ["mini-001"]


def test_an_engine_registers_by_name_from_the_environment(monkeypatch, tmp_path):
    assert "fake" in engines.names() and engines.get("fake").name == "fake"
    (spec,) = resolve(f"fake:{make_model(tmp_path / 'm')}")
    assert (spec.name, spec.engine) == ("fake:m", "fake")
    with pytest.raises(SizebenchError, match="runs fake model folders only"):
        folder = tmp_path / "plain"
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        engines.get("fake").check(resolve(f"fake:{folder}")[0], "cpu")
    for bad in ("fake", "transformers=fake_engine.engine", "=x"):
        monkeypatch.setenv(engines.EXTRA_ENGINES_VARIABLE, bad)
        with pytest.raises(SizebenchError, match="is not NAME=MODULE with a new NAME"):
            engines.names()
    monkeypatch.delenv(engines.EXTRA_ENGINES_VARIABLE)
    with pytest.raises(SizebenchError, match="unknown engine 'fake'"):
        engines.get("fake")


def test_agreement_over_one_answer_has_no_stderr_and_fails_nothing(fake_ladder, tmp_path):
    """One prompt: the answers are one cluster, so there is no clustered standard error (it was a NaN, which the
    store refuses: the worker failed)."""
    one = tmp_path / "one.txt"
    one.write_text("What is the capital of France? => Paris\n")
    outcome, rows = execute(fake_ladder, tmp_path, one, ("prompts", "agreement"))
    assert outcome.exit_code == 0 and not outcome.failed
    answers = [r for r in rows if r["kind"] == "agreement" and r["units"] == 1]
    assert answers and all(r["kld_stderr"] is None and r["ln_ppl_ratio_stderr"] is None for r in answers)


def test_every_stage_starts_its_own_memory_peak_and_writes_its_record(tmp_path):
    """The tracker every stage runs in (the sweep ran without the reset): 300 MiB held and freed before the stage
    is not the stage's peak."""
    import os
    from types import SimpleNamespace

    from sizebench import stages
    from sizebench.measurement import measure

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("no resettable peak RSS (Linux's /proc/self/clear_refs) here")
    loaded = SimpleNamespace(
        spec=SimpleNamespace(name="m"),
        peak_rss_mb=measure.peak_rss_mb,
        reset_cuda_peak=lambda: None,
        cuda_peak_mb=lambda: None,
        resident_weights_mb=lambda: None,
    )
    for stage in stages.names():
        held = b"x" * (300 * 2**20)
        del held
        before, written = measure.peak_rss_mb(), []
        with worker.tracked(loaded, SimpleNamespace(append=written.append), "a1", stage):
            pass
        [record] = written
        assert record.stage == stage and record.peak_rss_mb < before - 200
