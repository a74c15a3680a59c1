"""Plain transformers, as a user writes it, on a Dolly shape with random weights: the anchors for sizebench's loops.

    .venv/bin/python benchmarks/anchors.py [--shape dolly-v2-3b] [--device cuda] [--dtype bfloat16]

Builds the shape's GPT-NeoX (dolly-v2-3b's config.json from the Hub, written here; random weights, made on the
device) and times `model.generate` greedy, 64 new tokens (EOS not honoured: min_new_tokens), from one prompt of
32 random token ids, batch 1: `eager` (generate's default dynamic cache) and `static`
(`cache_implementation="static"`: transformers compiles the forward where it compiles, CUDA). Each mode's first
two calls are its warm-up (the compile, timed apart as first_calls_s); then 3 timed calls, tok/s = new tokens /
median wall time (prefill included, as a user's stopwatch). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

# databricks/dolly-v2-*'s config.json (GPT-NeoX, Pythia's shapes); `tiny` for trying the script on a CPU
SHAPES = {
    "dolly-v2-3b": {
        "hidden_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 10240,
    },
    "dolly-v2-7b": {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 16384,
    },
    "dolly-v2-12b": {
        "hidden_size": 5120,
        "num_hidden_layers": 36,
        "num_attention_heads": 40,
        "intermediate_size": 20480,
    },
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256},
}
COMMON = {
    "vocab_size": 50280,
    "rotary_pct": 0.25,
    "max_position_embeddings": 2048,
    "use_parallel_residual": True,
    "tie_word_embeddings": False,
    "eos_token_id": 0,
    "pad_token_id": 0,
}
NEW_TOKENS, PROMPT_TOKENS, TIMED = 64, 32, 3


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def anchor(shape: str, device: str, dtype: str) -> dict:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(**COMMON, **SHAPES[shape])
    with torch.device(device):
        model = GPTNeoXForCausalLM(config).to(getattr(torch, dtype)).eval()
    ids = torch.randint(1, config.vocab_size, (1, PROMPT_TOKENS), device=device)
    out = {
        "shape": shape,
        "device": device,
        "dtype": dtype,
        "new_tokens": NEW_TOKENS,
        "weights_mib": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20,
    }
    for mode, extra in (("eager", {}), ("static", {"cache_implementation": "static"})):
        kwargs = {"max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS, "do_sample": False, **extra}
        walls = []
        for _ in range(2 + TIMED):
            sync(device)
            started = time.perf_counter()
            with torch.inference_mode():
                made = model.generate(ids, **kwargs)
            sync(device)
            walls.append(time.perf_counter() - started)
        assert made.shape[1] == PROMPT_TOKENS + NEW_TOKENS
        out[mode] = {
            "tok_per_s": NEW_TOKENS / statistics.median(walls[2:]),
            "first_calls_s": walls[:2],
            "timed_s": walls[2:],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="dolly-v2-3b", choices=sorted(SHAPES))
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    args = parser.parse_args()
    print(json.dumps(anchor(args.shape, args.device, args.dtype)))


if __name__ == "__main__":
    main()
