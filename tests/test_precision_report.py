"""The report of a precision ladder, from stored records: rows per variant, weight memory as the size
axis, answers that changed against the reference, equal-memory comparisons, a report of its own name."""

import io

import pytest
from rich.console import Console

from sizebench import report
from sizebench.runstore.records import LoadRecord, PromptRecord, StageRecord, TaskRecord
from sizebench.planning.registry import resolve
from sizebench.runstore.store import RunStore

MIB = 2**20


def load(model, params, mem_mib, precision, label, dtype="float32"):
    return LoadRecord(
        model,
        "a",
        "fam",
        "hub",
        params,
        100.0,
        mem_mib,
        None,
        None,
        0.5,
        "cached",
        dtype,
        "cpu",
        1,
        2,
        "plain",
        900.0,
        None,
        precision=precision,
        precision_label=label,
        bytes_per_param=mem_mib * MIB / params,
    )


def prompt(model, pid, answer, correct, tok_s=20.0):
    return PromptRecord(model, "a", pid, f"Question {pid}?", ["Paris"], answer, correct, 10, 8, 0.1, 0.5, tok_s)


@pytest.fixture
def ladder(tmp_path):
    specs = resolve("smollm2-135m@fp32,int8,gemma3-270m@nf4")
    store = RunStore.create(
        tmp_path, {"command": "sizebench bench", "environment": {}, "plan": {"models": [s.to_dict() for s in specs]}}
    )
    small, big = 134_515_008, 268_098_176
    records = [
        load("smollm2-135m@fp32", small, 513.0, "fp32", "float32"),
        load("smollm2-135m@int8", small, 230.0, "int8", "int8 weight-only (torchao)"),
        load("gemma3-270m@nf4", big, 250.0, "nf4", "4-bit nf4 (bitsandbytes)"),
    ]
    answers = {
        "smollm2-135m@fp32": ["Paris", "Rome", "Fuji"],
        "smollm2-135m@int8": ["Paris ", "Lyon", "Fuji yes"],
        "gemma3-270m@nf4": ["Paris", "Paris", "Paris"],
    }
    right = {
        "smollm2-135m@fp32": [True, False, True],
        "smollm2-135m@int8": [True, True, False],
        "gemma3-270m@nf4": [True, True, True],
    }
    for model, texts in answers.items():
        records += [
            prompt(model, f"p{i}", t, right[model][i], 20.0 if model.endswith("@fp32") else 10.0)
            for i, t in enumerate(texts)
        ]
        records.append(StageRecord(model, "a", "prompts", 1.0, 900.0, None))
    for model, acc in (("smollm2-135m@fp32", 0.60), ("smollm2-135m@int8", 0.55), ("gemma3-270m@nf4", 0.80)):
        records.append(TaskRecord(model, "a", "geo", "acc", acc, 0.02, 200, "1", 0, None, 5.0))
    for record in records:
        store.append(record)
    return store


def test_precision_rows_and_comparisons(ladder, tmp_path):
    path = report.publish([ladder.dir], tmp_path, Console(file=io.StringIO()), name="precision-report.md")
    assert path.name == "precision-report.md" and not (tmp_path / "report.md").exists()
    text = path.read_text()
    assert {p.name for p in tmp_path.glob("*.png")} >= {
        "precision-report_accuracy.png",
        "precision-report_decode_speed.png",
        "precision-report_peak_memory.png",
    }
    assert all(p.name.startswith("precision-report_") for p in tmp_path.glob("*.png"))  # report.md's plots untouched
    summary = text.split("## Summary")[1].split("## Conclusion")[0]
    # Mixed precisions: ordered by weight memory, not parameters; each row names its precision.
    assert summary.index("smollm2-135m@int8") < summary.index("gemma3-270m@nf4") < summary.index("smollm2-135m@fp32")
    assert "cpu int8 weight-only (torchao)" in summary and "| 230 |" in summary
    section = text.split("## Precision")[1].split("\n## ")[0]
    int8_row = next(line for line in section.splitlines() if line.startswith("| smollm2-135m@int8"))
    # "Paris " equals "Paris" (whitespace); "Lyon" and "Fuji yes" differ: one wrong->right, one right->wrong.
    assert "2/3 (1 right→wrong, 1 wrong→right)" in int8_row
    assert "| -0.050 |" in int8_row and "| 1.79 |" in int8_row  # Δ acc and 230 MiB / 134.5M params
    assert "| smollm2-135m@fp32 | float32 | 513 | 4.00 |" in section
    assert (
        "About equal memory: **smollm2-135m@int8** (230 MiB, int8 weight-only (torchao)) vs "
        "**gemma3-270m@nf4** (250 MiB, 4-bit nf4 (bitsandbytes))"
    ) in section.replace("\\_", "_")
    assert "accuracy 0.550 vs 0.800 over all task items, decode 10.0 vs 10.0 tok/s, prompts right 2 vs 3" in section
    assert "fp32" not in section.split("About equal memory")[1]  # 513 MiB is not about equal to 250
    conclusion = text.split("## Conclusion")[1].split("\n## ")[0]
    assert "gemma3-270m@nf4** (250 MiB of weights, 0.800)" in conclusion
    assert "smallest first by weight memory in MiB" in summary


def test_single_precision_run_has_no_precision_section(ladder, tmp_path):
    from sizebench.runstore import frames
    from sizebench.report.precision_section import precision_section
    from sizebench.analysis.per_model import summary
    from sizebench.analysis.sizes import axis

    fr = frames.load([ladder.dir])
    df = summary(fr)
    assert axis(fr).column == "weights_mem_mb"
    one = df[df["model"] == "gemma3-270m@nf4"]
    assert precision_section(fr, one) == ""


def test_report_name_must_be_a_markdown_file_name(tmp_path):
    from sizebench.cli.options import report_name as _report_name
    from sizebench.errors import SizebenchError

    assert _report_name("precision-report.md") == "precision-report.md"
    for bad in ("../x.md", "report.txt", "sub/r.md"):
        with pytest.raises(SizebenchError, match="--report takes a file name ending in .md"):
            _report_name(bad)


def test_a_gguf_reference_names_the_rungs_its_records_say_were_requantized():
    """The load record says whether llama.cpp's quantizer made the GGUF; an older record (no such field) is read
    from its engine and label."""
    import pandas as pd

    from sizebench.report.precision_section import reference_lines
    from sizebench.runstore.frames import Frames

    base = {"source": "gguf-package", "quantization": "GGUF Q4_1", "dtype": "float32"}
    loads = pd.DataFrame(
        [
            {**base, "model": "smollm2-135m", "engine": "transformers", "requantized": False},
            {**base, "model": "llama.cpp-server:smollm2-135m@q8_0", "engine": "llama.cpp-server", "requantized": True},
            {
                **base,
                "model": "llama.cpp:smollm2-135m@q2_k",
                "engine": "llama.cpp",
                "precision_label": "GGUF Q2_K (llama.cpp's quantizer, from an F32 GGUF of the distributed GGUF Q4_1 weights)",
            },
            {
                **base,
                "model": "llama.cpp:smollm2-135m",
                "engine": "llama.cpp",
                "precision_label": "GGUF Q4_1 as distributed",
            },
        ]
    )
    v = pd.DataFrame({"model": loads["model"], "reference": "smollm2-135m"})
    [line] = reference_lines(Frames([], pd.DataFrame(), {"load": loads}), v)
    assert (
        "; llama.cpp-server:smollm2-135m@q8_0, llama.cpp:smollm2-135m@q2_k were made by llama.cpp's quantizer" in line
    )
