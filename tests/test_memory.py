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


# ---- what the GPU placement (tests/test_placement.py) builds on ----------------------------------

from sizebench.measurement.memory import offloaded_bytes  # noqa: E402
from sizebench.planning.job import Job  # noqa: E402
from sizebench.specs.settings import LoadSettings  # noqa: E402
from sizebench.planning.registry import builtin  # noqa: E402


def test_offloaded_bytes_follow_the_device_map():
    sizes = {
        "gpt_neox.embed_in.weight": 10,
        "gpt_neox.layers.0.mlp.weight": 20,
        "gpt_neox.layers.1.mlp.weight": 30,
        "gpt_neox.layers.10.mlp.weight": 5,
        "embed_out.weight": 40,
    }
    device_map = {
        "gpt_neox.embed_in": 0,
        "gpt_neox.layers.0": 0,
        "gpt_neox.layers.1": "cpu",
        "gpt_neox.layers.10": 0,
        "embed_out": "disk",
    }
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
    job = Job("run", builtin("dolly-v2-7b"), "a", LoadSettings(device="cuda"))
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
    assert check_fits("dolly-v2-12b@int8", 11_327_027_200, per_param, "cpu", 23 * GIB) < 17 * GIB
    monkeypatch.setattr(ray_executor, "GPU_BYTES", 24 * GIB)
    bf16, nf4 = (Job("run", resolve(f"dolly-v2-12b@{p}")[0], "a", LoadSettings(device="cuda")) for p in ("bf16", "nf4"))
    assert ray_executor.resources(bf16, 4)["num_gpus"] == 2
    assert ray_executor.resources(nf4, 4)["num_gpus"] == 1
