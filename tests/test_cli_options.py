"""Report options on the commands that run models, and what `bench --resume` takes: runs of the fake engine's
ladder (conftest.fake_ladder) through the CLI's entry point."""

import pytest

from conftest import records


@pytest.mark.long
def test_bench_takes_margin_and_resume_refuses_what_would_change_the_run(fake_ladder, suite_file, tmp_path, cli):
    results = tmp_path / "r"
    code, _, stderr = cli(
        "bench",
        "--models",
        fake_ladder,
        "--prompts",
        str(suite_file),
        "--limit",
        "2",
        "--max-new-tokens",
        "2",
        "--margin",
        "0.2",
        "--report",
        "b.md",
        "--results",
        str(results),
    )
    assert code == 0, stderr
    assert "`--margin 0.2`" in (results / "b.md").read_text() and not (results / "report.md").exists()
    run_dir = next((results / "runs").iterdir())
    before = (run_dir / "records.jsonl").read_bytes(), (run_dir / "run.json").read_bytes()

    code, _, stderr = cli(
        "bench",
        "--resume",
        run_dir.name,
        "--models",
        fake_ladder.split(",")[0],
        "--limit",
        "3",
        "--results",
        str(results),
    )
    assert code == 2 and stderr.count("\n") == 1, stderr
    assert stderr.startswith(
        "error: --resume continues the run with the settings it started with; --models, --limit cannot change them"
    ), stderr
    assert ((run_dir / "records.jsonl").read_bytes(), (run_dir / "run.json").read_bytes()) == before

    code, _, stderr = cli(
        "bench",
        "--resume",
        run_dir.name,
        "--timeout",
        "600",
        "--executor",
        "local",
        "--margin",
        "0.3",
        "--baseline",
        "fake:big",
        "--report",
        "again.md",
        "--results",
        str(results),
    )
    assert code == 0, stderr
    assert "`--margin 0.3`" in (results / "again.md").read_text()
    assert "`--baseline fake:big`" in (results / "again.md").read_text()
    loads = [r["model"] for r in records(results) if r["kind"] == "load"]
    assert sorted(loads) == ["fake:big", "fake:small"]  # each loaded once: nothing redone


@pytest.mark.long
def test_eval_takes_report_and_margin(fake_ladder, tmp_path, cli):
    code, _, stderr = cli(
        "eval",
        "--models",
        fake_ladder,
        "--limit",
        "2",
        "--report",
        "e.md",
        "--margin",
        "0.25",
        "--results",
        str(tmp_path),
    )
    assert code == 0, stderr
    assert "`--margin 0.25`" in (tmp_path / "e.md").read_text() and not (tmp_path / "report.md").exists()


def test_compare_takes_margin(fake_ladder, suite_file, tmp_path, cli):
    code, _, stderr = cli(
        "compare",
        "--models",
        fake_ladder,
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "2",
        "--margin",
        "0.3",
        "--results",
        str(tmp_path),
    )
    assert code == 0, stderr
    assert "`--margin 0.3`" in (tmp_path / "report.md").read_text()
