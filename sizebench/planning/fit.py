"""`sizebench plan`: where each rung would go and what it would need, from configs alone (no weights).

transformers rungs are placed by sizebench.engines.hf.placement, the function the loader uses; rungs of an
engine that runs GGUF files (Engine.runs_gguf: llama.cpp) need the file's tensor bytes plus the KV cache (f16,
llama.cpp's default) and a compute buffer of the same size as transformers' activations; served rungs have
nothing to plan here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.measurement import memory
from sizebench import engines
from sizebench.specs.models import GGUF_FILE, GGUF_PACKAGE, ModelSpec

CUDA_CONTEXT_BYTES = 512 * 2**20  # what the CUDA context and torch's kernels take of a card before any tensor
# Cards by name: (memory as nvidia-smi reports it, bfloat16 support). A T4 has no bfloat16.
CARDS = {"t4": (15_360 * 2**20, False)}
UNITS = {"": 2**30, "gib": 2**30, "gb": 10**9, "mib": 2**20, "mb": 10**6, "tib": 2**40, "tb": 10**12}


@dataclass(frozen=True)
class Machine:
    gpu_free: list[int]  # bytes free per GPU (card size less the CUDA context, or measured here)
    ram_free: int
    bf16: bool  # every GPU supports bfloat16
    described: str  # one line: what the plan assumed


@dataclass(frozen=True)
class Row:
    model: str
    engine: str
    dtype: str
    kind: str  # cpu | one-gpu | shard | offload | refuse | served | not planned
    where: str  # in words
    weights_bytes: int | None = None
    kv_bytes: int | None = None
    activation_bytes: int | None = None
    total_bytes: int | None = None
    budget_bytes: int | None = None
    cpu_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_bytes(text: str, option: str) -> int:
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not found or found.group(2).lower() not in UNITS or float(found.group(1)) <= 0:
        raise SizebenchError(f"{option} takes sizes like 16GiB, 15360MiB or 24GB, not '{text}'")
    return int(float(found.group(1)) * UNITS[found.group(2).lower()])


def machine(gpu: str | None, ram: str | None) -> Machine:
    """The machine to plan for: the cards and RAM given, else this machine's free memory."""
    ram_free = parse_bytes(ram, "--ram") if ram else memory.ram_free_bytes()
    ram_text = f"{ram_free / memory.GIB:.1f} GiB of RAM{'' if ram else ' free here'}"
    if gpu is None:
        from sizebench.measurement.measure import cuda_available

        if not cuda_available():
            return Machine([], ram_free, True, f"this machine: no GPU, {ram_text}")
        import torch

        free = memory.gpu_free_bytes()
        return Machine(
            free,
            ram_free,
            torch.cuda.is_bf16_supported(),
            f"this machine: {len(free)} GPU(s) with "
            f"{', '.join(f'{f / memory.GIB:.1f}' for f in free)} GiB free, {ram_text}",
        )
    cards = []
    for part in [p.strip() for p in gpu.split(",")]:
        cards.append(CARDS[part.lower()] if part.lower() in CARDS else (parse_bytes(part, "--gpu"), True))
    free = [size - CUDA_CONTEXT_BYTES for size, _ in cards]
    if any(f <= 0 for f in free):
        raise SizebenchError(f"--gpu: a card must be larger than the {CUDA_CONTEXT_BYTES / 2**20:.0f} MiB CUDA context")
    return Machine(
        free,
        ram_free,
        all(bf16 for _, bf16 in cards),
        f"{len(cards)} GPU(s) of {', '.join(f'{s / memory.GIB:.1f}' for s, _ in cards)} GiB less "
        f"{CUDA_CONTEXT_BYTES / 2**20:.0f} MiB assumed for the CUDA context each, {ram_text}",
    )


def run_dtype(spec: ModelSpec, requested: str, where: Machine) -> tuple[str, list[str]]:
    """The dtype the rung would run in, and what the plan says about it (a T4's missing bfloat16)."""
    from sizebench.engines.hf import precision

    on_gpu = bool(where.gpu_free)
    wanted = precision.run_dtype(
        spec.precision,
        "bfloat16" if requested == "auto" and on_gpu else "float32" if requested == "auto" else requested,
    )
    if on_gpu and wanted == "bfloat16" and not where.bf16:
        return "float16", ["no bfloat16 on this GPU (a T4): planned in float16"]
    return wanted, []


def plan_rows(
    specs: list[ModelSpec],
    where: Machine,
    dtype: str = "auto",
    context: int | None = None,
    batch: int = 1,
    offload: bool = True,
) -> list[Row]:
    return [_row(spec, where, dtype, context, batch, offload) for spec in specs]


def _row(spec: ModelSpec, where: Machine, dtype: str, context: int | None, batch: int, offload: bool) -> Row:
    engine = engines.get(spec.engine)
    if engine.served:
        return Row(spec.name, spec.engine, "-", "served", "served: nothing to plan (the server holds the model)")
    if engine.runs_gguf:
        return _gguf_row(spec, where, context, batch)
    if spec.source in (GGUF_FILE, GGUF_PACKAGE):
        return Row(
            spec.name,
            spec.engine,
            "-",
            "not planned",
            f"a GGUF on transformers is planned once converted; plan llama.cpp:{spec.name} for the file itself",
        )
    from sizebench.engines.hf import placement, random_weights

    config = random_weights.config_of(spec)
    run_in, notes = run_dtype(spec, dtype, where)
    placed = placement.place(
        config, run_in, where.gpu_free, where.ram_free, spec.precision, offload, spec.name, context, batch
    )
    budget = (
        sum(where.gpu_free) + (placed.max_memory.get("cpu", 0) if placed.kind == "offload" else 0)
        if where.gpu_free
        else where.ram_free
    )
    if placed.kind == "one-gpu":
        budget = where.gpu_free[placed.device_map[""]]
    label = spec.precision or run_in
    return Row(
        spec.name,
        spec.engine,
        label,
        placed.kind,
        _words(placed, where),
        placed.weights_bytes,
        placed.kv_bytes,
        placed.activation_bytes,
        placed.total_bytes,
        budget,
        placed.cpu_bytes,
        notes,
    )


def _words(placed, where: Machine) -> str:
    gpus = sorted(
        {d for d in (placed.device_map.values() if isinstance(placed.device_map, dict) else ()) if d != "cpu"}
    )
    return {
        "cpu": "CPU RAM",
        "one-gpu": f"one GPU (cuda:{gpus[0] if gpus else 0})",
        "shard": f"sharded over {len(gpus)} GPUs",
        "offload": f"{placed.cpu_bytes / memory.GIB:.1f} GiB offloaded to CPU RAM",
        "refuse": f"refused: {placed.reason}",
    }[placed.kind]


def _gguf_row(spec: ModelSpec, where: Machine, context: int | None, batch: int) -> Row:
    from sizebench.weights import gguf_check, sources

    if spec.source not in (GGUF_FILE, GGUF_PACKAGE):
        return Row(
            spec.name,
            spec.engine,
            spec.precision or "-",
            "not planned",
            "converted to GGUF at its first run; plan the .gguf file then",
        )
    path = Path(spec.location) if spec.source == GGUF_FILE else sources.package_gguf(spec)
    meta, tensors = gguf_check.tables(path)
    try:
        return _gguf_figures(spec, where, context, batch, meta, tensors)
    except KeyError as missing:
        raise SizebenchError(f"{spec.name}: its GGUF has no {missing} field; cannot plan its KV cache") from None


def _gguf_figures(spec: ModelSpec, where: Machine, context: int | None, batch: int, meta: dict, tensors) -> Row:
    from sizebench.engines.hf import placement

    arch = meta.get("general.architecture", "llama")
    hidden = int(meta[f"{arch}.embedding_length"])
    embed = next((t for t in tensors if t.name == "token_embd.weight"), None)
    config = {
        "hidden_size": hidden,
        "num_attention_heads": int(meta[f"{arch}.attention.head_count"]),
        "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv") or meta[f"{arch}.attention.head_count"]),
        "head_dim": meta.get(f"{arch}.attention.key_length"),
        "intermediate_size": meta.get(f"{arch}.feed_forward_length"),
        "vocab_size": embed.elements // hidden if embed else 32_000,
    }
    window = meta.get(f"{arch}.context_length") or placement.DEFAULT_CONTEXT
    tokens = context or min(placement.DEFAULT_CONTEXT, int(window))
    kv_layer, activations = placement.runtime_bytes(config, "float16", tokens, batch)
    weights = sum(t.nbytes for t in tensors)
    notes = []
    if spec.precision:  # made by llama.cpp's quantizer at the first run: its bits per weight, stated
        bits = engines.get(spec.engine).nominal_bits(spec, "auto")
        weights = int(sum(t.elements for t in tensors) * bits / 8)
        notes.append(f"{spec.precision}: {bits:g} bits per weight as llama-quantize states them")
    kv = kv_layer * int(meta[f"{arch}.block_count"])
    total = int((weights + kv + activations) * (1 + placement.ALLOCATOR_SLACK))
    if where.gpu_free:
        budget, kind, words = max(where.gpu_free), "one-gpu", "one GPU (every layer offloaded to it)"
    else:
        budget, kind, words = where.ram_free, "cpu", "CPU RAM"
    if total > budget:
        kind, words = "refuse", f"refused: needs {total / memory.GIB:.1f} GiB, {budget / memory.GIB:.1f} GiB there"
    return Row(
        spec.name,
        spec.engine,
        spec.precision or (spec.quantization or "GGUF"),
        kind,
        words,
        weights,
        kv,
        activations,
        total,
        budget,
        0,
        notes,
    )
