"""Placement from a config alone (meta device): one GPU, sharded, offloaded, refused; the Dolly shapes."""

import pytest

from conftest import RAM_GIB, half_the_weights_free
from sizebench.measurement.memory import GIB, offloaded_bytes
from sizebench.planning.registry import builtin
from sizebench.specs.models import CONFIGS

pytest.importorskip("transformers")
from sizebench.engines.hf import placement  # noqa: E402

# Free memory once the CUDA context is up, per card: 16 GB (T4), 24 GB (A10/L4/3090), 80 GB (A100/H100).
GPU_FREE = {16: 15 * GIB, 24: 22 * GIB, 80: 79 * GIB}
RAM = RAM_GIB * GIB  # the Dolly seeds' T4 box
EXPECTED = {  # bfloat16, one GPU of each size, 110 GiB of RAM
    "minidolly-70m": {16: "one-gpu", 24: "one-gpu", 80: "one-gpu"},
    "dolly-v2-3b": {16: "one-gpu", 24: "one-gpu", 80: "one-gpu"},
    "dolly-v2-7b": {16: "offload", 24: "one-gpu", 80: "one-gpu"},
    "dolly-v2-12b": {16: "offload", 24: "offload", 80: "one-gpu"},
}


def config(name):
    return CONFIGS[builtin(name).location]


def meta_sizes(name, dtype="bfloat16"):
    model = placement.meta_model(config(name), dtype)
    return {n: t.numel() * t.element_size() for n, t in [*model.named_parameters(), *model.named_buffers()]}


def owner(device_map, param):
    return max((m for m in device_map if m == "" or param == m or param.startswith(m + ".")), key=len)


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("gpu_gb", [16, 24, 80])
def test_dolly_placement_per_gpu_size(name, gpu_gb):
    placed = placement.place(config(name), "bfloat16", [GPU_FREE[gpu_gb]], RAM, name=name)
    assert placed.kind == EXPECTED[name][gpu_gb]
    assert placed.weights_bytes == pytest.approx(builtin(name).params * 2, abs=1024)  # + rotary buffers
    if placed.kind == "one-gpu":
        assert placed.device_map == {"": 0} and placed.cpu_bytes == 0
        return
    sizes = meta_sizes(name)  # every parameter has a device, and the CPU's share is what the plan says
    assert all(owner(placed.device_map, p) is not None for p in sizes)
    assert set(placed.device_map.values()) == {0, "cpu"}
    assert offloaded_bytes(sizes, placed.device_map) == placed.cpu_bytes > 0
    on_gpu = placed.weights_bytes - placed.cpu_bytes
    assert on_gpu + placed.kv_bytes <= GPU_FREE[gpu_gb]  # the offloaded layers' KV cache sits on the GPU too
    assert placed.device_bytes[0] <= GPU_FREE[gpu_gb]


def test_offloaded_layers_are_the_last_ones_and_no_offload_refuses():
    placed = placement.place(config("dolly-v2-12b"), "bfloat16", [GPU_FREE[16]], RAM, name="dolly-v2-12b")
    layers = [placed.device_map[f"gpt_neox.layers.{i}"] for i in range(36)]
    first_cpu = layers.index("cpu")
    assert set(layers[:first_cpu]) == {0} and set(layers[first_cpu:]) == {"cpu"}
    assert 10 * GIB < placed.cpu_bytes < 12 * GIB
    refused = placement.place(
        config("dolly-v2-12b"), "bfloat16", [GPU_FREE[16]], RAM, offload=False, name="dolly-v2-12b"
    )
    assert refused.kind == "refuse" and "--no-offload" in refused.reason and "dolly-v2-12b" in refused.reason
    assert placement.place(config("dolly-v2-12b"), "bfloat16", [GPU_FREE[16]], 8 * GIB).kind == "refuse"


def test_two_gpus_shard_in_layer_order():
    placed = placement.place(config("dolly-v2-12b"), "bfloat16", [GPU_FREE[16]] * 2, RAM)
    assert placed.kind == "shard" and placed.cpu_bytes == 0
    layers = [placed.device_map[f"gpt_neox.layers.{i}"] for i in range(36)]
    assert layers == sorted(layers) and set(layers) == {0, 1}
    assert all(placed.device_bytes[gpu] <= GPU_FREE[16] for gpu in (0, 1))
    sizes = meta_sizes("dolly-v2-12b")
    assert offloaded_bytes(sizes, placed.device_map) == 0
    # four T4s hold it without the first: the emptiest GPU is taken when one suffices
    assert placement.place(config("dolly-v2-3b"), "bfloat16", [1 * GIB, GPU_FREE[16]], RAM).device_map == {"": 1}


def test_a_cpu_run_is_the_memory_guards_decision():
    cpu = placement.place(config("dolly-v2-3b"), "float32", [], 23 * GIB, name="dolly-v2-3b")
    assert cpu.kind == "cpu" and cpu.weights_bytes == pytest.approx(builtin("dolly-v2-3b").params * 4, abs=1024)
    refused = placement.place(config("dolly-v2-12b"), "float32", [], 23 * GIB, name="dolly-v2-12b")
    assert refused.kind == "refuse" and "dolly-v2-12b: needs about" in refused.reason


def test_kv_cache_grows_with_context_and_batch():
    small = placement.place(config("dolly-v2-7b"), "float16", [], RAM, context=512, batch=1)
    large = placement.place(config("dolly-v2-7b"), "float16", [], RAM, context=1024, batch=4)
    assert small.kv_bytes == 2 * 32 * 4096 * 512 * 2  # K and V, 32 layers, hidden 4096, fp16
    assert large.kv_bytes == 8 * small.kv_bytes and large.activation_bytes > small.activation_bytes


def test_nf4_weights_are_a_quarter_of_bf16_but_the_embeddings():
    bf16 = placement.place(config("dolly-v2-12b"), "bfloat16", [GPU_FREE[16]], RAM)
    nf4 = placement.place(config("dolly-v2-12b"), "bfloat16", [GPU_FREE[16]], RAM, precision="nf4")
    embeddings = 2 * 50_280 * 5_120 * 2
    assert nf4.kind == "one-gpu"
    assert nf4.weights_bytes - embeddings == pytest.approx((bf16.weights_bytes - embeddings) / 4, rel=0.01)


def test_a_tied_output_embedding_goes_where_the_input_embedding_is():
    tied = {
        "model_type": "llama",
        "vocab_size": 32_000,
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": True,
    }
    weights = placement.place(tied, "bfloat16", [], RAM).weights_bytes
    placed = placement.place(tied, "bfloat16", [weights // 2], RAM)
    assert placed.kind == "offload"
    assert placed.device_map["lm_head"] == placed.device_map["model.embed_tokens"] == 0


def test_the_placement_of_a_tiny_model_half_on_the_gpu(tiny_model):
    """What tests/test_gpu.py loads on a GPU: the layers past half the weights go to RAM."""
    import json

    cfg = json.loads((tiny_model / "config.json").read_text())
    placed = placement.place(cfg, "float32", [half_the_weights_free(cfg)], RAM)
    assert placed.kind == "offload" and {0, "cpu"} <= set(placed.device_map.values())
    assert 0 < placed.cpu_bytes < placed.weights_bytes


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_planned_weight_bytes_are_a_loads_exactly(tiny_model, dtype):
    import json

    from sizebench.engines.hf import footprint, loader
    from sizebench.planning.registry import resolve

    cfg = json.loads((tiny_model / "config.json").read_text())
    loaded = loader.load(resolve(str(tiny_model))[0], "cpu", dtype)
    assert placement.place(cfg, dtype, [], RAM).weights_bytes == footprint.weight_bytes(loaded.model)
