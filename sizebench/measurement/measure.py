"""Measurement: what is timed, how memory is read, and how repetitions are summarised.

One place decides CPU vs CUDA: `sync(device)` waits for queued GPU work before a clock is read.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
from pathlib import Path

from sizebench.errors import SizebenchError


def sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM, which reset_peak_rss() can reset), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start a new peak from the current RSS (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def cuda_peak_mb(device: str) -> float | None:
    """Peak CUDA memory allocated, MiB, summed over every GPU this process sees (a sharded model's whole)."""
    if device != "cuda":
        return None
    import torch

    return sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())) / 2**20


def reset_cuda_peak(device: str) -> None:
    if device == "cuda":
        import torch

        for i in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(i)


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> float:
    """Coefficient of variation (stdev / mean); 0 for fewer than two values."""
    if len(values) < 2 or statistics.mean(values) == 0:
        return 0.0
    return statistics.stdev(values) / statistics.mean(values)


# A GPU driver's device files (NVIDIA, ROCm, WSL's GPU): on Linux without any of them torch sees no CUDA GPU
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU. Without a GPU driver on Linux, answered without importing torch: the CLI
    resolves `--device auto` before every run, and torch's import costs it ~2 CPU-seconds."""
    if sys.platform == "linux" and not any(os.path.exists(path) for path in GPU_DEVICE_FILES):
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        raise SizebenchError("--device cuda asked for, but torch sees no CUDA GPU here")
    return requested
