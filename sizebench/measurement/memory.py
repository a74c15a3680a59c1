"""The memory guard: refuse a model that cannot fit before loading it, not after an OOM kill.

Every figure here counts TOTAL parameters (embeddings included): they are all in memory.
On GPU machines sizebench.engines.hf.placement decides where each layer goes (one GPU, sharded, or
offloaded in part to CPU RAM) from the model's config; this module holds the CPU guard and the figures.
"""

from __future__ import annotations

from sizebench.errors import MemoryGuardError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
MARGIN = 1.2  # activations, KV cache and allocator slack on top of the weights
OVERHEAD_BYTES = 512 * 2**20  # the Python process, torch and the tokenizer
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
            f"{available / GIB:.1f} GiB of {where} is free; use a smaller model, "
            + ("--dtype bfloat16, " if bytes_per_param(dtype) > 2 else "a lower precision (@int8, @nf4), ")
            + "a GPU, or --force to try anyway"
        )
    return needed


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
