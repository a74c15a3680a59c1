"""GPU paths (bf16 by default, CUDA peak memory, device_map): run where a CUDA GPU is present."""

import pytest

from conftest import records, sizebench

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
    """The guard sees a GPU with almost nothing free: accelerate puts the layers that do not fit in RAM."""
    from sizebench.stages import generation
    from sizebench.engines.hf import loader
    from sizebench.measurement import memory
    from sizebench.planning.registry import resolve
    from sizebench.stages.suites import Prompt

    spec = resolve(str(tiny_model))[0]
    weights = sum(f.stat().st_size for f in tiny_model.glob("*.safetensors"))
    monkeypatch.setattr(memory, "gpu_free_bytes", lambda: [weights // 2])  # half the weights fit
    loaded = loader.load(spec, "cuda", "float32")
    assert loaded.offloaded and loaded.offload_cpu_gib > 0
    assert "cpu" in set(loaded.model.hf_device_map.values())
    answer = loaded.generate(loaded.render(Prompt("p", "What is the capital of France?")),
                                      generation.GenSettings(max_new_tokens=4))
    assert answer.new_tokens >= 1
    with pytest.raises(Exception, match="--no-offload"):
        loader.load(spec, "cuda", "float32", offload=False)
