"""The lm-eval stage, plain lm-eval against sizebench-hf: same model, tasks and batch size, one process.

    .venv/bin/python benchmarks/accuracy.py [--models smollm2-135m gemma3-270m] [--limit N] [--reps 2]

Per model: a short warm-up of both, then A B B A ... (HFLM + simple_evaluate vs the sizebench-hf
class + simple_evaluate) so drift hits both sides; the figure is the ratio of median wall times. Per
item it compares the chosen answer (argmax of the choices' log-likelihoods) and reports the largest
|difference| of a log-likelihood. The last stdout line is one JSON object.
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

from sizebench.stages import evaluation  # noqa: E402
from sizebench.engines.hf import loader  # noqa: E402
from sizebench.planning.registry import builtin  # noqa: E402

TASKS = ["sizebench_geo"]


def one_run(cls, loaded, manager, limit, batch_size: int) -> tuple[float, dict]:
    """Wall seconds of HFLM construction + simple_evaluate, and what it scored (CPU seconds in out)."""
    import lm_eval

    started, cpu = time.perf_counter(), time.process_time()
    lm = cls(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=batch_size, max_batch_size=64)
    results = lm_eval.simple_evaluate(
        model=lm, tasks=TASKS, task_manager=manager, limit=limit, log_samples=True, bootstrap_iters=100000
    )
    wall = time.perf_counter() - started
    scores = {
        (task, s["doc_id"]): [r[0][0] for r in s["resps"]] for task, rows in results["samples"].items() for s in rows
    }
    accs = {t: m.get("acc,none") for t, m in results["results"].items() if "acc,none" in m}
    return wall, {
        "scores": scores,
        "acc": accs,
        "pack_check": getattr(lm, "pack_check", None),
        "cpu_s": time.process_time() - cpu,
    }


def compare(name: str, limit, reps: int, batch_size: int) -> dict:
    from lm_eval.models.huggingface import HFLM

    from sizebench.engines.hf.fast_lm import SizebenchLM

    loaded = loader.load(builtin(name))
    manager = evaluation.task_manager()
    one_run(HFLM, loaded, manager, 3, batch_size)  # warm-up: imports, data sets, allocator
    one_run(SizebenchLM, loaded, manager, 3, batch_size)
    plain_s, fast_s, plain, fast, cpu = [], [], None, None, {"plain": [], "fast": []}
    for rep in range(reps):
        order = [(HFLM, plain_s), (SizebenchLM, fast_s)]
        for cls, walls in order if rep % 2 == 0 else order[::-1]:
            wall, out = one_run(cls, loaded, manager, limit, batch_size)
            walls.append(wall)
            if cls is HFLM:
                plain = out
            else:
                fast = out
            cpu["plain" if cls is HFLM else "fast"].append(out["cpu_s"])
            print(f"{name} {cls.__name__} {wall:.1f} s", flush=True)
    keys = sorted(plain["scores"])
    diffs = [abs(a - b) for k in keys for a, b in zip(plain["scores"][k], fast["scores"][k], strict=True)]
    same = sum(_argmax(plain["scores"][k]) == _argmax(fast["scores"][k]) for k in keys)
    return {
        "model": name,
        "items": len(keys),
        "batch_size": batch_size,
        "limit": limit,
        "plain_s": plain_s,
        "fast_s": fast_s,
        "speedup": statistics.median(plain_s) / statistics.median(fast_s),
        "plain_cpu_s": cpu["plain"],
        "fast_cpu_s": cpu["fast"],
        "cpu_speedup": statistics.median(cpu["plain"]) / statistics.median(cpu["fast"]),
        "same_choice": same,
        "max_abs_dlogL": max(diffs),
        "acc_plain": plain["acc"],
        "acc_fast": fast["acc"],
        "pack_check": fast["pack_check"],
        "dtype": str(loaded.model.dtype),
        "attention": loaded.model.config._attn_implementation,
    }


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=evaluation.CPU_AUTO_BATCH)
    args = parser.parse_args()
    figures = [compare(name, args.limit, args.reps, args.batch_size) for name in args.models]
    for f in figures:
        print(
            f"{f['model']}: x{f['speedup']:.2f}, same choice {f['same_choice']}/{f['items']}, "
            f"max |dlogL| {f['max_abs_dlogL']:.2e}",
            flush=True,
        )
    print(json.dumps({"accuracy": figures}))


if __name__ == "__main__":
    main()
