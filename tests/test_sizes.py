"""One identity and one size axis, checked on records exactly as the worker writes them.

The ladder is the tiny GPT-NeoX at float32 and at torchao int8, and a second tiny model of the same
shape at float32: equal parameters everywhere, equal weight memory for the two float32 rows. That is
the case the verdict used to get wrong (it ordered by parameters, ties by name) while the summary
ordered by weight memory.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from conftest import sizebench
from sizebench.analysis.analyse import analyse
from sizebench.runstore import frames
from sizebench.report import plots
from sizebench import report
from sizebench.analysis import sizes, verdict
from sizebench.analysis.per_model import summary

OLD_RUN = Path(__file__).parent / "data" / "run-before-issue-19"  # written by sizebench at a970e11


@pytest.fixture(scope="module")
def ladder_run(tiny_model, tiny_ender, tmp_path_factory) -> Path:
    pytest.importorskip("torchao")
    root = tmp_path_factory.mktemp("ladder")
    suite = root / "mini.txt"
    suite.write_text("What is the capital of France? => Paris\nName a mountain in Japan. => Fuji\n")
    done = sizebench(
        "bench",
        "--models",
        f"{tiny_model}@fp32,int8,{tiny_ender}",
        "--prompts",
        str(suite),
        "--tasks",
        "sizebench_geo",
        "--limit",
        "8",
        "--results",
        str(root / "results"),
    )
    assert done.returncode == 0, done.stderr
    return next((root / "results" / "runs").iterdir())


def test_the_verdict_summary_and_plots_share_one_order(ladder_run, tmp_path):
    fr = frames.load([ladder_run])
    order, size_axis = verdict.size_order(fr)
    assert size_axis.column == "weights_mem_mb" and size_axis.title == "weight memory (MiB)"
    assert order[0] == "tiny-neox@int8"  # int8 holds the fewest bytes
    assert list(summary(fr)["model"]) == order
    for v in verdict.verdicts(fr):
        assert list(v.outcomes.table.columns) == order
    text = report.render(fr, [])
    assert "smallest first by weight memory in MiB" in text and "smallest first by total parameters" not in text
    assert plots.write(summary(fr), size_axis, tmp_path)  # plots take the same axis object


def test_rows_equal_in_size_are_named_together_in_the_order_given(ladder_run):
    fr = frames.load([ladder_run])
    size_axis = sizes.axis(fr)
    # Given as tiny-neox@fp32 then tiny-ender: equal in memory, so that order stays (by name it would flip)
    assert size_axis.tier("tiny-ender") == ["tiny-neox@fp32", "tiny-ender"]
    assert size_axis.order == ["tiny-neox@int8", "tiny-neox@fp32", "tiny-ender"]
    text = report.render(fr, [])
    assert "| equal size | tiny-ender | tiny-neox@fp32 |" in text
    assert "Going up from tiny-neox@fp32 to tiny-ender (equal in weight memory)" in text


def test_identity_carries_the_engine_from_the_spec_to_the_load_record(ladder_run):
    plan = json.loads((ladder_run / "run.json").read_text())["plan"]
    assert {m["engine"] for m in plan["models"]} == {"transformers"}
    loads = [
        json.loads(line) for line in (ladder_run / "records.jsonl").read_text().splitlines() if '"kind": "load"' in line
    ]
    assert {r["engine"] for r in loads} == {"transformers"}
    assert {r["model"]: r["base_model"] for r in loads} == {  # the registry's base, stored, not split back
        "tiny-neox@fp32": "tiny-neox",
        "tiny-neox@int8": "tiny-neox",
        "tiny-ender": "tiny-ender",
    }
    ids = sizes.identities(frames.load([ladder_run]))
    assert {(i.model, i.precision) for i in ids.values()} == {
        ("tiny-neox", "fp32"),
        ("tiny-neox", "int8"),
        ("tiny-ender", "fp32"),
    }


def test_the_stored_base_model_decides_a_row_s_model_and_older_records_split_the_name(tmp_path):
    from sizebench.runstore.records import LoadRecord
    from sizebench.runstore.store import RunStore

    store = RunStore.create(tmp_path, {"command": "test", "plan": {"models": []}})
    fields = dict(
        family="f",
        source="hub",
        params=10**8,
        weights_mb=1.0,
        weights_mem_mb=1.0,
        quantization=None,
        convert_s=None,
        load_s=1.0,
        load_kind="cached",
        dtype="float32",
        device="cpu",
        n_devices=1,
        threads=2,
        prompt_format="plain",
        peak_rss_mb=1.0,
        cuda_peak_mb=None,
    )
    store.append(LoadRecord("odd@name", "a", **fields, base_model="the-model"))
    store.append(LoadRecord("llama.cpp:other@q8_0", "a", **fields))  # written before the field
    ids = sizes.identities(frames.load([store.dir]))
    assert ids["odd@name"].model == "the-model" and ids["llama.cpp:other@q8_0"].model == "other"


def test_variants_of_one_size_are_not_counted_as_sizes(ladder_run):
    text = report.render(frames.load([ladder_run]), [])
    assert "3 size(s)" not in text and "3 sizes measured" not in text
    assert "(transformers, int8): 1 size measured" in text


def test_the_cost_frontier_shows_memory_to_run_not_the_load_transient(ladder_run):
    fr = frames.load([ladder_run])
    df = summary(fr)
    a = analyse(fr, df)
    stages = fr["stage"][fr["stage"]["stage"].isin(("prompts", "tasks"))]  # not the agreement stage's logit rows
    for model, (memory, *_rest) in a.frontier.points.items():
        assert memory == stages[stages["model"] == model]["peak_rss_mb"].max()
    assert "memory to run MiB" in report.render(fr, [], df, analysis=a)


@pytest.mark.long
def test_runs_recorded_before_the_identity_still_render_on_the_one_axis(tmp_path):
    run = shutil.copytree(OLD_RUN, tmp_path / OLD_RUN.name)
    fr = frames.load([run])
    assert "engine" not in fr["load"]  # written before the field existed
    order, size_axis = verdict.size_order(fr)
    assert size_axis.column == "weights_mem_mb" and order[0] == "tiny-neox@int8"
    assert list(summary(fr)["model"]) == order
    from rich.console import Console

    path = report.publish([run], tmp_path / "out", Console(file=io.StringIO()))
    assert "**tiny-neox@fp32** (0.417), the baseline, is the one to take" in path.read_text().split("## Summary")[0]
