"""Energy counters: RAPL read from a simulated powercap tree; NVML on a real GPU only."""

import pytest

from sizebench import energy


def powercap(root, packages):
    for name, (count, wrap) in packages.items():
        domain = root / name
        domain.mkdir(parents=True)
        (domain / "energy_uj").write_text(f"{count}\n")
        (domain / "max_energy_range_uj").write_text(f"{wrap}\n")
    (root / "intel-rapl:0:0").mkdir()  # a subdomain (core): inside its package, not counted twice
    (root / "intel-rapl:0:0" / "energy_uj").write_text("5\n")
    return root


def test_rapl_counts_packages_and_handles_wraparound(tmp_path):
    root = powercap(tmp_path / "powercap", {"intel-rapl:0": (1_000_000, 10_000_000), "intel-rapl:1": (9_500_000, 10_000_000)})
    assert [d.name for d in energy.rapl_domains(root)] == ["intel-rapl:0", "intel-rapl:1"]
    with energy.meter("cpu", root) as used:
        (root / "intel-rapl:0" / "energy_uj").write_text("3500000\n")  # +2.5 J
        (root / "intel-rapl:1" / "energy_uj").write_text("500000\n")  # wrapped: +1.0 J
    assert used.joules == pytest.approx(3.5) and used.source.startswith("RAPL, 2 CPU package(s)")


def test_no_counters_means_not_measured(tmp_path):
    with energy.meter("cpu", tmp_path / "absent") as used:
        pass
    assert used.joules is None and used.source is None
    unreadable = powercap(tmp_path / "pc", {"intel-rapl:0": (1, 10)})
    (unreadable / "intel-rapl:0" / "energy_uj").write_text("not a number")
    assert energy.rapl_domains(unreadable) == []


@pytest.mark.gpu
def test_nvml_reads_gpu_energy():
    torch = pytest.importorskip("torch")
    pytest.importorskip("pynvml")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    with energy.meter("cuda") as used:
        x = torch.randn(4096, 4096, device="cuda")
        for _ in range(50):
            x = x @ x / 64
        torch.cuda.synchronize()
    assert used.joules is not None and used.joules > 0 and used.source.startswith("NVML")
