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
