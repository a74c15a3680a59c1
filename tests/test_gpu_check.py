"""benchmarks/gpu_check.sh's logic on a CPU (`--cpu`: tiny rungs and a tiny anchor shape): every step runs and the
table comes out; a bandwidth below 80% of the published figure stops the check before anything else runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def check(out: Path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_OUT": str(out), **env}
    return subprocess.run(["bash", str(SCRIPT), "--cpu"], capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.long
def test_a_bandwidth_below_80_percent_of_the_published_figure_fails_the_check_loudly_and_first(tmp_path):
    done = check(tmp_path / "out", PUBLISHED_GB_S="1000000")
    assert done.returncode == 1
    assert "GPU CHECK FAILED at: bandwidth" in done.stderr and "below 80%" in done.stderr
    assert not (tmp_path / "out" / "static").exists()


def test_an_unknown_argument_is_a_usage_error():
    done = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: benchmarks/gpu_check.sh [--cpu]" in done.stderr


@pytest.mark.slow
def test_the_cpu_dry_run_goes_through_every_step_and_writes_one_table(tiny_model, tiny_eos, tmp_path):
    out = tmp_path / "out"
    done = check(out, MODELS=f"{tiny_model},{tiny_eos}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for step in (
        "bandwidth on cpu",
        "GPU-marked tests",
        "bench, --decode static",
        "bench, --decode eager",
        "plain-transformers anchors (tiny shape)",
        "table ->",
    ):
        assert step in done.stdout
    table = (out / "RESULTS.md").read_text()
    assert table.startswith("\n### GPU check: ") and "Bandwidth: " in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == [
        "| tiny-neox",
        "| tiny-eos",
        "| plain `model.generate`, eager (tiny shape, float32)",
        "| plain `model.generate`, static (tiny shape, float32)",
    ]
    assert "static run: " in table and "eager run: " in table
