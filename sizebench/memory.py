"""The memory guard: refuse a model that cannot fit before loading it, not after an OOM kill."""

from __future__ import annotations

from sizebench.errors import MemoryGuardError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
MARGIN = 1.2  # activations, KV cache and allocator slack on top of the weights
OVERHEAD_BYTES = 512 * 2**20  # the Python process, torch and the tokenizer


def required_bytes(params: int, dtype: str) -> int:
    return int(params * DTYPE_BYTES[dtype] * MARGIN + OVERHEAD_BYTES)


def available_bytes(device: str) -> int:
    if device == "cuda":
        import torch

        return sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    import psutil

    return psutil.virtual_memory().available


def check_fits(name: str, params: int, dtype: str, device: str, available: int, force: bool = False) -> int:
    """Return the estimate in bytes; raise MemoryGuardError when it exceeds what is free."""
    needed = required_bytes(params, dtype)
    if needed > available and not force:
        where = "GPU memory" if device == "cuda" else "RAM"
        raise MemoryGuardError(
            f"{name}: needs about {needed / 2**30:.1f} GiB in {dtype} "
            f"({params / 1e9:.2f}B params x {DTYPE_BYTES[dtype]} bytes + margin) but only "
            f"{available / 2**30:.1f} GiB of {where} is free; use a smaller model, --dtype bfloat16, "
            "a GPU, or --force to try anyway"
        )
    return needed
