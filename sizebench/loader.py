"""One loader: a registry entry in, a ready model and tokenizer out, with what the load cost."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sizebench import memory, sources
from sizebench.errors import SizebenchError
from sizebench.registry import ModelSpec

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    spec: ModelSpec
    device: str
    dtype: str
    params: int
    n_devices: int
    load_s: float  # from_pretrained of model and tokenizer, weights already on disk
    import_s: float  # importing the model's Python class first: a per-process cost, kept out of load_s
    located: sources.Located
    prompt_format: str
    reusable: dict = field(default_factory=dict)  # per-model helpers built once (stop criteria)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SizebenchError("--device cuda asked for, but torch sees no CUDA GPU here")
    return requested


def resolve_dtype(requested: str, device: str) -> str:
    if requested == "auto":
        return "bfloat16" if device == "cuda" else "float32"
    return requested


def estimate_params(spec: ModelSpec, located: sources.Located) -> int:
    """Published count if known, else weights bytes / bytes per stored value (4-bit for GGUF)."""
    if spec.params:
        return spec.params
    if located.gguf_path is not None:
        return located.weights_bytes * 2
    stored = _config(located.path).get("torch_dtype") or _config(located.path).get("dtype") or "float32"
    return located.weights_bytes // memory.DTYPE_BYTES.get(stored, 4)


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def refuse_remote_code(spec: ModelSpec, folder: Path) -> None:
    """sizebench never sets trust_remote_code: name the model whose config asks for custom code."""
    from transformers import CONFIG_MAPPING

    config = _config(folder)
    if "auto_map" in config and config.get("model_type") not in CONFIG_MAPPING:
        raise SizebenchError(
            f"{spec.name}: needs trust_remote_code (model type '{config.get('model_type')}' is defined by "
            "code in the model repository); sizebench never runs remote code"
        )


def load(spec: ModelSpec, device: str = "auto", dtype: str = "auto", force: bool = False) -> Loaded:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = resolve_dtype(spec.dtype if dtype == "auto" else dtype, device)
    def guard(params: int) -> int:
        return memory.check_fits(spec.name, params, dtype, device, memory.available_bytes(device), force)

    # With a published count, refuse before a download or conversion that could not be used anyway;
    # otherwise the count is estimated from the weights once they are located.
    needed = guard(spec.params) if spec.params else None
    located = sources.locate(spec)
    refuse_remote_code(spec, located.path)
    if needed is None:
        needed = guard(estimate_params(spec, located))

    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": False}
    if device == "cuda":
        # accelerate puts the model on one GPU when it fits and shards it over several when not.
        free = {i: torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())}
        kwargs["device_map"] = "auto"
        kwargs["max_memory"] = {i: int(f * 0.9) for i, f in free.items()} if needed > max(free.values()) else None
        if kwargs["max_memory"] is None:
            kwargs["device_map"] = {"": 0}
            del kwargs["max_memory"]
    import_s = import_model_class(located.path)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(located.path, trust_remote_code=False)
    try:
        model = AutoModelForCausalLM.from_pretrained(located.path, **kwargs)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise SizebenchError(f"{spec.name}: needs trust_remote_code; sizebench never runs remote code") from exc
        raise
    model.eval()
    if device == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - started

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    devices = set(getattr(model, "hf_device_map", {"": device}).values())
    return Loaded(
        model=model, tokenizer=tokenizer, spec=spec, device=device, dtype=dtype,
        params=sum(p.numel() for p in model.parameters()), n_devices=len(devices),
        load_s=load_s, import_s=import_s, located=located, prompt_format=pick_format(spec, tokenizer),
    )


def import_model_class(folder: Path) -> float:
    """Import the architecture's module (1.8 s for Llama here) so load_s times the weights, not Python."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    started = time.perf_counter()
    try:
        MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(folder, trust_remote_code=False))]
    except (KeyError, ValueError, OSError):
        pass  # from_pretrained below reports what is wrong with this folder
    return time.perf_counter() - started


def pick_format(spec: ModelSpec, tokenizer) -> str:
    if spec.prompt_format != "auto":
        return spec.prompt_format
    if "### End" in tokenizer.get_vocab() or "dolly" in spec.name.lower():
        return "dolly"
    return "chat" if getattr(tokenizer, "chat_template", None) else "plain"
