"""The memory bandwidth of the device a model runs on, measured once per run: the limit of every decode step.

One decode step of one sequence reads every weight, and the KV cache so far, once; no engine decodes faster
than the memory those bytes come from. The figure is torch's `copy_` of a buffer of at least 1 GiB on the
device (on CPU, with torch's threads), read plus write, best of 5 after one untimed copy.

`python -m sizebench.measurement.bandwidth --device cuda --min-share 0.8` prints the measurement as one JSON
line and exits 1 when it is below that share of the GPU's published bandwidth (a broken measurement or a
throttled GPU), 2 when the GPU's published figure is unknown and not given with --published-gb-s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field

COPY_BYTES = 2**30
MIN_COPY_BYTES = 256 * 2**20  # below this much free memory beside the model, no measurement
REPEATS = 5
DEVICES = ("cpu", "cuda")
# Vendors' published memory bandwidth, GB/s (10**9 bytes), by a part of torch's device name; first match wins
PUBLISHED_GB_S = (
    ("H200", 4800),
    ("H100 NVL", 3900),
    ("H100 PCIe", 2000),
    ("H100", 3350),
    ("GH200", 4000),
    ("A100 80GB PCIe", 1935),
    ("A100-SXM4-80GB", 2039),
    ("A100", 1555),
    ("L40S", 864),
    ("L40", 864),
    ("L4", 300),
    ("A10G", 600),
    ("A10", 600),
    ("T4", 320),
    ("V100", 900),
    ("RTX 4090", 1008),
    ("RTX 3090", 936),
    ("MI300X", 5300),
)


@dataclass(frozen=True)
class Bandwidth:
    device: str  # "cpu" or "cuda"
    device_name: str  # the GPU's name; "cpu" on CPU
    bytes_per_s: float  # best of the runs: 2 x copy_bytes / seconds
    copy_bytes: int  # the buffer copied (each run reads and writes it)
    runs_s: list[float] = field(default_factory=list)


def measure(device: str, copy_bytes: int = COPY_BYTES, repeats: int = REPEATS) -> Bandwidth:
    import torch

    from sizebench.measurement.measure import sync

    src = torch.ones(copy_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults and allocator, not bandwidth
    sync(device)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        dst.copy_(src)
        sync(device)
        runs.append(time.perf_counter() - started)
    moved = 2 * src.numel() * src.element_size()
    del src, dst
    if device == "cuda":
        torch.cuda.empty_cache()
    return Bandwidth(device, device_name(device), moved / min(runs), moved // 2, runs)


def fitting_copy_bytes(device: str) -> int:
    """The copy's size beside a loaded model: 1 GiB where a quarter of the free memory holds it (two buffers and
    room to spare), else that quarter; 0 when that is under MIN_COPY_BYTES (no measurement)."""
    from sizebench.measurement import memory

    free = min(memory.gpu_free_bytes()) if device == "cuda" else memory.ram_free_bytes()
    size = min(COPY_BYTES, free // 4) // 2**20 * 2**20
    return size if size >= MIN_COPY_BYTES else 0


def device_name(device: str) -> str:
    """The GPU's name; "cpu" for the CPU (the run's metadata names its model)."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return "cpu"


def published_gb_s(name: str) -> float | None:
    """The vendor's published bandwidth of a GPU named `name` (torch's name), GB/s; None when not known here."""
    return next((float(gb_s) for part, gb_s in PUBLISHED_GB_S if part.lower() in name.lower()), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sizebench.measurement.bandwidth", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--copy-gib", type=float, default=COPY_BYTES / 2**30)
    parser.add_argument("--min-share", type=float, default=None, help="fail below this share of the published figure")
    parser.add_argument("--published-gb-s", type=float, default=None, help="the device's published bandwidth, GB/s")
    args = parser.parse_args(argv)
    if args.copy_gib <= 0:
        print("--copy-gib must be positive", file=sys.stderr)
        return 2
    if args.device == "cuda":
        from sizebench.measurement.measure import cuda_available

        if not cuda_available():
            print("--device cuda asked for, but torch sees no CUDA GPU here", file=sys.stderr)
            return 2
    found = measure(args.device, int(args.copy_gib * 2**30))
    published = args.published_gb_s or (published_gb_s(found.device_name) if args.device == "cuda" else None)
    share = found.bytes_per_s / 1e9 / published if published else None
    print(json.dumps({**asdict(found), "published_gb_s": published, "share_of_published": share}))
    if args.min_share is None:
        return 0
    if published is None:
        print(
            f"the published bandwidth of '{found.device_name}' is not known here: give --published-gb-s",
            file=sys.stderr,
        )
        return 2
    if share < args.min_share:
        print(
            f"measured {found.bytes_per_s / 1e9:.0f} GB/s is {share:.0%} of {found.device_name}'s published "
            f"{published:.0f} GB/s, below {args.min_share:.0%}: the measurement (or the GPU) is broken",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
