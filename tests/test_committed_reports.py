"""The committed example reports are what `sizebench report` renders from the run folders beside them.

Each report's "Run" section names its runs; their run.json and records.jsonl are committed under
results/runs/. Rendering them again (in a fresh process, with another hash seed) must give the
committed Markdown byte for byte: a report edited by hand, or a renderer change that alters what a
committed report shows without regenerating it, fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.long  # each report rendered in a fresh process
REPO = Path(__file__).resolve().parents[1]
REPORTS = (
    "report.md",
    "precision-report.md",
    "engines-report.md",
    "served-report.md",
    "preference-report.md",
    "agreement-report.md",
    "dolly-cost-report.md",
)
RENDER = (
    "import sys; from pathlib import Path; from rich.console import Console; from sizebench import report;"
    "report.publish([Path(p) for p in sys.argv[3:]], Path(sys.argv[1]), Console(file=open('/dev/null', 'w')),"
    " name=sys.argv[2])"
)


def run_ids(report: Path) -> list[str]:
    section = report.read_text(encoding="utf-8").split("## Run", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- \*\*([0-9]{8}-[0-9]{6}(?:-[0-9]+)?)\*\*", section, flags=re.M)


@pytest.mark.parametrize("name", REPORTS)
def test_committed_report_renders_byte_identically_from_its_runs(name, tmp_path):
    committed = REPO / "results" / name
    ids = run_ids(committed)
    assert ids, f"{name} names no run"
    folders = [REPO / "results" / "runs" / i for i in ids]
    for folder in folders:
        assert (folder / "run.json").is_file() and (folder / "records.jsonl").is_file(), f"{folder} is not committed"
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    subprocess.run(
        [sys.executable, "-c", RENDER, str(tmp_path), name, *map(str, folders)],
        check=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert (tmp_path / name).read_bytes() == committed.read_bytes()
    for png in re.findall(r"\]\(([^)]+\.png)\)", committed.read_text(encoding="utf-8")):
        assert (tmp_path / png).is_file() and (REPO / "results" / png).is_file()
