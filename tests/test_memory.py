import pytest

from sizebench.errors import MemoryGuardError
from sizebench.measurement.memory import check_fits, required_bytes

GIB = 2**30


def test_estimate_is_params_times_bytes_plus_margin():
    assert required_bytes(1_000_000_000, "float32") == int(4e9 * 1.2 + 512 * 2**20)
    assert required_bytes(1_000_000_000, "bfloat16") == int(2e9 * 1.2 + 512 * 2**20)


def test_dolly_12b_refused_on_a_24_gib_cpu_box():
    with pytest.raises(MemoryGuardError, match=r"dolly-v2-12b: needs about 53\.4 GiB in float32.*only 23\.0 GiB"):
        check_fits("dolly-v2-12b", 11_841_894_400, "float32", "cpu", 23 * GIB)


def test_force_overrides_and_small_models_pass():
    assert check_fits("dolly-v2-12b", 11_841_894_400, "float32", "cpu", 23 * GIB, force=True) > 23 * GIB
    assert check_fits("dolly-v2-3b", 2_775_086_080, "float32", "cpu", 23 * GIB) < 23 * GIB


# ---- placement on GPU machines (pure decision, simulated free memory) -----------------------------

from sizebench.measurement.memory import offloaded_bytes, place  # noqa: E402
from sizebench.planning.registry import builtin  # noqa: E402

# Free memory once the CUDA context is up, per card: 16 GB (T4), 24 GB (A10/L4/3090), 80 GB (A100/H100).
GPU_FREE = {16: 15.0 * GIB, 24: 22.0 * GIB, 80: 79.0 * GIB}
RAM = 110 * GIB  # the Dolly seeds' T4 box
EXPECTED = {  # bfloat16, one GPU of each size, 110 GiB of RAM
    "minidolly-70m": {16: "one-gpu", 24: "one-gpu", 80: "one-gpu"},
    "dolly-v2-3b": {16: "one-gpu", 24: "one-gpu", 80: "one-gpu"},
    "dolly-v2-7b": {16: "offload", 24: "one-gpu", 80: "one-gpu"},
    "dolly-v2-12b": {16: "offload", 24: "offload", 80: "one-gpu"},
}


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("gpu_gb", [16, 24, 80])
def test_dolly_placement_per_gpu_size(name, gpu_gb):
    needed = required_bytes(builtin(name).params, "bfloat16")
    placement = place(needed, [int(GPU_FREE[gpu_gb])], RAM, name=name)
    assert placement.kind == EXPECTED[name][gpu_gb]
    if placement.kind == "one-gpu":
        assert placement.device_map == {"": 0} and placement.cpu_bytes == 0
    else:  # offload: accelerate gets the GPU's budget and a CPU budget that together hold the model
        assert placement.device_map == "auto" and "cpu" in placement.max_memory
        assert placement.max_memory[0] + placement.max_memory["cpu"] >= needed
        assert 0 < placement.cpu_bytes == needed - placement.max_memory[0]
        assert placement.max_memory["cpu"] <= RAM


def test_dolly_12b_on_a_t4_puts_about_13_gib_in_ram_and_no_offload_refuses():
    needed = required_bytes(builtin("dolly-v2-12b").params, "bfloat16")
    offload = place(needed, [int(GPU_FREE[16])], RAM, name="dolly-v2-12b")
    assert 13 * GIB < offload.cpu_bytes < 14 * GIB
    refused = place(needed, [int(GPU_FREE[16])], RAM, offload=False, name="dolly-v2-12b")
    assert refused.kind == "refuse" and "--no-offload" in refused.reason and "dolly-v2-12b" in refused.reason


def test_two_gpus_shard_and_too_little_ram_refuses():
    needed = required_bytes(builtin("dolly-v2-12b").params, "bfloat16")
    shard = place(needed, [int(GPU_FREE[24])] * 2, RAM)
    assert shard.kind == "shard" and set(shard.max_memory) == {0, 1}
    assert place(needed, [int(GPU_FREE[16])], 8 * GIB).kind == "refuse"


def test_offloaded_bytes_follow_the_device_map():
    sizes = {"gpt_neox.embed_in.weight": 10, "gpt_neox.layers.0.mlp.weight": 20, "gpt_neox.layers.1.mlp.weight": 30,
             "gpt_neox.layers.10.mlp.weight": 5, "embed_out.weight": 40}
    device_map = {"gpt_neox.embed_in": 0, "gpt_neox.layers.0": 0, "gpt_neox.layers.1": "cpu",
                  "gpt_neox.layers.10": 0, "embed_out": "disk"}
    assert offloaded_bytes(sizes, device_map) == 30 + 40
    assert offloaded_bytes(sizes, {"": 0}) == 0


def test_bytes_per_parameter_for_quantized_figures():
    assert required_bytes(1_000_000_000, 0.5) == int(0.5e9 * 1.2 + 512 * 2**20)


def test_auto_dtype_is_fp16_on_gpus_without_bf16():
    from sizebench.engines.hf.loader import resolve_dtype

    assert resolve_dtype("auto", "cuda", bf16_supported=False) == "float16"  # T4, V100
    assert resolve_dtype("auto", "cuda", bf16_supported=True) == "bfloat16"
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("float32", "cuda", bf16_supported=False) == "float32"


def test_ray_asks_for_gpus_by_total_parameters(monkeypatch):
    """dolly-v2-7b on 15.5 GiB GPUs: its total (6.86B) needs two, its non-embedding count (6.44B) would say one."""
    from sizebench.launch import ray_executor

    monkeypatch.setattr(ray_executor, "GPU_BYTES", 15.5 * GIB)
    job = {"model": builtin("dolly-v2-7b").to_dict(), "device": "cuda", "dtype": "auto"}
    assert ray_executor.resources(job, 4)["num_gpus"] == 2
    assert check_fits("dolly-v2-12b", 11_327_027_200, "float32", "cpu", 23 * GIB, force=True) > 23 * GIB
    assert check_fits("dolly-v2-3b", 2_517_652_480, "float32", "cpu", 23 * GIB) < 23 * GIB


def test_the_guard_and_ray_plan_with_the_variants_bytes_per_parameter(monkeypatch):
    """dolly-v2-12b in int8 (torchao keeps the 4.5% of embedding parameters at the run dtype) fits where
    float32 does not; on a Ray cluster of 24 GB GPUs, nf4 asks for one GPU where bfloat16 asks for two."""
    from sizebench.engines.hf import precision
    from sizebench.launch import ray_executor
    from sizebench.planning.registry import resolve

    share = 2 * 50_280 * 5_120 / 11_327_027_200  # dolly-v2-12b: untied input and output embeddings
    per_param = precision.bytes_per_param("int8", "float32", share)
    assert per_param == pytest.approx(share * 4 + (1 - share) * 1)
    assert check_fits("dolly-v2-12b@int8", 11_327_027_200, per_param, "cpu", 23 * GIB) \
        < 17 * GIB
    monkeypatch.setattr(ray_executor, "GPU_BYTES", 24 * GIB)
    job = {"device": "cuda", "dtype": "auto"}
    bf16, nf4 = (resolve(f"dolly-v2-12b@{p}")[0].to_dict() for p in ("bf16", "nf4"))
    assert ray_executor.resources({**job, "model": bf16}, 4)["num_gpus"] == 2
    assert ray_executor.resources({**job, "model": nf4}, 4)["num_gpus"] == 1
