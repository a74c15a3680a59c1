"""Energy counters, only where the machine exposes them: NVML on NVIDIA GPUs, RAPL on Linux CPUs.

A `meter` reads the counters before and after a block. RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`,
the package domains) counts the whole CPU package, other processes included, and wraps at
`max_energy_range_uj`; NVML's total energy counts the whole GPU (millijoules since driver load).
Where neither is readable, `joules` stays None and the report says "not measured"; nothing is estimated.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
PACKAGE = re.compile(r"^intel-rapl:\d+$")  # package domains; their core/uncore/dram subdomains are inside them


@dataclass
class Reading:
    joules: float | None = None
    source: str | None = None


def rapl_domains(root: Path = POWERCAP) -> list[Path]:
    """Package domains whose counter this process can read."""
    try:
        candidates = sorted(p for p in root.iterdir() if PACKAGE.match(p.name))
    except OSError:
        return []
    readable = []
    for domain in candidates:
        try:
            int((domain / "energy_uj").read_text())
            readable.append(domain)
        except (OSError, ValueError):
            continue
    return readable


def _rapl_counts(domains: list[Path]) -> list[int]:
    return [int((d / "energy_uj").read_text()) for d in domains]


def _rapl_joules(domains: list[Path], before: list[int], after: list[int]) -> float:
    total = 0
    for domain, start, end in zip(domains, before, after):
        if end < start:  # the counter wrapped once during the block
            end += int((domain / "max_energy_range_uj").read_text())
        total += end - start
    return total / 1e6


def _nvml_handles(device: str) -> list:
    if not device.startswith("cuda"):
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no pynvml, no driver, or a GPU without the energy counter: not measured
        return []


def _nvml_millijoules(handles: list) -> list[int]:
    import pynvml

    return [int(pynvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in handles]


@contextlib.contextmanager
def meter(device: str, root: Path = POWERCAP):
    """Yields a Reading, filled when the block ends: GPU energy on CUDA devices, else CPU package energy."""
    reading = Reading()
    handles = _nvml_handles(device)
    try:
        gpu_before = _nvml_millijoules(handles) if handles else None
    except Exception:
        handles, gpu_before = [], None
    domains = [] if handles else rapl_domains(root)
    cpu_before = _rapl_counts(domains) if domains else None
    yield reading
    try:
        if handles:
            after = _nvml_millijoules(handles)
            reading.joules = sum(b - a for a, b in zip(gpu_before, after)) / 1e3
            reading.source = f"NVML, {len(handles)} GPU(s)"
        elif domains:
            reading.joules = _rapl_joules(domains, cpu_before, _rapl_counts(domains))
            reading.source = f"RAPL, {len(domains)} CPU package(s), whole package"
    except Exception:  # a counter vanished or NVML failed mid-block: not measured
        reading.joules = reading.source = None
