"""Energy counters, only where the machine exposes them: NVML on NVIDIA GPUs, RAPL on Linux CPUs.

A `Meter` sums the energy of the blocks run inside `counting()` and nothing between them: the prompt
stage counts its timed generations only, not the warm-up or the record writes. NVML's total energy
(millijoules since driver load) is read on the GPUs this process sees (`CUDA_VISIBLE_DEVICES`), each
whole, other processes on it included. RAPL (`intel-rapl:N/energy_uj` under `/sys/class/powercap`, or
`SIZEBENCH_POWERCAP`; the package domains) counts the whole CPU package, other processes included,
and wraps at `max_energy_range_uj`. Where neither is readable, or a reading fails, `joules` is None
and the report says "not measured"; nothing is estimated.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
PACKAGE = re.compile(r"^intel-rapl:\d+$")  # package domains; their core/uncore/dram subdomains are inside them


def powercap_root() -> Path:
    return Path(os.environ.get("SIZEBENCH_POWERCAP") or POWERCAP)


def rapl_domains(root: Path) -> list[Path]:
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


def visible_gpus(cuda_visible: str | None, uuids: list[str]) -> list[int]:
    """NVML indices of the GPUs that CUDA_VISIBLE_DEVICES shows, given every GPU's UUID in NVML order.

    Unset: all of them. Entries are indices or UUIDs (`GPU-...`, or any prefix naming one GPU); as CUDA
    does, the list ends at the first entry that names no GPU (so "" and "-1" show none, and so does a
    `MIG-` instance, whose share of the GPU's energy NVML does not count). An index is NVML's, which is
    CUDA's when the GPUs are alike or CUDA_DEVICE_ORDER=PCI_BUS_ID.
    """
    if cuda_visible is None:
        return list(range(len(uuids)))
    shown: list[int] = []
    for entry in (e.strip() for e in cuda_visible.split(",")):
        if entry.isdigit():
            matches = [int(entry)] if int(entry) < len(uuids) else []
        else:
            matches = [i for i, uuid in enumerate(uuids) if entry.startswith("GPU-") and uuid.startswith(entry)]
        if len(matches) != 1:
            break
        if matches[0] not in shown:
            shown.append(matches[0])
    return shown


def _nvml_handles(device: str) -> list:
    if not device.startswith("cuda"):
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
        every = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in every]
        return [every[i] for i in visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids)]
    except Exception:  # no pynvml or no driver: not measured
        return []


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Meter:
    """Joules over the `counting()` blocks: NVML on the visible GPUs of a CUDA device, else RAPL."""

    def __init__(self, device: str, root: Path | None = None):
        self.handles = _nvml_handles(device)
        self.domains = [] if self.handles else rapl_domains(root or powercap_root())
        self.joules: float | None = 0.0 if self.handles or self.domains else None

    @property
    def source(self) -> str | None:
        if self.joules is None:
            return None
        if self.handles:
            return f"NVML, {len(self.handles)} GPU(s) this process sees, whole GPU"
        return f"RAPL, {len(self.domains)} CPU package(s), whole package, other processes included"

    @contextlib.contextmanager
    def counting(self):
        before = self._read() if self.joules is not None else None
        yield
        after = self._read() if before is not None else None
        joules = self._between(before, after) if after is not None else None
        # no counter, or one that vanished or failed: the whole reading is not measured
        self.joules = None if joules is None else self.joules + joules

    def _read(self) -> list[int] | None:
        try:
            if self.handles:
                import pynvml

                return [int(pynvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles]
            return [int((d / "energy_uj").read_text()) for d in self.domains]
        except Exception:  # an NVML error, a GPU without the energy counter, a domain gone
            return None

    def _between(self, before: list[int], after: list[int]) -> float | None:
        if self.handles:
            return sum(b - a for a, b in zip(before, after)) / 1e3
        total = 0
        for domain, start, end in zip(self.domains, before, after):
            if end < start:  # the counter wrapped once during the block
                try:
                    end += int((domain / "max_energy_range_uj").read_text())
                except (OSError, ValueError):
                    return None
            total += end - start
        return total / 1e6
