"""How a transformers rung decodes: `eager` or `static`.

eager: generate's default, a KV cache that grows by one position a step and one Python-driven forward per token
(on a GPU, each step waits on the launch of every kernel: the loop, not the model, sets the speed).
static: transformers' static KV cache, preallocated once for one shape (`max_cache_len` positions, the longest
prompt of the suite plus the new-token limit, the same for every call so nothing recompiles), and the forward
compiled with transformers' CompileConfig (`torch.compile` mode "reduce-overhead": CUDA graphs). transformers
compiles where it judges compiling worthwhile (CUDA and other accelerators; not the CPU, not a model offloaded to
CPU RAM); elsewhere the static cache runs uncompiled.

The default per device is chosen by measurement (benchmarks/RESULTS.md, "Decode loop").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODES = ("eager", "static")
COMPILE_MODE = "reduce-overhead"  # torch.compile's CUDA-graph mode: one graph launch per decode step
DEFAULT = {"cuda": "static", "cpu": "eager"}  # CPU: the static cache measured slower there (RESULTS.md)


def resolve(requested: str, device: str) -> str:
    """`auto` -> the device's default; eager and static as given."""
    return DEFAULT.get(device, "eager") if requested == "auto" else requested


@dataclass(frozen=True)
class Decoder:
    mode: str
    cache_len: int | None = None  # static: positions preallocated per sequence
    compile: bool = False  # static: hand transformers the compile config (not on CPU, where it would not compile)

    def generate_kwargs(self) -> dict[str, Any]:
        if self.mode != "static":
            return {}
        kwargs: dict[str, Any] = {"cache_implementation": "static", "max_cache_len": self.cache_len}
        if self.compile:
            from transformers import CompileConfig

            kwargs["compile_config"] = CompileConfig(mode=COMPILE_MODE)
        return kwargs


def kv_bytes_per_position(config, dtype_bytes: int, cache_len: int | None = None) -> int:
    """Bytes one sequence's KV cache holds per position, summed over layers (keys and values); with `cache_len`,
    a sliding-window layer counts only the positions of its window that a cache of that length holds, averaged
    over the positions."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(text, "num_attention_heads", None)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    layers = text.num_hidden_layers
    types = getattr(text, "layer_types", None) or ["full_attention"] * layers
    window = getattr(text, "sliding_window", None)
    per_layer = 2 * kv_heads * head_dim * dtype_bytes
    if cache_len is None or not window:
        return per_layer * layers
    held = sum(min(cache_len, window) if kind == "sliding_attention" else cache_len for kind in types)
    return round(per_layer * held / cache_len)
