"""The report from a stored run fixture: records written here, no model needed."""

import io
import re

import pytest

from conftest import rendered_apart
from sizebench.runstore import frames
from sizebench import report
from sizebench.runstore.records import FailureRecord, LoadRecord, PromptRecord, StageRecord, TaskRecord
from sizebench.planning.registry import builtin
from sizebench.runstore.store import RunStore


def load(model, params, rss):
    return LoadRecord(
        model,
        "a",
        "fam",
        "hub",
        params,
        100.0,
        400.0,
        None,
        None,
        0.5,
        "cached",
        "float32",
        "cpu",
        1,
        2,
        "dolly",
        rss,
        None,
    )


def prompt(model, pid, answer, correct, latency):
    return PromptRecord(
        model,
        "a",
        pid,
        f"Question {pid}?",
        ["Paris"],
        answer,
        correct,
        10,
        8,
        0.1,
        latency,
        20.0,
        [0.1],
        [latency],
        [20.0],
    )


def task(model, name, value, stderr=0.02, metric="acc"):
    return TaskRecord(model, "a", name, metric, value, stderr, 500, "1.0", 0, None, 12.0)


@pytest.fixture
def run(tmp_path):
    specs = [builtin("minidolly-70m"), builtin("dolly-v2-3b"), builtin("dolly-v2-7b")]
    store = RunStore.create(
        tmp_path,
        {
            "command": "sizebench bench --models all",
            "environment": {"started": "2026-11-23T10:00:00", "cpu": "test cpu", "versions": {"torch": "2.13"}},
            "plan": {"models": [s.to_dict() for s in specs]},
        },
    )
    for record in [
        load("minidolly-70m", 18_915_328, 300.0),
        prompt("minidolly-70m", "p1", "Lyon | or `Nice`\nmaybe", False, 0.2),
        task("minidolly-70m", "arc_easy", 0.40),
        task("minidolly-70m", "arc_easy", 0.38, metric="acc_norm"),
        StageRecord("minidolly-70m", "a", "prompts", 1.0, 350.0, None),
        load("dolly-v2-3b", 2_517_652_480, 6000.0),
        prompt("dolly-v2-3b", "p1", "Paris", True, 1.5),
        task("dolly-v2-3b", "arc_easy", 0.64),
        task("dolly-v2-3b", "arc_easy", 0.60, metric="acc_norm"),
        StageRecord("dolly-v2-3b", "a", "prompts", 9.0, 6500.0, None),
        FailureRecord("dolly-v2-7b", "a", "load", "dolly-v2-7b: needs about 30.5 GiB in float32 but only 23.0 GiB"),
    ]:
        store.append(record)
    return store


def test_sections_rows_failure_and_well_formed_tables(run, tmp_path):
    from rich.console import Console

    path = report.publish([run.dir], tmp_path, Console(file=io.StringIO()))
    text = path.read_text()
    for heading in (
        "## Run",
        "## Summary",
        "## Conclusion",
        "## Accuracy",
        "## Measured vs published",
        "## Scaling plots",
        "## Answers side by side",
        "## How this was measured",
    ):
        assert heading in text
    summary = text.split("## Summary")[1].split("## Conclusion")[0]
    assert summary.index("minidolly-70m") < summary.index("dolly-v2-3b") < summary.index("dolly-v2-7b")
    assert "needs about 30.5 GiB" in summary
    for block in re.findall(r"(?:^\|.*\|$\n?)+", text, flags=re.M):
        rows = [r for r in block.strip().splitlines()]
        counts = {len(re.findall(r"(?<!\\)\|", r)) for r in rows}
        assert len(counts) == 1, block


def test_plots_exist_and_open(run, tmp_path):
    from PIL import Image
    from rich.console import Console

    report.publish([run.dir], tmp_path, Console(file=io.StringIO()))
    for name in ("plot_accuracy.png", "plot_decode_speed.png", "plot_peak_memory.png"):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 100
    assert "![plot_accuracy](plot_accuracy.png)" in (tmp_path / "report.md").read_text()


@pytest.mark.long
def test_rendering_is_deterministic(run, tmp_path):
    """Byte for byte, report and plots, whatever order sets and dicts of strings take in the process."""
    first, second = rendered_apart(run.dir, tmp_path / "out")
    assert "report.md" in first and "plot_peak_memory.png" in first
    assert first.keys() == second.keys() and [n for n in first if first[n] != second[n]] == []


def test_published_value_joined_for_dolly_3b_arc_easy(run):
    text = report.render(frames.load([run.dir]), [])
    published = text.split("## Measured vs published")[1]
    row = next(line for line in published.splitlines() if line.startswith("| dolly-v2-3b"))
    # the card's arc_easy is acc_norm: measured acc_norm 0.600 against 0.611532, not acc 0.64
    assert "acc\\_norm" in row and "0.6000" in row and "0.6115" in row and "-0.6" in row


def test_markdown_escaping_of_answers():
    assert report.cell("a | b `c`\nnew <b>") == "a \\| b \\`c\\` new &lt;b&gt;"
    line = report.table(["x", "y"], [["1|2", "line\nbreak"]]).splitlines()[-1]
    assert len(re.findall(r"(?<!\\)\|", line)) == 3


def test_conclusion_names_smallest_within_one_stderr(run):
    text = report.render(frames.load([run.dir]), [])
    assert (
        "smallest model within the standard error of the difference (√(se² + se_best²), unpaired) of it is "
        "**dolly-v2-3b**"
        in text
        and "one standard error" not in text
    )
    assert "Going up from minidolly-70m to dolly-v2-3b" in text and "peak memory x" in text


def test_latest_run_wins_when_combined(run, tmp_path):
    later = RunStore.create(
        tmp_path, {"command": "again", "environment": {}, "plan": {"models": [builtin("dolly-v2-3b").to_dict()]}}
    )
    later.append(task("dolly-v2-3b", "arc_easy", 0.65))
    fr = frames.load([run.dir, later.dir])
    values = fr["task"][fr["task"]["model"] == "dolly-v2-3b"]["value"].tolist()
    assert values == [0.65]
    both = frames.load([run.dir, later.dir], latest_only=False)
    assert sorted(both["task"][both["task"]["model"] == "dolly-v2-3b"]["value"]) == [0.6, 0.64, 0.65]


def test_latest_run_is_the_last_claimed_past_nine_in_one_second(tmp_path, monkeypatch):
    monkeypatch.setattr("sizebench.runstore.store.time.strftime", lambda fmt: "20261123-120000")
    plan = {"plan": {"models": [builtin("dolly-v2-3b").to_dict()]}}
    stores = [RunStore.create(tmp_path, plan) for _ in range(10)]
    for n, store in enumerate(stores):
        store.append(task("dolly-v2-3b", "arc_easy", n / 100))
    assert stores[-1].run_id == "20261123-120000-10"
    fr = frames.load([s.dir for s in stores])
    assert fr["task"]["value"].tolist() == [0.09] and fr["task"]["run_id"].tolist() == ["20261123-120000-10"]
    assert [m["run_id"] for m in fr.metas] == [s.run_id for s in stores]


def test_a_resumed_stage_shows_only_the_attempt_that_finished(tmp_path):
    store = RunStore.create(
        tmp_path, {"command": "x", "environment": {}, "plan": {"models": [builtin("dolly-v2-3b").to_dict()]}}
    )
    first = [
        load("dolly-v2-3b", 1, 1.0),
        prompt("dolly-v2-3b", "p1", "old", False, 1.0),
        FailureRecord("dolly-v2-3b", "a", "prompts", "worker killed by SIGKILL"),
    ]
    for record in first:
        store.append(record)
    again = [
        LoadRecord(
            "dolly-v2-3b",
            "b",
            "fam",
            "hub",
            1,
            1.0,
            1.0,
            None,
            None,
            0.4,
            "cached",
            "float32",
            "cpu",
            1,
            2,
            "dolly",
            2.0,
            None,
        ),
        PromptRecord("dolly-v2-3b", "b", "p1", "q", ["Paris"], "new", True, 1, 1, 0.1, 0.2, 5.0),
        PromptRecord("dolly-v2-3b", "b", "p2", "q2", [], "two", None, 1, 1, 0.1, 0.2, 5.0),
        StageRecord("dolly-v2-3b", "b", "prompts", 1.0, 2.0, None),
    ]
    for record in again:
        store.append(record)
    fr = frames.load([store.dir])
    assert fr["prompt"]["answer"].tolist() == ["new", "two"]
    assert fr["load"]["attempt"].tolist() == ["b"] and fr["failed"].empty


@pytest.mark.long
def test_report_and_plots_are_replaced_whole_never_rewritten_in_place(run, tmp_path, monkeypatch):
    """Another sweep or a reader opening results/ mid-render sees the old file or the new one, never half: a
    reader that opened each file before the next render keeps reading the old file whole, and the name then
    points at another file (a rename), not at the one rewritten."""
    import os

    from rich.console import Console

    out = tmp_path / "out"
    report.publish([run.dir], out, Console(file=io.StringIO()))
    names = ["report.md", *sorted(p.name for p in out.glob("plot_*.png"))]
    assert "plot_peak_memory.png" in names
    old = {name: (out / name).read_bytes() for name in names}
    readers = {name: open(out / name, "rb") for name in names}
    try:
        monkeypatch.setattr(report, "render", lambda *args, **kwargs: "# sizebench report\n\nanother render\n")
        report.publish([run.dir], out, Console(file=io.StringIO()))
        for name, reader in readers.items():
            assert os.fstat(reader.fileno()).st_ino != (out / name).stat().st_ino, name
            assert reader.read() == old[name], name
    finally:
        for reader in readers.values():
            reader.close()
    assert (out / "report.md").read_text() == "# sizebench report\n\nanother render\n"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_the_summary_shows_the_load_and_running_cuda_peaks_apart_as_its_prose_says():
    import pandas as pd

    from sizebench.report.summary import summary_prose, summary_table

    df = pd.DataFrame(
        [
            {
                "model": "m",
                "params": 10**8,
                "status": "ok",
                "device": "cuda",
                "precision": "int8",
                "n_devices": 1,
                "load_cuda_peak_mb": 900.0,
                "cuda_peak_mb": 400.0,
            }
        ]
    )
    header, _, row = summary_table(df).splitlines()[:3]
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["load CUDA peak MiB (all GPUs)"] == "900" and cells["running CUDA peak MiB (all GPUs)"] == "400"
    from sizebench.analysis.sizes import SizeAxis

    assert "load's CUDA peak apart from the running one" in summary_prose(
        SizeAxis("params", "total parameters", {}, [])
    )
