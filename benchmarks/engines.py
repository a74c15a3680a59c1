"""llama.cpp beside transformers on the offline ladder: speed side by side, and parity on the same weights.

    .venv/bin/python benchmarks/engines.py speed [--reps 5]       # decode, one process, interleaved
    .venv/bin/python benchmarks/engines.py parity RUN_DIR          # from a run of both engines' rungs

speed: per model, sizebench's transformers float32 session, sizebench's llama.cpp session and plain
llama-cpp-python (`create_completion(stream=True)`, what a user writes) on the same GGUF, greedy, the
same rendered prompts and 64 new tokens, interleaved A B C A B C so drift hits all three. Each is given
against this machine's limit: memory bandwidth (sizebench.measurement.bandwidth: torch copy of 1 GiB, read plus write, best of 5)
over the weight bytes one decode step reads (all weight tensors; the tied embedding is the output layer).

parity: reads a run's records (e.g. `sizebench bench --models offline,llama.cpp:offline ...`): per
model on each task, the share of items where llama.cpp's choice equals transformers', the paired 95%
interval of the accuracy difference (Tango), the largest |log-likelihood difference| of a choice, the
tasks stage's wall time on each engine, and the share of greedy prompt answers that are identical.
The last stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench import engines  # noqa: E402
from sizebench.analysis import paired  # noqa: E402
from sizebench.measurement import bandwidth  # noqa: E402
from sizebench.specs.settings import LoadSettings  # noqa: E402
from sizebench.planning.registry import resolve  # noqa: E402
from sizebench.specs.settings import GenSettings  # noqa: E402
from sizebench.stages.suites import load_suite  # noqa: E402
from sizebench.weights import gguf_check  # noqa: E402

MODELS = ("smollm2-135m", "gemma3-270m")
NEW_TOKENS = 64


def bandwidth_gib_s() -> float:
    return bandwidth.measure("cpu").bytes_per_s / 2**30


def _load(name: str, threads: int):
    spec = resolve(name)[0]
    return engines.get(spec.engine).load(spec, LoadSettings(device="cpu", threads=threads))


def plain_decode(llm, text: str) -> float:
    """Decode tok/s of llama-cpp-python alone: first streamed chunk to the last, greedy, no stop."""
    stamps = []
    started = time.perf_counter()
    for _ in llm.create_completion(text, max_tokens=NEW_TOKENS, temperature=0.0, top_k=1, stream=True):
        stamps.append(time.perf_counter() - started)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def speed(reps: int, threads: int) -> dict:
    import llama_cpp

    limit = bandwidth_gib_s()
    prompts = load_suite(str(REPO / "prompts" / "geography.txt")).prompts[:3]
    settings = GenSettings(max_new_tokens=NEW_TOKENS, stop_at_eos=False)
    out = {"bandwidth_gib_s": limit, "threads": threads, "new_tokens": NEW_TOKENS, "models": {}}
    for model in MODELS:
        hf, cpp = _load(model, threads), _load(f"llama.cpp:{model}", threads)
        plain = llama_cpp.Llama(
            str(cpp.gguf_path), n_ctx=cpp.context_window(), n_threads=threads, n_threads_batch=threads, verbose=False
        )
        rendered = [cpp.render(p) for p in prompts]
        sides = {  # each called within this iteration: the loop's variables are the ones meant
            "transformers_fp32": lambda r: hf.generate(r, settings).decode_tok_per_s,  # noqa: B023
            "sizebench_llama_cpp": lambda r: cpp.generate(r, settings).decode_tok_per_s,  # noqa: B023
            "plain_llama_cpp_python": lambda r: plain_decode(plain, r.text),  # noqa: B023
        }
        for run in sides.values():
            run(rendered[0])  # warm each side
        rates = {side: [] for side in sides}
        for _ in range(reps):
            for r in rendered:
                for side, run in sides.items():
                    rates[side].append(run(r))
        medians = {side: statistics.median(v) for side, v in rates.items()}
        _, tensors = gguf_check.tables(cpp.gguf_path)
        q_bytes = sum(t.nbytes for t in tensors)
        f32_bytes = hf.params * 4
        out["models"][model] = {
            "decode_tok_per_s": medians,
            "llama_cpp_over_transformers": medians["sizebench_llama_cpp"] / medians["transformers_fp32"],
            "sizebench_over_plain": medians["sizebench_llama_cpp"] / medians["plain_llama_cpp_python"],
            "limit_tok_per_s": {"llama_cpp": limit * 2**30 / q_bytes, "transformers_fp32": limit * 2**30 / f32_bytes},
            "weight_bytes_per_token": {"llama_cpp": q_bytes, "transformers_fp32": f32_bytes},
            "samples": {side: len(v) for side, v in rates.items()},
        }
        print(model, json.dumps(out["models"][model]), flush=True)
        plain.close()
        cpp.llm.close()
    return out


def _records(run: Path) -> list[dict]:
    from sizebench.runstore.store import RunStore

    return RunStore(run).records()


def parity(run: Path) -> dict:
    rows = _records(run)
    items = {(r["model"], r["task"]): r for r in rows if r["kind"] == "items"}
    walls = {r["model"]: r["wall_s"] for r in rows if r["kind"] == "task"}
    answers = {(r["model"], r["prompt_id"]): r["answer"] for r in rows if r["kind"] == "prompt"}
    out = {}
    for (model, task), cpp in sorted(items.items()):
        if not model.startswith("llama.cpp:") or "@" in model:
            continue
        base = model.removeprefix("llama.cpp:")
        hf = items.get((base, task))
        if hf is None:
            continue
        index = {d: i for i, d in enumerate(hf["doc_ids"])}
        shared = [(index[d], j) for j, d in enumerate(cpp["doc_ids"]) if d in index]
        same = sum(hf["chosen"][i] == cpp["chosen"][j] for i, j in shared)
        right = lambda rec, k: int(rec["chosen"][k] == rec["gold"][k])  # noqa: E731
        a_only = sum(right(cpp, j) and not right(hf, i) for i, j in shared)
        b_only = sum(right(hf, i) and not right(cpp, j) for i, j in shared)
        low, high = paired.tango_interval(a_only, b_only, len(shared))
        diff = max(abs(x - y) for i, j in shared for x, y in zip(hf["lls"][i], cpp["lls"][j]))
        prompts = [p for (m, p) in answers if m == base and (model, p) in answers]
        identical = sum(" ".join(answers[(base, p)].split()) == " ".join(answers[(model, p)].split()) for p in prompts)
        out[f"{base}/{task}"] = {
            "items": len(shared),
            "same_choice": same / len(shared),
            "acc_transformers": sum(right(hf, i) for i, _ in shared) / len(shared),
            "acc_llama_cpp": sum(right(cpp, j) for _, j in shared) / len(shared),
            "acc_difference_ci95": [float(low), float(high)],
            "max_abs_ll_difference": diff,
            "tasks_wall_s": {"transformers": walls.get(base), "llama_cpp": walls.get(model)},
            "prompts_identical": f"{identical}/{len(prompts)}",
        }
        print(f"{base}/{task}", json.dumps(out[f"{base}/{task}"]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("parity")
    p.add_argument("run", type=Path)
    args = parser.parse_args()
    print(json.dumps(speed(args.reps, args.threads) if args.what == "speed" else parity(args.run)))


if __name__ == "__main__":
    main()
