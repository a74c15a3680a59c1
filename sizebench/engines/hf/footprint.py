"""Weights in memory, measured from the storage that holds them, not from shapes and dtypes.

Quantized weights are tensor subclasses: torchao and optimum-quanto wrap inner data and scale tensors
and report the outer (float) dtype, so `numel() * element_size()` and `get_memory_footprint()` count
them at full size; bitsandbytes keeps packed bytes in the parameter and its scales beside it. This
walks every parameter and buffer down to the plain tensors that own storage (a wrapper's
`__tensor_flatten__` inner tensors, tensors hung on the parameter such as bitsandbytes' `SCB` and
`quant_state`) and adds each storage once, so tied and shared weights are not counted twice.
"""

from __future__ import annotations

from typing import Any, Iterator

MAX_DEPTH = 4  # a QuantState's nested state2 is two levels below the parameter; a little spare


def weight_bytes(model) -> int:
    """Bytes of storage held by the model's parameters and buffers (and their quantization state)."""
    seen: set[tuple[str, int]] = set()
    total = 0
    tensors = [t for _, t in model.named_parameters(remove_duplicate=False)]
    tensors += [t for _, t in model.named_buffers(remove_duplicate=False)]
    for tensor in tensors:
        for leaf in _leaves(tensor, 0):
            if leaf.device.type == "meta":
                continue  # offloaded to disk by accelerate: holds no memory here
            storage = leaf.untyped_storage()
            key = (str(leaf.device), storage.data_ptr())
            if key not in seen and storage.nbytes():
                seen.add(key)
                total += storage.nbytes()
    return total


def _leaves(obj: Any, depth: int) -> Iterator[Any]:
    import torch
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if depth > MAX_DEPTH or obj is None or isinstance(obj, torch.nn.Module):
        return
    if isinstance(obj, torch.Tensor):
        if is_traceable_wrapper_subclass(obj):  # torchao, quanto: the storage is in the inner tensors
            for name in obj.__tensor_flatten__()[0]:
                yield from _leaves(getattr(obj, name), depth + 1)
        else:
            yield obj
        extras = getattr(obj, "__dict__", {})
    elif isinstance(obj, (list, tuple)):
        extras = dict(enumerate(obj))
    elif type(obj).__module__.split(".")[0] in QUANT_LIBRARIES:
        extras = getattr(obj, "__dict__", {})  # e.g. bitsandbytes' QuantState: absmax, code, nested state2
    else:
        return
    for value in extras.values():
        yield from _leaves(value, depth + 1)


QUANT_LIBRARIES = {"bitsandbytes", "torchao", "optimum"}


def parameter_count(model) -> int:
    """Parameters as the model defines them: bitsandbytes' 4-bit weights pack two per byte, so their
    numel() is half the count; their quantization state keeps the original shape."""
    import math

    total = 0
    for param in model.parameters():
        shape = getattr(getattr(param, "quant_state", None), "shape", None)
        total += math.prod(shape) if shape is not None else param.numel()
    return total
