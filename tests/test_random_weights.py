"""`--weights random`: cost-only rungs built from the config, never scored, marked in every table."""

import json
import re
import subprocess
import sys

import pytest

from conftest import REPO, sizebench

pytest.importorskip("transformers")


@pytest.mark.models
def test_a_random_rung_has_the_registry_counts_the_planned_bytes_and_runs_to_max_new_tokens():
    from sizebench.engines.hf import footprint, placement, random_weights
    from sizebench.planning.registry import builtin, with_random_weights
    from sizebench.specs.models import CONFIGS
    from sizebench.stages.generation import GenSettings
    from sizebench.specs.prompts import Prompt

    spec = with_random_weights(builtin("minidolly-70m"))
    loaded = random_weights.load(spec, "cpu", "bfloat16")
    assert (loaded.params, loaded.params_non_embedding) == (
        builtin("minidolly-70m").params,
        builtin("minidolly-70m").params_non_embedding,
    )
    planned = placement.place(CONFIGS["marouni/miniDolly"], "bfloat16", [], 2**40)
    assert planned.weights_bytes == footprint.weight_bytes(loaded.model)
    record = loaded.load_record("a")
    assert record.weights == "random" and record.tokenizer == "byte-level stand-in (50,304 ids)"
    assert record.model == "minidolly-70m (random weights: cost only)"
    assert len(loaded.tokenizer) == 50_304
    answer = loaded.generate(
        loaded.render(Prompt("p", "What is the capital of France?")), GenSettings(max_new_tokens=6)
    )
    assert answer.new_tokens == 6  # EOS off, no stop string: every answer is as long as asked


PEAK = r"""
import json, sys
from pathlib import Path
from sizebench.engines.hf import placement, random_weights
from sizebench.measurement import measure
from sizebench.planning.registry import resolve, with_random_weights
from sizebench.stages.generation import GenSettings
from sizebench.specs.prompts import Prompt

folder, warm = Path(sys.argv[1]), Path(sys.argv[2])
settings = GenSettings(max_new_tokens=24, batch_size=1)
prompt = Prompt("p", "Name three rivers of Europe and the seas they flow into, with their lengths. " * 3)
small = random_weights.load(with_random_weights(resolve(str(warm))[0]), "cpu", "float32")
small.generate(small.render(prompt), settings)  # code paths and the stand-in tokenizer (same vocabulary) loaded first
del small
import gc; gc.collect()
base = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024
measure.reset_peak_rss()
loaded = random_weights.load(with_random_weights(resolve(str(folder))[0]), "cpu", "float32")
out = loaded.generate(loaded.render(prompt), settings)
peak = (measure.peak_rss_mb() - base) * 2**20
config = json.loads((folder / "config.json").read_text())
planned = placement.place(config, "float32", [], 2**40, context=out.prompt_tokens + out.new_tokens)
print(json.dumps({"peak": peak, "total": planned.total_bytes, "weights": planned.weights_bytes}))
"""


@pytest.mark.models
def test_the_planned_total_is_within_10_percent_of_and_above_the_running_peak(tmp_path):
    """A GPT-NeoX of 150M parameters (float32, 585 MiB): weights dominate, as in real rungs. Measured in a
    fresh process: the peak RSS of building it and answering one prompt, over the RSS before."""
    from sizebench.specs.models import CONFIGS

    def folder(name, **shape):
        path = tmp_path / name
        path.mkdir()
        (path / "config.json").write_text(json.dumps({**CONFIGS["databricks/dolly-v2-3b"], **shape}))
        return path

    shape = folder("mid", hidden_size=1024, num_hidden_layers=4, num_attention_heads=16, intermediate_size=4096)
    warm = folder("warm", hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256)
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(shape), str(warm)], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["peak"] <= figures["total"] <= 1.10 * figures["peak"], figures


def test_random_rungs_are_cost_only_in_every_table_and_the_verdict_ignores_them(tiny_model, tmp_path, suite_file):
    """A real two-rung ladder and minidolly-70m with random weights, reported together."""
    from conftest import build_tiny_neox

    bigger = build_tiny_neox(tmp_path / "tiny-neox-wide", hidden=48, seed=1)
    offline = {"HF_HUB_OFFLINE": "1"}
    real = sizebench(
        "compare",
        "--models",
        f"{tiny_model},{bigger}",
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "4",
        "--results",
        str(tmp_path),
        env=offline,
    )
    assert real.returncode == 0, real.stderr
    cost = sizebench(
        "bench",
        "--models",
        "minidolly-70m",
        "--weights",
        "random",
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "4",
        "--batch-size",
        "2",
        "--results",
        str(tmp_path),
        env=offline,
    )
    assert cost.returncode == 0, cost.stderr
    rows = [
        json.loads(line)
        for run in (tmp_path / "runs").iterdir()
        for line in (run / "records.jsonl").read_text().splitlines()
        if line.strip()
    ]
    mark = "minidolly-70m (random weights: cost only)"
    assert {r["stage"] for r in rows if r["kind"] == "stage" and r["model"] == mark} == {"prompts"}  # no tasks
    assert all(r["correct"] is None for r in rows if r["kind"] == "prompt" and r["model"] == mark)
    assert {r["new_tokens"] for r in rows if r["kind"] == "prompt" and r["model"] == mark} == {4}
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    both = sizebench("report", *runs, "--results", str(tmp_path))
    assert both.returncode == 0, both.stderr
    report = (tmp_path / "report.md").read_text()
    verdict = report.split("\n## ")[1]
    assert verdict.startswith("Verdict") and "minidolly" not in verdict
    tables = re.findall(r"(?:^\|.*\n)+", report, flags=re.M)
    assert sum("minidolly" in t for t in tables) >= 2  # the summary and the cost frontier at least
    answers = report.split("## Answers side by side", 1)[1].split("\n## ", 1)[0]
    assert "minidolly" not in answers and "random weights (cost only) are left out" in answers  # noise, not answers
    for table in tables:  # every table that shows the rung marks it, on each line that names it
        assert all(mark in line for line in table.splitlines() if "minidolly" in line)


def test_what_has_no_config_to_build_from_is_one_line():
    from sizebench.errors import SizebenchError
    from sizebench.planning.registry import builtin, resolve, with_random_weights

    with pytest.raises(SizebenchError, match="--weights random builds a transformers model"):
        with_random_weights(builtin("smollm2-135m"))  # a GGUF package
    with pytest.raises(SizebenchError, match="--weights random"):
        with_random_weights(resolve("llama.cpp:smollm2-135m")[0])
