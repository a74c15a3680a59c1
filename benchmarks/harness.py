"""sizebench's own costs, measured: harness overhead, load caching, batching, the whole sweep, stability.

    .venv/bin/python benchmarks/harness.py            # all five, ~12 min on a 2-core CPU; writes harness.md
    .venv/bin/python benchmarks/harness.py --quick    # fewer prompts and repetitions, for a smoke run

Each comparison runs both sides in one process, interleaved A B A B, so machine drift hits both;
figures are medians and ratios. The last stdout line is one JSON object with every figure.

1. overhead: sizebench's prompt stage (Session.generate: chat format, TTFT timed apart, stop
   criteria) vs a plain `model.generate` loop written here, same model, prompts and greedy settings.
2. load: a cold GGUF load (conversion into an empty cache + load) vs a cached load, each in a fresh process.
3. throughput: sizebench's batched suite (batch 8) vs a plain left-padded batched `generate` loop,
   and vs one prompt at a time.
4. sweep: `make bench` (set-up already done) on the offline ladder, split by stage from its own records;
   this run also writes results/report.md.
5. stability: coefficient of variation of decode tok/s over 5 repetitions of one prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench.stages import generation  # noqa: E402
from sizebench.engines.hf import loader  # noqa: E402
from sizebench.measurement import measure  # noqa: E402
from sizebench.planning.registry import builtin  # noqa: E402
from sizebench.stages.suites import load_suite  # noqa: E402

MODEL = "smollm2-135m"


def plain_generate(model, tok, text: str, max_new_tokens: int) -> tuple[str, float]:
    """The reference: what a user writes with transformers alone."""
    import torch

    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    latency = time.perf_counter() - started
    return tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip(), latency


def overhead(loaded, prompts, reps: int, max_new_tokens: int) -> dict:
    settings = generation.GenSettings(max_new_tokens=max_new_tokens)
    rendered = [loaded.render(p) for p in prompts]
    loaded.generate(rendered[0], settings, 8)  # warm both paths
    plain_generate(loaded.model, loaded.tokenizer, rendered[0].text, 8)
    ratios, same = [], True
    for _ in range(reps):
        for r in rendered:
            ours = loaded.generate(r, settings)
            text, plain_latency = plain_generate(loaded.model, loaded.tokenizer, r.text, max_new_tokens)
            ratios.append(ours.latency_s / plain_latency)
            same &= ours.answer == text
    return {
        "overhead_ratio_median": statistics.median(ratios),
        "overhead_ratio_p90": _p90(ratios),
        "identical_answers": same,
        "overhead_pairs": len(ratios),
        "goal": "<= 1.03",
    }


def load_times() -> dict:
    code = (
        "import json,sys; from sizebench.engines.hf import loader; from sizebench.planning.registry import builtin;"
        f"l=loader.load(builtin('{MODEL}')); print(json.dumps([l.located.convert_s, l.load_s]))"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SIZEBENCH_CACHE": cache}
        cold = json.loads(
            subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO)
            .stdout.strip()
            .splitlines()[-1]
        )
        cached = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO
                )
                .stdout.strip()
                .splitlines()[-1]
            )[1]
            for _ in range(3)
        ]
    cold_total = cold[0] + cold[1]  # conversion (a child process: GGUF load + save) + load from the new cache
    return {
        "cold_load_s": cold_total,
        "cold_convert_s": cold[0],
        "cached_load_s": statistics.median(cached),
        "load_speedup": cold_total / statistics.median(cached),
        "goal": ">= 20",
    }


def throughput(loaded, prompts, batch: int, max_new_tokens: int, reps: int) -> dict:
    import torch

    settings = generation.GenSettings(max_new_tokens=max_new_tokens, batch_size=batch, repeat=1)
    tok, model = loaded.tokenizer, loaded.model
    texts = [loaded.render(p).text for p in prompts]

    def plain_batched() -> float:
        tok.padding_side = "left"
        tokens, started = 0, time.perf_counter()
        for i in range(0, len(texts), batch):
            enc = tok(texts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
                )
            for row in out[:, enc["input_ids"].shape[1] :].tolist():
                tokens += next((j + 1 for j, t in enumerate(row) if t == tok.eos_token_id), len(row))
        tok.padding_side = "right"
        return tokens / (time.perf_counter() - started)

    single = generation.run_prompts(loaded, prompts, settings, "bench", lambda r: None)
    ours, plain = [], []
    for _ in range(reps):
        ours.append(loaded.batched_throughput(prompts, settings, "bench", single).tok_per_s)
        plain.append(plain_batched())
    single_tps = sum(r.new_tokens for r in single) / sum(r.latency_s for r in single)
    return {
        "single_stream_tok_per_s": single_tps,
        "batched_tok_per_s": statistics.median(ours),
        "plain_batched_tok_per_s": statistics.median(plain),
        "batch_size": batch,
        "batched_vs_plain_ratio": statistics.median(ours) / statistics.median(plain),
        "batched_vs_single_speedup": statistics.median(ours) / single_tps,
        "goal": "ratio >= 0.95",
    }


def sweep() -> dict:
    """`make bench` itself (set-up already done): it also writes the report committed in results/."""
    started = time.perf_counter()
    done = subprocess.run(["make", "bench"], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"sweep_error": done.stderr.strip().splitlines()[-1:]}
    run = max((REPO / "results" / "runs").iterdir())
    from sizebench.runstore.store import RunStore

    rows = RunStore(run).records()
    split = {
        "load": sum(r["load_s"] + (r["convert_s"] or 0) + (r.get("import_s") or 0) for r in rows if r["kind"] == "load")
    }
    for stage in ("prompts", "tasks"):
        split[stage] = sum(r["wall_s"] for r in rows if r["kind"] == "stage" and r["stage"] == stage)
    split["other (process start, imports, report)"] = wall - sum(split.values())
    return {"sweep_wall_s": wall, "sweep_split_s": split, "run_id": run.name, "goal": "< 300 s"}


def stability(loaded, prompt, reps: int, max_new_tokens: int) -> dict:
    settings = generation.GenSettings(max_new_tokens=max_new_tokens)
    rendered = loaded.render(prompt)
    loaded.generate(rendered, settings)
    rates = [loaded.generate(rendered, settings).decode_tok_per_s for _ in range(reps)]
    return {"decode_tok_per_s_runs": rates, "decode_cv": measure.spread(rates), "goal": "< 0.05"}


def _p90(values):
    return sorted(values)[int(0.9 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "harness.md"))
    args = parser.parse_args()
    n_prompts, reps = (4, 1) if args.quick else (10, 3)
    prompts = load_suite(REPO / "prompts" / "geography.txt").prompts
    started = time.perf_counter()
    loaded = loader.load(builtin(MODEL))
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {__import__('torch').get_num_threads()}",
        "model": MODEL,
    }
    figures["overhead"] = overhead(loaded, prompts[:n_prompts], reps, 64)
    print("overhead", figures["overhead"], flush=True)
    figures["stability"] = stability(loaded, prompts[2], 5, 64)
    print("stability", figures["stability"], flush=True)
    figures["throughput"] = throughput(loaded, prompts[:16], 8, 64, reps)
    print("throughput", figures["throughput"], flush=True)
    figures["load"] = load_times()
    print("load", figures["load"], flush=True)
    if not args.skip_sweep:
        figures["sweep"] = sweep()
        print("sweep", figures["sweep"], flush=True)
    figures["benchmark_wall_s"] = time.perf_counter() - started
    Path(args.out).write_text(render(figures, " ".join(sys.argv[1:])))
    print(json.dumps(figures))


def render(f: dict, argv: str) -> str:
    o, s, t, ld = f["overhead"], f["stability"], f["throughput"], f["load"]
    rows = [
        (
            "Harness overhead: sizebench latency / plain generate (median of per-prompt ratios)",
            f"{o['overhead_ratio_median']:.3f} (p90 {o['overhead_ratio_p90']:.3f}, {o['overhead_pairs']} pairs); "
            f"identical answers: {o['identical_answers']}",
            o["goal"],
            o["overhead_ratio_median"] <= 1.03,
        ),
        (
            "Load: cold GGUF (convert + load) / cached",
            f"{ld['load_speedup']:.0f}x ({ld['cold_load_s']:.1f} s vs {ld['cached_load_s']:.2f} s)",
            ld["goal"],
            ld["load_speedup"] >= 20,
        ),
        (
            f"Batched (batch {t['batch_size']}) sizebench / plain batched generate",
            f"{t['batched_vs_plain_ratio']:.3f} ({t['batched_tok_per_s']:.1f} vs {t['plain_batched_tok_per_s']:.1f} tok/s; "
            f"single stream {t['single_stream_tok_per_s']:.1f} tok/s, x{t['batched_vs_single_speedup']:.1f})",
            t["goal"],
            t["batched_vs_plain_ratio"] >= 0.95,
        ),
        ("Decode tok/s stability (CV over 5 runs)", f"{s['decode_cv']:.3f}", s["goal"], s["decode_cv"] < 0.05),
    ]
    if "sweep" in f and "sweep_wall_s" in f["sweep"]:
        sw = f["sweep"]
        split = ", ".join(f"{k} {v:.0f} s" for k, v in sw["sweep_split_s"].items())
        rows.append(
            (
                "Whole sweep: `make bench` on the offline ladder (after set-up)",
                f"{sw['sweep_wall_s']:.0f} s ({split})",
                sw["goal"],
                sw["sweep_wall_s"] < 300,
            )
        )
    lines = [
        "# sizebench benchmarks",
        "",
        f"Recorded by `.venv/bin/python benchmarks/harness.py {argv}`".rstrip() + f" on {f['machine']}; "
        f"model {f['model']} (fp32, CPU). Whole benchmark: {f['benchmark_wall_s']:.0f} s.",
        "",
        "| figure | measured | goal | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {value} | {goal} | {'yes' if met else '**no**'} |" for name, value, goal, met in rows]
    lines += ["", "Raw figures (the script's last stdout line):", "", "```json", json.dumps(f, indent=1), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
