"""Where a model goes, from its config alone: built on torch's meta device (no memory, no weights), sized
unit by unit (embeddings, each decoder layer, norms, head) in the run dtype or precision, then laid over
the GPUs in order and, past them, in CPU RAM. The loader passes `device_map` to from_pretrained as it is;
`sizebench plan` prints the same Placement. One function, so the plan and the load cannot disagree.

Per GPU the budget is its free memory less slack for the allocator and the run's activations; each decoder
layer carries its KV cache (context x batch) to the GPU that holds it. Offloaded layers run on the first
GPU (accelerate copies each one there for its forward pass), so that GPU also keeps room for the largest
unit and for the KV cache of every offloaded layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from sizebench.engines.hf import precision as precisions
from sizebench.errors import MemoryGuardError
from sizebench.measurement import memory

DEFAULT_CONTEXT = 2048  # tokens of KV cache planned for (Dolly's and Pythia's whole window)
DEFAULT_BATCH = 1
ALLOCATOR_SLACK = 0.05  # kept for the allocator's rounding and fragmentation: of each GPU's free memory, of a total
ATTENTION_SCORE_BYTES = 4  # an eager or math-path attention's scores are upcast to float32


@dataclass(frozen=True)
class Unit:
    name: str  # module path, as a device_map key
    weight_bytes: int  # parameters and buffers, each tensor once (a tied weight counts with its first owner)
    layer: bool  # a decoder layer: holds a slice of the KV cache
    tied_to: str | None = None  # the unit owning a weight this one shares: it must sit on the same device


@dataclass(frozen=True)
class Placement:
    """Where a model's weights go, what it needs, and as from_pretrained arguments."""

    kind: str  # "cpu" | "one-gpu" | "shard" | "offload" | "refuse"
    device_map: dict | str | None = None  # explicit {module: gpu index | "cpu"}; "auto" only under --force
    max_memory: dict = field(default_factory=dict)  # budgets: {gpu index: bytes, "cpu": bytes}
    cpu_bytes: int = 0  # weights placed in CPU RAM (offload)
    reason: str = ""  # for "refuse": what did not fit, and the remedy
    weights_bytes: int = 0
    kv_bytes: int = 0  # KV cache at the planned context and batch
    activation_bytes: int = 0  # per GPU that runs layers (on CPU: once)
    slack_bytes: int = 0  # ALLOCATOR_SLACK of weights, KV cache and activations
    device_bytes: dict = field(default_factory=dict)  # {gpu index | "cpu": weights + KV + activations planned there}

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.activation_bytes + self.slack_bytes

    def from_pretrained_kwargs(self) -> dict:
        kwargs: dict = {"device_map": self.device_map}
        if self.device_map == "auto" and self.max_memory:
            kwargs["max_memory"] = dict(self.max_memory)
        return kwargs


def place(
    config: dict,
    dtype: str,
    gpu_free: list[int],
    ram_free: int,
    precision: str | None = None,
    offload: bool = True,
    name: str = "model",
    context: int | None = None,
    batch: int = DEFAULT_BATCH,
) -> Placement:
    """config: the model's config.json as a dict; dtype: the run dtype; gpu_free: free bytes per GPU (none:
    a CPU run, judged by the memory guard); ram_free: free RAM bytes; precision: a variant (`nf4`) or None;
    context: tokens of KV cache to plan for (None: DEFAULT_CONTEXT or the model's window if shorter)."""
    units = layer_units(json.dumps(config, sort_keys=True), dtype, precision)
    if context is None:
        context = min(DEFAULT_CONTEXT, text_config(config).get("max_position_embeddings") or DEFAULT_CONTEXT)
    kv_layer, activations = runtime_bytes(config, dtype, context, batch)
    n_layers = sum(u.layer for u in units)
    weights = sum(u.weight_bytes for u in units)
    figures = dict(
        weights_bytes=weights,
        kv_bytes=kv_layer * n_layers,
        activation_bytes=activations,
        slack_bytes=int(ALLOCATOR_SLACK * (weights + kv_layer * n_layers + activations)),
    )
    if not gpu_free:
        return _on_cpu(name, figures, ram_free, dtype, precision)
    need = {u.name: u.weight_bytes + (kv_layer if u.layer else 0) for u in units}
    budgets = {i: int(free * (1 - ALLOCATOR_SLACK)) - activations for i, free in enumerate(gpu_free)}
    whole = sum(need.values())
    best = max(budgets, key=budgets.get)
    if whole <= budgets[best]:
        return Placement("one-gpu", {"": best}, budgets, device_bytes={best: whole + activations}, **figures)
    device_map, spill = _walk(units, need, budgets, reserve=0)
    if not spill:
        return Placement(
            "shard", device_map, budgets, device_bytes=_per_device(device_map, need, activations), **figures
        )
    gpus = ", ".join(f"{f / memory.GIB:.1f}" for f in gpu_free)
    if not offload:
        return Placement(
            "refuse",
            reason=(
                f"{name}: needs about {(whole + activations) / memory.GIB:.1f} GiB but the GPUs hold "
                f"{sum(budgets.values()) / memory.GIB:.1f} GiB ({gpus} GiB free) and --no-offload forbids putting "
                "layers in CPU RAM; drop --no-offload, use a smaller model or dtype, or --force to try anyway"
            ),
            **figures,
        )
    largest = max(u.weight_bytes for u in units)
    reserve = largest
    for _ in range(len(units) + 1):  # the first GPU keeps the offloaded layers' KV cache: grow until stable
        device_map, spill = _walk(units, need, budgets, reserve)
        offloaded_kv = kv_layer * sum(1 for u in units if u.layer and device_map[u.name] == "cpu")
        if reserve >= largest + offloaded_kv:
            break
        reserve = largest + offloaded_kv
    cpu_bytes = sum(u.weight_bytes for u in units if device_map[u.name] == "cpu")
    cpu_budget = int(max(ram_free - memory.OVERHEAD_BYTES, 0) * memory.RAM_USABLE)
    first = next(iter(budgets))
    if cpu_bytes > cpu_budget or reserve > budgets[first]:
        return Placement(
            "refuse",
            reason=(
                f"{name}: needs about {(whole + activations) / memory.GIB:.1f} GiB but the GPUs ({gpus} GiB free) and "
                f"{ram_free / memory.GIB:.1f} GiB of free RAM hold only {(sum(budgets.values()) + cpu_budget) / memory.GIB:.1f}"
                " GiB; use a smaller model or dtype, or --force to try anyway"
            ),
            **figures,
        )
    per_device = _per_device(device_map, need, activations)
    per_device[first] = per_device.get(first, activations) + reserve
    per_device["cpu"] = cpu_bytes
    return Placement(
        "offload", device_map, {**budgets, "cpu": cpu_budget}, cpu_bytes, device_bytes=per_device, **figures
    )


def _walk(units: list[Unit], need: dict[str, int], budgets: dict[int, int], reserve: int) -> tuple[dict, bool]:
    """Units in model order over the GPUs in order (a GPU once left is not come back to), the rest to "cpu";
    `reserve` bytes kept free on the first GPU. Returns the device map and whether anything went to the CPU."""
    gpus = list(budgets)
    room = dict(budgets)
    room[gpus[0]] -= reserve
    device_map: dict = {}
    at = 0
    for unit in units:
        if unit.tied_to is not None:
            device_map[unit.name] = device_map[unit.tied_to]
            continue
        while at < len(gpus) and need[unit.name] > room[gpus[at]]:
            at += 1
        if at == len(gpus):
            device_map[unit.name] = "cpu"
            continue
        device_map[unit.name] = gpus[at]
        room[gpus[at]] -= need[unit.name]
    return device_map, "cpu" in device_map.values()


def _per_device(device_map: dict, need: dict[str, int], activations: int) -> dict:
    per: dict = {}
    for unit, device in device_map.items():
        per[device] = per.get(device, activations if device != "cpu" else 0) + need[unit]
    return per


def _on_cpu(name: str, figures: dict, ram_free: int, dtype: str, precision: str | None) -> Placement:
    """A CPU run: the memory guard's decision (memory.check_fits), with this model's figures."""
    per_param = precisions.bytes_per_param(precision, dtype) if precision else dtype
    weights = figures["weights_bytes"]
    params = int(weights / memory.bytes_per_param(per_param))
    try:
        memory.check_fits(name, params, per_param, "cpu", ram_free)
    except MemoryGuardError as exc:
        return Placement("refuse", reason=str(exc), **figures)
    return Placement(
        "cpu", {"": "cpu"}, {"cpu": ram_free}, weights, **figures, device_bytes={"cpu": sum(figures.values())}
    )


@lru_cache(maxsize=32)
def layer_units(config_json: str, dtype: str, precision: str | None = None) -> list[Unit]:
    """The model's units in forward order with their bytes, from its config built on the meta device."""
    model = meta_model(json.loads(config_json), dtype)
    no_split = set(getattr(model, "_no_split_modules", None) or ())
    quantized = precisions.get(precision)
    bits = quantized.weight_bits if quantized else None
    kept = _unquantized(model) if bits else set()
    owner: dict[int, str] = {}
    units: list[Unit] = []

    def visit(prefix: str, module) -> None:
        children = list(module.named_children())
        whole = not children or type(module).__name__ in no_split or any(True for _ in module.parameters(recurse=False))
        if not whole:
            for child, sub in children:
                visit(f"{prefix}.{child}" if prefix else child, sub)
            return
        size, tied = 0, None
        for pname, tensor in [
            *module.named_parameters(remove_duplicate=False),
            *module.named_buffers(remove_duplicate=False),
        ]:
            if id(tensor) in owner:
                tied = tied or owner[id(tensor)]
                continue
            owner[id(tensor)] = prefix
            full = f"{prefix}.{pname}" if prefix else pname
            if bits and tensor.dim() == 2 and full not in kept:
                size += tensor.numel() * bits // 8
            else:
                size += tensor.numel() * tensor.element_size()
        if size or tied:
            units.append(Unit(prefix, size, type(module).__name__ in no_split, tied if not size else None))

    visit("", model)
    return units


def _unquantized(model) -> set[str]:
    """Weights a quantizer leaves at the run dtype: the embeddings (input, and output when untied)."""
    kept = {f"{name}.weight" for name, module in model.named_modules() if module is model.get_input_embeddings()}
    out = model.get_output_embeddings()
    kept |= {f"{name}.weight" for name, module in model.named_modules() if out is not None and module is out}
    return kept


def meta_model(config: dict, dtype: str):
    """The model class of `config`, built on torch's meta device in `dtype`: shapes without memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(
            build_config(config), dtype=getattr(torch, dtype), trust_remote_code=False
        )


def build_config(config: dict):
    """transformers' config object of a config.json dict."""
    from transformers import AutoConfig

    return AutoConfig.for_model(config["model_type"], **{k: v for k, v in config.items() if k != "model_type"})


def text_config(config: dict) -> dict:
    return config.get("text_config", config)


def runtime_bytes(config: dict, dtype: str, context: int, batch: int) -> tuple[int, int]:
    """(KV cache bytes per decoder layer, activation bytes) at `context` tokens for `batch` sequences.

    Activations: the prefill's widest moment, a few hidden-size tensors and the MLP's intermediate one per
    token, every head's attention scores (float32, as an eager or math-path attention holds them), and the
    last position's logits."""
    text = text_config(config)
    hidden, heads = text["hidden_size"], text["num_attention_heads"]
    kv_heads = text.get("num_key_value_heads") or heads
    head_dim = text.get("head_dim") or hidden // heads
    width = memory.DTYPE_BYTES[dtype]
    kv_layer = 2 * batch * context * kv_heads * head_dim * width
    intermediate = text.get("intermediate_size") or 4 * hidden
    tokens = batch * context
    activations = (
        tokens * (4 * hidden + intermediate) * width
        + batch * heads * context * context * ATTENTION_SCORE_BYTES
        + batch * text["vocab_size"] * 4
    )
    return kv_layer, activations
