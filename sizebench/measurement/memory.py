"""The memory guard: refuse a model that cannot fit before loading it, not after an OOM kill.

Every figure here counts TOTAL parameters (embeddings included): they are all in memory.
On GPU machines `place` decides where the weights go: one GPU, sharded over several, or, when the
GPUs are too small, offloaded in part to CPU RAM (accelerate's device_map="auto" with a max_memory
that includes "cpu"), as the Dolly seeds ran dolly-v2-12b on a 16 GB T4 with 110 GiB of RAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sizebench.errors import MemoryGuardError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
MARGIN = 1.2  # activations, KV cache and allocator slack on top of the weights
OVERHEAD_BYTES = 512 * 2**20  # the Python process, torch and the tokenizer
GPU_USABLE = 0.9  # of each GPU's free memory given to accelerate: the CUDA context and kernels need the rest
RAM_USABLE = 0.8  # of free RAM that offloaded layers may take; the process itself needs the rest
GIB = 2**30


def bytes_per_param(dtype_or_bytes: str | float) -> float:
    """A torch dtype name's bytes per parameter, or a figure given as it is (quantized weights: 0.5 ...)."""
    if isinstance(dtype_or_bytes, str):
        return DTYPE_BYTES[dtype_or_bytes]
    return float(dtype_or_bytes)


def required_bytes(params: int, per_param: str | float) -> int:
    """Weights x margin + process overhead; per_param is a dtype name or bytes per parameter."""
    return int(params * bytes_per_param(per_param) * MARGIN + OVERHEAD_BYTES)


def available_bytes(device: str) -> int:
    if device == "cuda":
        return sum(gpu_free_bytes())
    return ram_free_bytes()


def gpu_free_bytes() -> list[int]:
    import torch

    return [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]


def ram_free_bytes() -> int:
    import psutil

    return psutil.virtual_memory().available


def check_fits(name: str, params: int, dtype: str | float, device: str, available: int, force: bool = False) -> int:
    """Return the estimate in bytes; raise MemoryGuardError when it exceeds what is free."""
    needed = required_bytes(params, dtype)
    if needed > available and not force:
        where = "GPU memory" if device == "cuda" else "RAM"
        label = dtype if isinstance(dtype, str) else f"{bytes_per_param(dtype):g} bytes/param"
        raise MemoryGuardError(
            f"{name}: needs about {needed / GIB:.1f} GiB in {label} "
            f"({params / 1e9:.2f}B params x {bytes_per_param(dtype):g} bytes + margin) but only "
            f"{available / GIB:.1f} GiB of {where} is free; use a smaller model, --dtype bfloat16, "
            "a GPU, or --force to try anyway"
        )
    return needed


@dataclass(frozen=True)
class Placement:
    """Where a model's weights go on a GPU machine, as accelerate's from_pretrained arguments."""

    kind: str  # "one-gpu" | "shard" | "offload" | "refuse"
    device_map: dict | str | None = None
    max_memory: dict = field(default_factory=dict)  # {gpu index: bytes, "cpu": bytes}
    cpu_bytes: int = 0  # estimate of the weights that go to CPU RAM (offload only)
    reason: str = ""  # for "refuse": what did not fit, and the remedy

    def from_pretrained_kwargs(self) -> dict:
        kwargs: dict = {"device_map": self.device_map}
        if self.max_memory:
            kwargs["max_memory"] = dict(self.max_memory)
        return kwargs


def place(needed: int, gpu_free: list[int], ram_free: int, offload: bool = True, name: str = "model") -> Placement:
    """One GPU when it fits the emptiest GPU, else sharded over the GPUs, else (offload allowed) the
    layers that do not fit go to CPU RAM, else refuse. Pure: figures in, decision out.

    needed: required_bytes() of the model; gpu_free: free bytes per GPU; ram_free: free RAM bytes.
    """
    budgets = {i: int(free * GPU_USABLE) for i, free in enumerate(gpu_free)}
    gpu_total = sum(budgets.values())
    if budgets and needed <= max(budgets.values()):
        best = max(budgets, key=budgets.get)
        return Placement("one-gpu", {"": best})
    if budgets and needed <= gpu_total:
        return Placement("shard", "auto", budgets)
    cpu_budget = int(max(ram_free - OVERHEAD_BYTES, 0) * RAM_USABLE)
    gpus = ", ".join(f"{f / GIB:.1f}" for f in gpu_free) or "none"
    if offload and budgets and needed <= gpu_total + cpu_budget:
        return Placement("offload", "auto", {**budgets, "cpu": cpu_budget}, needed - gpu_total)
    if offload:
        reason = (f"{name}: needs about {needed / GIB:.1f} GiB but the GPUs ({gpus} GiB free) and "
                  f"{ram_free / GIB:.1f} GiB of free RAM hold only {(gpu_total + cpu_budget) / GIB:.1f} GiB; "
                  "use a smaller model or dtype, or --force to try anyway")
    else:
        reason = (f"{name}: needs about {needed / GIB:.1f} GiB but the GPUs hold {gpu_total / GIB:.1f} GiB "
                  f"({gpus} GiB free) and --no-offload forbids putting layers in CPU RAM; drop --no-offload, "
                  "use a smaller model or dtype, or --force to try anyway")
    return Placement("refuse", reason=reason)


def offloaded_bytes(named_sizes: dict[str, int], device_map: dict) -> int:
    """Bytes of parameters whose module accelerate mapped to "cpu" or "disk" (longest prefix wins).

    named_sizes: parameter name -> bytes; device_map: model.hf_device_map.
    """
    total = 0
    for name, size in named_sizes.items():
        owner = max((m for m in device_map if m == "" or name == m or name.startswith(m + ".")), key=len, default=None)
        if owner is not None and device_map[owner] in ("cpu", "disk"):
            total += size
    return total
