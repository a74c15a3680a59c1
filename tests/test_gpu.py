"""GPU paths (bf16 by default, CUDA peak memory, device_map): run where a CUDA GPU is present."""

import pytest

from conftest import half_the_weights_free, records, sizebench

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]


def test_auto_dtype_is_bf16_on_gpu_and_cuda_peak_is_recorded(tiny_model, suite_file, tmp_path):
    done = sizebench("compare", "--models", str(tiny_model), "--prompts", str(suite_file), "--repeat", "1",
                     "--max-new-tokens", "8", "--results", str(tmp_path))
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
    from sizebench.stages.suites import Prompt

    spec = resolve(str(tiny_model))[0]
    config = json.loads((tiny_model / "config.json").read_text())
    free = half_the_weights_free(config)
    monkeypatch.setattr(memory, "gpu_free_bytes", lambda: [free])
    planned = placement.place(config, "float32", [free], memory.ram_free_bytes())
    loaded = loader.load(spec, "cuda", "float32")
    assert loaded.offloaded and loaded.offload_cpu_gib == pytest.approx(planned.cpu_bytes / 2**30)
    assert {0, "cpu"} <= set(loaded.model.hf_device_map.values())
    assert {k: str(v) for k, v in loaded.model.hf_device_map.items()} == \
        {k: str(v) for k, v in planned.device_map.items()}
    answer = loaded.generate(loaded.render(Prompt("p", "What is the capital of France?")),
                                      generation.GenSettings(max_new_tokens=4))
    assert answer.new_tokens >= 1
    with pytest.raises(Exception, match="--no-offload"):
        loader.load(spec, "cuda", "float32", offload=False)
