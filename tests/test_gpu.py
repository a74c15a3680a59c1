"""GPU paths (bf16 by default, CUDA peak memory, device_map): run where a CUDA GPU is present."""

import pytest

from conftest import half_the_weights_free, records, sizebench
from sizebench.measurement.measure import cuda_available

# cuda_available: without a GPU driver, answered without importing torch (the fast tier collects this file too)
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU")]


def test_auto_dtype_is_bf16_on_gpu_and_cuda_peak_is_recorded(tiny_model, suite_file, tmp_path):
    done = sizebench(
        "compare",
        "--models",
        str(tiny_model),
        "--prompts",
        str(suite_file),
        "--repeat",
        "1",
        "--max-new-tokens",
        "8",
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    load = next(r for r in records(tmp_path) if r["kind"] == "load")
    assert load["device"] == "cuda" and load["dtype"] == "bfloat16" and load["n_devices"] >= 1
    assert load["cuda_peak_mb"] > 0
    stage = next(r for r in records(tmp_path) if r["kind"] == "stage")
    assert stage["cuda_peak_mb"] > 0


def test_a_model_larger_than_the_gpu_budget_is_offloaded_to_cpu_and_still_answers(tiny_model, monkeypatch):
    """The GPU holds the runtime and half the weights: the placement puts the last layers in RAM, and the
    loader loads exactly that placement."""
    import json

    from sizebench.stages import generation
    from sizebench.engines.hf import loader, placement
    from sizebench.measurement import memory
    from sizebench.planning.registry import resolve
    from sizebench.specs.prompts import Prompt

    spec = resolve(str(tiny_model))[0]
    config = json.loads((tiny_model / "config.json").read_text())
    free = half_the_weights_free(config)
    monkeypatch.setattr(memory, "gpu_free_bytes", lambda: [free])
    planned = placement.place(config, "float32", [free], memory.ram_free_bytes())
    loaded = loader.load(spec, "cuda", "float32")
    assert loaded.offloaded and loaded.offload_cpu_gib == pytest.approx(planned.cpu_bytes / 2**30)
    assert {0, "cpu"} <= set(loaded.model.hf_device_map.values())
    assert {k: str(v) for k, v in loaded.model.hf_device_map.items()} == {
        k: str(v) for k, v in planned.device_map.items()
    }
    answer = loaded.generate(
        loaded.render(Prompt("p", "What is the capital of France?")), generation.GenSettings(max_new_tokens=4)
    )
    assert answer.new_tokens >= 1
    with pytest.raises(Exception, match="--no-offload"):
        loader.load(spec, "cuda", "float32", offload=False)


# bf16 keeps 8 bits of mantissa: one rounding is 2^-8 relative. The compiled graph fuses and reorders the same
# arithmetic, so each logit may move by a few roundings of its own size and of the sums feeding it.
LOGIT_ATOL, LOGIT_RTOL = 0.05, 0.02


def test_static_compiled_decode_gives_the_eager_loops_first_step_logits_in_bf16(tiny_model):
    """The first decode step through the compiled graph (CUDA graphs) against generate's eager loop, bf16: the
    prefill's logits and the first compiled step's, within LOGIT_ATOL + LOGIT_RTOL x |logit|."""
    from sizebench.engines.hf import loader
    from sizebench.planning.registry import resolve
    import torch

    from sizebench.specs.settings import GenSettings
    from sizebench.specs.prompts import Prompt

    loaded = loader.load(resolve(str(tiny_model))[0], "cuda", "bfloat16")
    rendered = loaded.render(Prompt("p", "What is the capital of France?"))
    enc = loaded.tokenizer(rendered.text, return_tensors="pt").to(loaded.model.device)
    steps = {}
    for mode in ("eager", "static"):
        settings = GenSettings(max_new_tokens=4, stop_at_eos=False, decode=mode)
        loaded.prepare_decode([rendered], settings)
        loaded.generate(rendered, settings, 4)  # the compile, where static
        kwargs = {
            "max_new_tokens": 4,
            "do_sample": False,
            "output_logits": True,
            "return_dict_in_generate": True,
            "pad_token_id": loaded.tokenizer.pad_token_id,
            **loaded.decoder.generate_kwargs(),
        }
        with torch.inference_mode():
            steps[mode] = loaded.model.generate(**enc, **kwargs).logits
        assert loaded.decode_record("a", 1.0).compiled == (mode == "static")
    for step in (0, 1):  # the prefill, then the first step through the compiled graph
        torch.testing.assert_close(
            steps["static"][step].float(), steps["eager"][step].float(), atol=LOGIT_ATOL, rtol=LOGIT_RTOL
        )


def test_the_gpu_bandwidth_is_at_least_80_percent_of_the_published_figure():
    from sizebench.measurement import bandwidth

    found = bandwidth.measure("cuda")
    published = bandwidth.published_gb_s(found.device_name)
    if published is None:
        pytest.skip(f"no published bandwidth for {found.device_name} in sizebench.measurement.bandwidth")
    assert found.bytes_per_s / 1e9 >= 0.8 * published, (found.device_name, found.bytes_per_s)
