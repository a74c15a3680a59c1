"""Precision variants: parsing `name@precision`, one-line errors, and the measured weight memory of the
tiny GPT-NeoX at each precision against its packed size computed from the config alone."""

import json
from dataclasses import replace

import pytest

from conftest import tiny_gguf
from sizebench.engines.hf import precision
from sizebench.errors import SizebenchError
from sizebench.planning.registry import resolve


def test_suffix_and_ladder():
    assert [(s.name, s.precision) for s in resolve("smollm2-135m@bf16")] == [("smollm2-135m@bf16", "bf16")]
    ladder = resolve("offline@fp32,bfloat16,int8,dolly-v2-3b@nf4")
    assert [s.name for s in ladder] == [
        "smollm2-135m@fp32",
        "smollm2-135m@bf16",
        "smollm2-135m@int8",
        "gemma3-270m@fp32",
        "gemma3-270m@bf16",
        "gemma3-270m@int8",
        "dolly-v2-3b@nf4",
    ]
    assert ladder[0].location == resolve("smollm2-135m")[0].location
    assert resolve("EleutherAI/pythia-70m@4bit")[0].precision == "nf4"
    assert [s.precision for s in resolve("smollm2-135m")] == [None]  # no suffix: the run dtype, as before


def test_folder_and_gguf_file_variants(tiny_model, tmp_path):
    assert resolve(f"{tiny_model}@fp16")[0].name == "tiny-neox@fp16"
    gguf = tiny_gguf(tmp_path / "m.gguf")
    assert resolve(f"{gguf}@int8")[0].name == "m@int8"


def test_unknown_precision_is_one_line():
    with pytest.raises(
        SizebenchError, match="transformers has no type 'int3' \\(in 'smollm2-135m@int3'\\); types: transformers: fp32"
    ):
        resolve("smollm2-135m@int3")
    with pytest.raises(SizebenchError, match="type 'bf16' follows no MODEL@TYPE; write e.g. offline@fp32,bf16"):
        resolve("smollm2-135m,bf16")


def test_missing_backend_and_unfit_device(monkeypatch):
    monkeypatch.setattr(precision.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SizebenchError, match=r"^m@int8: int8 .* needs the torchao package: pip install"):
        precision.check("m@int8", "int8", "cpu")
    precision.check("m@bf16", "bf16", "cpu")  # a plain dtype needs no backend
    monkeypatch.setitem(
        precision.PRECISIONS, "int8", replace(precision.PRECISIONS["int8"], backend=None, devices=("cuda",))
    )
    with pytest.raises(SizebenchError, match="does not run on cpu; it runs on cuda"):
        precision.check("m@int8", "int8", "cpu")


def test_cli_refuses_before_loading(tiny_model, tmp_path):
    """Exit 2 and one line, and no run folder: nothing was started."""
    import subprocess
    import sys

    from conftest import REPO

    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    code = (
        "import importlib.util as u, sys; real = u.find_spec; "
        "u.find_spec = lambda n, *a: None if n.startswith('torchao') else real(n, *a); "
        "from sizebench.cli import main; sys.argv = ['sizebench'] + sys.argv[1:]; main()"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "compare",
            "--models",
            f"{tiny_model}@int8",
            "--prompts",
            str(REPO / "prompts/geography.txt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: tiny-neox@int8: int8 weight-only (torchao) needs the torchao package: pip install 'sizebench[quant]'"
    ]
    assert not (tmp_path / "results").exists()


def test_guard_uses_the_variants_bytes_per_parameter():
    assert precision.bytes_per_param("bf16", "float32") == 2
    assert precision.bytes_per_param(None, "float32") == 4
    assert precision.bytes_per_param("int8", "float32", embedding_share=0.25) == 0.25 * 4 + 0.75 * 1
    assert precision.bytes_per_param("nf4", "bfloat16") == 0.5


def _block_linears(config: dict) -> list[tuple[int, int]]:
    """(out, in) of each quantized Linear: qkv, dense, h->4h, 4h->h in every layer."""
    h, inter = config["hidden_size"], config["intermediate_size"]
    return [(3 * h, h), (h, h), (inter, h), (h, inter)] * config["num_hidden_layers"]


def _rotary_floats(config: dict) -> int:
    """inv_freq and original_inv_freq: buffers, kept in float32, not parameters."""
    h = config["hidden_size"]
    return 2 * (int(h // config["num_attention_heads"] * config.get("rotary_pct", 0.25)) // 2)


def _expected_bytes(config: dict, name: str) -> int:
    """Packed size of the tiny GPT-NeoX from its config: Linear weights of the blocks quantized (the
    embeddings and the output head never are), everything else at the run dtype (fp32 on CPU)."""
    h, inter, layers, vocab = (
        config["hidden_size"],
        config["intermediate_size"],
        config["num_hidden_layers"],
        config["vocab_size"],
    )
    linears = _block_linears(config)
    quantized = sum(o * i for o, i in linears)
    rows = sum(o for o, _ in linears)
    biases_norms = layers * (3 * h + h + inter + h + 4 * h) + 2 * h
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    buffers = 4 * _rotary_floats(config)
    total = quantized + biases_norms + embeddings
    if name == "fp32":
        return 4 * total + buffers
    if name in ("bf16", "fp16"):
        return 2 * total + buffers
    rest = 4 * (total - quantized) + buffers
    if name == "int8":  # torchao Int8Tensor: int8 data, a float32 scale and an int8 zero point per row
        return rest + quantized + rows * (4 + 1)
    if name == "nf4":  # bitsandbytes: two weights a byte, a float32 absmax per block of 64, a 16-entry
        # float32 code table per layer
        return rest + quantized // 2 + quantized // 64 * 4 + len(linears) * 16 * 4
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(precision.PRECISIONS))
def test_measured_weight_memory_is_the_packed_size(tiny_wide, name):
    from sizebench.engines.hf import footprint, loader

    spec = resolve(f"{tiny_wide}@{name}")[0]
    precision.check(spec.name, spec.precision, "cpu")  # the quant extra is installed where tests run
    loaded = loader.load(spec, "cpu")
    config = json.loads((tiny_wide / "config.json").read_text())
    assert footprint.weight_bytes(loaded.model) == _expected_bytes(config, name)
    naive = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    assert loaded.params == _expected_bytes(config, "fp32") // 4 - _rotary_floats(config)  # parameters only
    quantized = sum(o * i for o, i in _block_linears(config))
    if name == "int8":  # the trap the issue names: torchao's tensor subclasses look full-size
        assert naive == 4 * loaded.params
    if name == "nf4":  # bitsandbytes packs two weights a byte into the parameter; its scales are beside it, unseen
        assert naive == 4 * (loaded.params - quantized) + quantized // 2
        assert naive < footprint.weight_bytes(loaded.model)
    assert loaded.dtype == {"bf16": "bfloat16", "fp16": "float16"}.get(name, "float32")


def test_a_precision_ladder_runs_end_to_end(tiny_wide, suite_file, tmp_path):
    """The quantized precisions through the real CLI and workers (generation runs under
    torch.inference_mode, where some quantized tensor types fail: optimum-quanto's int4 did); each
    variant is its own rung with its measured size."""
    from conftest import records, sizebench

    names = ["int8", "nf4"]
    done = sizebench(
        "compare",
        "--models",
        f"{tiny_wide}@{','.join(names)}",
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--max-new-tokens",
        "4",
        "--results",
        str(tmp_path),
        "--report",
        "p.md",
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tiny_wide / "config.json").read_text())
    loads = {r["model"]: r for r in records(tmp_path) if r["kind"] == "load"}
    assert list(loads) == [f"tiny-wide@{n}" for n in names]
    for name in names:
        load = loads[f"tiny-wide@{name}"]
        assert load["precision"] == name and load["weights_mem_mb"] * 2**20 == _expected_bytes(config, name)
        assert load["bytes_per_param"] == pytest.approx(load["weights_mem_mb"] * 2**20 / load["params"])
    answered = {r["model"] for r in records(tmp_path) if r["kind"] == "prompt"}
    assert answered == set(loads)
    assert "## Precision" in (tmp_path / "p.md").read_text() and not (tmp_path / "report.md").exists()


def test_nf4_on_cpu_refuses_layers_the_packed_cpu_path_cannot_take(tiny_model, suite_file, cli, tmp_path):
    """The tiny fixture's 32-wide layers crash bitsandbytes' packed CPU path (CPUs with AVX512-BF16) at the first
    prompt: refused before anything loads, on every CPU, in one line naming the layer."""
    from sizebench.engines.hf import loader

    code, out, err = cli("compare", "--models", f"{tiny_model}@nf4", "--prompts", str(suite_file), "--device", "cpu")
    assert code == 2 and err.strip().splitlines() == [
        "error: tiny-neox@nf4: bitsandbytes' 4-bit CPU kernels need each quantized layer's input width to be a "
        "multiple of 64 and its output width of 32; gpt_neox.layers.0.attention.query_key_value maps 32 -> 96. "
        "Use @int8, or a GPU"
    ]
    assert not (tmp_path / "results").exists()
    with pytest.raises(SizebenchError, match="query_key_value maps 32 -> 96"):  # a source located at load
        loader.load(resolve(f"{tiny_model}@nf4")[0], "cpu")
    precision.check_layout("tiny-neox@nf4", "nf4", "cuda", tiny_model)  # the GPU kernels take any width


@pytest.mark.models
@pytest.mark.parametrize("hidden", [32, 64])
def test_the_layout_check_agrees_with_bitsandbytes_packing(tmp_path, hidden):
    """bitsandbytes' own CPU packing (pure torch, runs on every CPU) on each layer of a fixture: it packs exactly
    the layers check_layout accepts."""
    import torch
    import bitsandbytes.functional as bnb

    from conftest import build_tiny_neox

    folder = build_tiny_neox(tmp_path / "m", hidden=hidden)
    for name, outputs, inputs in precision.quantized_linears(folder):
        packed, state = bnb.quantize_4bit(torch.randn(outputs, inputs), quant_type="nf4")
        accepted = not (inputs % precision.NF4_CPU_INPUTS or outputs % precision.NF4_CPU_OUTPUTS)
        try:
            bnb._convert_weight_packed_for_cpu(packed, state)
            packs = True
        except (AssertionError, RuntimeError):
            packs = False
        assert packs == accepted, name
