"""How far the agreement stage's stored form is from the exact KL divergence, on the offline ladder.

    .venv/bin/python benchmarks/agreement.py [--chunks N] [--out benchmarks/agreement-approx.json]

Per model: the reference (transformers float32, the shipped GGUF dequantized) and each variant
(bf16, int8, and llama.cpp as shipped, q8_0 and q2_k) are fed the agreement corpus exactly as the stage
feeds it (`sizebench.stages.agreement_stage.sequences`). For every scored token the exact KL divergence
over all ids is computed from both full rows, beside the figure from the reference's stored form at
several top-k sizes (the stage stores TOP_K). Printed per variant: the exact mean KLD, and for each k
the stored form's mean relative to it and the p99 relative to the exact p99. The last stdout line is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench import engines  # noqa: E402
from sizebench.specs.settings import LoadSettings  # noqa: E402
from sizebench.measurement import divergence  # noqa: E402
from sizebench.planning.registry import resolve  # noqa: E402
from sizebench.stages import agreement_stage as agreement  # noqa: E402

MODELS = ("smollm2-135m", "gemma3-270m")
KS = (32, 64, 128, 256)
JOB = LoadSettings(device="cpu")


def load(expression: str):
    spec = resolve(expression)[0]
    return engines.get(spec.engine).load(spec, JOB)


def measure(model: str, chunks: int) -> dict:
    ref = load(f"{model}@fp32")
    seqs = agreement.sequences(ref, [])[:chunks]
    vocab = min(len(ref.vocabulary()), ref.next_token_logits(seqs[0].ids, len(seqs[0].ids) - 2).shape[1])
    ref_rows = [ref.next_token_logits(s.ids, s.first) for s in seqs]
    del ref
    out = {}
    for expression in (
        f"{model}@bf16",
        f"{model}@int8",
        f"llama.cpp:{model}",
        f"llama.cpp:{model}@q8_0",
        f"llama.cpp:{model}@q2_k",
    ):
        variant = load(expression)
        exact, stored = [], {k: [] for k in KS}
        for s, a in zip(seqs, ref_rows, strict=True):
            b = variant.next_token_logits(s.ids, s.first)
            nexts = np.asarray(s.ids[s.first + 1 :])
            for lo in range(0, len(a), agreement.BLOCK):
                block_a, block_b = a[lo : lo + agreement.BLOCK], b[lo : lo + agreement.BLOCK]
                exact.append(divergence.exact_kld(block_a, block_b, vocab))
                for k in KS:
                    compact = divergence.compact(block_a, nexts[lo : lo + agreement.BLOCK], vocab, k)
                    stored[k].append(divergence.per_token(compact, block_b, vocab).kld)
        del variant
        exact = np.concatenate(exact)
        row = {"tokens": len(exact), "exact_mean": float(exact.mean()), "exact_p99": float(np.percentile(exact, 99))}
        for k in KS:
            approx = np.concatenate(stored[k])
            row[f"k{k}_mean_ratio"] = float(approx.mean() / exact.mean())
            row[f"k{k}_p99_ratio"] = float(np.percentile(approx, 99) / np.percentile(exact, 99))
        out[expression] = row
        print(expression, json.dumps(row), flush=True)
    return {"reference": f"{model}@fp32", "vocab": vocab, "variants": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "agreement-approx.json"))
    parser.add_argument(
        "--chunks", type=int, default=agreement.MAX_CHUNKS, help="corpus chunks (the stage's by default)"
    )
    args = parser.parse_args()
    figures = {model: measure(model, args.chunks) for model in MODELS}
    figures["chunks"] = args.chunks
    figures["stored_top_k"] = divergence.TOP_K
    Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
