"""The decode loop on this machine: eager against the static KV cache, uncompiled and compiled, per model.

    .venv/bin/python benchmarks/decode.py [--models smollm2-135m,gemma3-270m] [--device cpu] [--reps 3]

Per model, sizebench's transformers session (the run's dtype: float32 on CPU, bf16 on a GPU) decodes the same
rendered prompts, greedy, 64 new tokens without stopping, in three loops interleaved A B C A B C so drift hits
all three: `eager` (generate's default), `static` (sizebench's static mode: transformers' static cache, compiled
where transformers compiles, i.e. not on CPU) and `static+compile` (the same cache with transformers' compile
forced on every device: CompileConfig._compile_all_devices, torch.compile's default mode, as CUDA graphs are
GPU-only). Each loop's first generate (the compile, where compiled) is timed apart. Also checks that every loop
gives the eager loop's greedy tokens. The last stdout line is one JSON object with every figure; the decode
default of each device (sizebench.engines.hf.decoding.DEFAULT) is chosen from it (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench import engines  # noqa: E402
from sizebench.engines.hf import decoding  # noqa: E402
from sizebench.specs.settings import LoadSettings  # noqa: E402
from sizebench.planning.registry import resolve  # noqa: E402
from sizebench.specs.settings import GenSettings  # noqa: E402
from sizebench.stages.suites import load_suite  # noqa: E402

NEW_TOKENS = 64


@dataclass(frozen=True)
class CompiledEverywhere(decoding.Decoder):
    """The static cache with transformers' compile on any device (its flag for testing on CPU)."""

    def generate_kwargs(self) -> dict:
        from transformers import CompileConfig

        config = CompileConfig(mode="default")
        config._compile_all_devices = True
        return {"cache_implementation": "static", "max_cache_len": self.cache_len, "compile_config": config}


def measure(model: str, device: str, reps: int, prompts: int) -> dict:
    spec = resolve(model)[0]
    loaded = engines.get(spec.engine).load(spec, LoadSettings(device=device))
    rendered = [loaded.render(p) for p in load_suite(str(REPO / "prompts" / "geography.txt")).prompts[:prompts]]
    loops = {}
    for name in ("eager", "static", "static+compile"):
        settings = GenSettings(max_new_tokens=NEW_TOKENS, stop_at_eos=False, decode=name.split("+")[0])
        loaded.prepare_decode(rendered, settings)
        if name == "static+compile":
            loaded.decoder = CompiledEverywhere("static", loaded.decoder.cache_len)
        started = time.perf_counter()
        loaded.generate(rendered[0], settings, 8)
        loops[name] = {
            "decoder": loaded.decoder,
            "settings": settings,
            "first_s": time.perf_counter() - started,
            "rates": [],
            "tokens": {},
        }
    for _ in range(reps):
        for i, r in enumerate(rendered):
            for loop in loops.values():
                loaded.decoder = loop["decoder"]
                made = loaded.generate(r, loop["settings"])
                loop["rates"].append(made.decode_tok_per_s)
                loop["tokens"][i] = made.token_ids
    eager = loops["eager"]["tokens"]
    return {
        name: {
            "decode_tok_per_s": statistics.median(loop["rates"]),
            "first_generate_s": loop["first_s"],
            "samples": len(loop["rates"]),
            "same_tokens_as_eager": loop["tokens"] == eager,
            "cache_len": loop["decoder"].cache_len,
        }
        for name, loop in loops.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=3)
    args = parser.parse_args()
    import torch

    out = {"device": args.device, "threads": torch.get_num_threads(), "new_tokens": NEW_TOKENS, "models": {}}
    for model in args.models.split(","):
        out["models"][model] = measure(model, args.device, args.reps, args.prompts)
        print(model, json.dumps(out["models"][model]), flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
