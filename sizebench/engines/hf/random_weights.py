"""Cost-only rungs (`--weights random`): the model built from its config directly on the target device in the
run dtype, weights filled without the slow initialisers (as optimum-benchmark's no_weights), so load time,
memory and speed can be measured without downloading anything. Answers are noise: sizebench never scores
them, and generation ignores EOS so every answer runs to max_new_tokens.

The tokenizer is the model's own where it is on this machine (model folder, HF cache); else a byte-level
stand-in with the config's vocabulary size, named in the load record. Prompt lengths are recorded in
tokens, so figures stay comparable across rungs that tokenize the same text differently.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

from sizebench.engines import formats
from sizebench.engines.hf import footprint, placement, precision
from sizebench.engines.hf.loader import Loaded, count_params, resolve_dtype
from sizebench.errors import MemoryGuardError, ModelUnavailable, SizebenchError
from sizebench.measurement import memory
from sizebench.measurement.measure import resolve_device
from sizebench.specs.models import HUB, LOCAL_DIR, ModelSpec, known_config
from sizebench.weights import sources

STAND_IN = "byte-level stand-in"  # the tokenizer's name in the load record when the model's own is not here


def config_of(spec: ModelSpec) -> dict:
    """The model's config.json without its weights: the registry's, the model folder's, or the HF cache's."""
    known = known_config(spec)
    if known:
        return known
    path = None
    if spec.source == LOCAL_DIR:
        path = Path(spec.location) / "config.json"
    elif spec.source == HUB:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(spec.location, "config.json", revision=spec.revision)
        path = Path(found) if isinstance(found, str) else None
    if path is None or not path.is_file():
        raise ModelUnavailable(
            f"{spec.name}: no config.json here to build random weights from (not in the "
            "registry, the folder or the HF cache)"
        )
    config = json.loads(path.read_text())
    if "model_type" not in config:
        raise SizebenchError(f"{spec.name}: its config.json names no model_type; cannot build it")
    return config


def load(
    spec: ModelSpec, device: str = "auto", dtype: str = "auto", force: bool = False, offload: bool = True
) -> Loaded:
    import torch
    from transformers import AutoModelForCausalLM

    device = resolve_device(device)
    dtype = precision.run_dtype(spec.precision, resolve_dtype(spec.dtype if dtype == "auto" else dtype, device))
    if precision.get(spec.precision) and precision.get(spec.precision).backend:
        raise SizebenchError(
            f"{spec.name}: random weights come in plain dtypes (fp32, bf16, fp16), not "
            f"{spec.precision}; plan its memory with `sizebench plan`"
        )
    config = config_of(spec)
    gpus = memory.gpu_free_bytes() if device == "cuda" else []
    placed = placement.place(config, dtype, gpus, memory.ram_free_bytes(), None, offload, spec.name)
    if placed.kind == "refuse" and not force:
        raise MemoryGuardError(placed.reason)
    if placed.kind in ("shard", "offload"):
        raise SizebenchError(
            f"{spec.name}: random weights are built on one device, and this one needs "
            f"{placed.kind} ({placed.cpu_bytes / memory.GIB:.1f} GiB to CPU); `sizebench plan` "
            "shows the placement"
        )
    target = f"cuda:{placed.device_map['']}" if device == "cuda" and isinstance(placed.device_map, dict) else device

    started = time.perf_counter()
    built = placement.build_config(config)
    with torch.device(target), _no_init():
        model = AutoModelForCausalLM.from_config(built, dtype=getattr(torch, dtype), trust_remote_code=False)
    fill(model, getattr(built, "initializer_range", 0.02))
    model.eval()
    model.generation_config.eos_token_id = None  # every answer runs to max_new_tokens
    tokenizer, tokenizer_name = tokenizer_for(spec, placement.text_config(config)["vocab_size"])
    if device == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - started
    total, non_embedding = count_params(model)
    held = footprint.weight_bytes(model)
    located = sources.Located(path=Path(spec.location), weights_bytes=held)
    return Loaded(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        device=device,
        dtype=dtype,
        params=total,
        n_devices=1,
        load_s=load_s,
        import_s=0.0,
        located=located,
        prompt_format=formats.pick(spec, tokenizer),
        params_non_embedding=non_embedding,
        tokenizer_name=tokenizer_name,
    )


def _no_init():
    """transformers' switch that turns torch's and its own initialisers into no-ops (tensors stay empty)."""
    from transformers.initialization import no_init_weights

    return no_init_weights()


def fill(model, std: float) -> None:
    """Weights uniform with the config's standard deviation, norms' scales 1, biases 0: one pass, no normal_."""
    import torch

    bound = std * 3**0.5
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif param.dim() == 1:
                param.fill_(1.0)
            else:
                param.uniform_(-bound, bound)


def tokenizer_for(spec: ModelSpec, vocab_size: int):
    """(tokenizer, its name): the model's own where this machine has it, else the byte-level stand-in."""
    from transformers import AutoTokenizer

    where = spec.location
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            where,
            revision=spec.revision if spec.source == HUB else None,
            local_files_only=True,
            trust_remote_code=False,
        )
        name = f"the model's own ({where})"
        if not tokenizer("a b", add_special_tokens=False)["input_ids"]:  # built from a config alone: no vocabulary
            raise ValueError("empty tokenizer")
    except (OSError, ValueError, TypeError):
        tokenizer, name = stand_in(vocab_size), f"{STAND_IN} ({vocab_size:,} ids)"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, name


@lru_cache(maxsize=4)  # built once per vocabulary size in a process (50k tokens: a second and some MiB)
def stand_in(vocab_size: int):
    """A byte-level BPE without merges (every byte a token, so any text encodes) whose ids fill the model's
    vocabulary: id 0 is the end-of-text token, then the 256 bytes, then unused two-byte tokens."""
    import itertools

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<|endoftext|>", *alphabet]
    tokens += [
        "".join(pair)
        for pair in itertools.islice(itertools.product(alphabet, repeat=2), max(vocab_size - len(tokens), 0))
    ]
    core = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
