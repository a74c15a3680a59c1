import pytest

from sizebench.errors import MemoryGuardError
from sizebench.memory import check_fits, required_bytes

GIB = 2**30


def test_estimate_is_params_times_bytes_plus_margin():
    assert required_bytes(1_000_000_000, "float32") == int(4e9 * 1.2 + 512 * 2**20)
    assert required_bytes(1_000_000_000, "bfloat16") == int(2e9 * 1.2 + 512 * 2**20)


def test_dolly_12b_refused_on_a_24_gib_cpu_box():
    with pytest.raises(MemoryGuardError, match=r"dolly-v2-12b: needs about 51\.1 GiB in float32.*only 23\.0 GiB"):
        check_fits("dolly-v2-12b", 11_327_027_200, "float32", "cpu", 23 * GIB)


def test_force_overrides_and_small_models_pass():
    assert check_fits("dolly-v2-12b", 11_327_027_200, "float32", "cpu", 23 * GIB, force=True) > 23 * GIB
    assert check_fits("dolly-v2-3b", 2_517_652_480, "float32", "cpu", 23 * GIB) < 23 * GIB
