"""Issue 13's before/after figures, old code and new side by side in one run; writes benchmarks/speed.json.

    git worktree add /tmp/old b65e74b          # the code before (any checkout of it)
    .venv/bin/python benchmarks/speed.py --old /tmp/old [--sections sweep convert accuracy] [--limit 60]
    .venv/bin/python benchmarks/speed.py --render   # RESULTS.md's tables from speed.json

Sections (each adds to speed.json, so they can run apart):
- sweep: the warm default `make bench` command (`sizebench bench --models offline --prompts
  prompts/geography.txt --tasks sizebench_geo`, set-up done, GGUF cache warm), run as new, old, new:
  wall time, stage split, and the per-model median decode tok/s of each sweep (for the spread between
  whole sweeps). Both sides use the same venv; the old one gets its checkout first on PYTHONPATH.
- cold: what the first `make bench` pays per offline model: a worker-like process (torch and transformers
  imported before the clock) locating the model on an empty cache, which converts it, then loading it;
  old code and new, alternating; the converted files compared byte for byte.
- convert: the conversion alone as a process of its own (`python -m` the converter, imports included),
  old converter and new, alternating; the converted files compared byte for byte.
- accuracy: plain HFLM + simple_evaluate vs sizebench-hf (benchmarks/accuracy.py), per model.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "speed.json"
BENCH = [
    "-m",
    "sizebench",
    "bench",
    "--models",
    "offline",
    "--prompts",
    "prompts/geography.txt",
    "--tasks",
    "sizebench_geo",
]
MODELS = ("smollm2-135m", "gemma3-270m")
ORDER = ("old", "new", "new", "old")  # conversions, alternating; --pairs 1 keeps the first two


def _children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process and its own children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(checkout: Path, **extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(checkout), **extra}


def sweep_once(checkout: Path, label: str) -> dict:
    results = Path(tempfile.mkdtemp(prefix=f"sweep-{label}-"))
    clock = time.strftime("%H:%M", time.gmtime())
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(
        [sys.executable, *BENCH, "--results", str(results)],
        cwd=checkout,
        env=_env(checkout),
        capture_output=True,
        text=True,
    )
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        return {"label": label, "error": (done.stderr.strip().splitlines() or ["?"])[-1], "wall_s": wall}
    run = max((results / "runs").iterdir())
    from sizebench.runstore.store import RunStore

    rows = RunStore(run).records()
    split = {
        "load": sum(
            r["load_s"] + (r.get("convert_s") or 0) + (r.get("import_s") or 0) for r in rows if r["kind"] == "load"
        )
    }
    for stage in ("prompts", "tasks"):
        split[stage] = sum(r["wall_s"] for r in rows if r["kind"] == "stage" and r["stage"] == stage)
    split["other"] = wall - sum(split.values())
    decode, first_run, acc = {}, {}, {}
    for model in MODELS:
        prompts = [r for r in rows if r["kind"] == "prompt" and r["model"] == model]
        decode[model] = statistics.median(r["decode_tok_per_s"] for r in prompts if r["decode_tok_per_s"])
        # what one timed run per prompt would have reported from the same sweep (the first run of each)
        first_run[model] = statistics.median(
            r["decode_tok_per_s_runs"][0] for r in prompts if r["decode_tok_per_s_runs"]
        )
        acc[model] = {
            r["task"]: r["value"] for r in rows if r["kind"] == "task" and r["model"] == model and r["metric"] == "acc"
        }
    shutil.rmtree(results, ignore_errors=True)
    return {
        "label": label,
        "started_utc": clock,
        "wall_s": wall,
        "cpu_s": cpu,
        "split_s": split,
        "decode_median": decode,
        "decode_first_run_median": first_run,
        "acc": acc,
        "runs_per_prompt": max(len(r["decode_tok_per_s_runs"]) for r in rows if r["kind"] == "prompt"),
    }


def sweep(old: Path, labels: list[str], earlier: list[dict], save) -> dict:
    """Sweeps in the order given (default new, old, new), after any earlier ones kept by --append."""
    runs = list(earlier)
    for label in labels:
        runs.append(sweep_once(REPO if label == "new" else old, label))
        print("sweep", json.dumps(runs[-1]), flush=True)
        save({"runs": runs, "partial": True})  # a long section: what finished is kept
    return summarise_sweeps(runs)


def summarise_sweeps(runs: list[dict]) -> dict:
    new = [r for r in runs if r["label"] == "new" and "error" not in r]
    oldr = [r for r in runs if r["label"] == "old" and "error" not in r]
    out = {"runs": runs}
    if new and oldr:
        out["ratio_old_over_new"] = statistics.median(r["wall_s"] for r in oldr) / statistics.median(
            r["wall_s"] for r in new
        )
        out["cpu_ratio_old_over_new"] = statistics.median(r["cpu_s"] for r in oldr) / statistics.median(
            r["cpu_s"] for r in new
        )
    if len(new) > 1:  # (fastest - slowest) / mean of the new sweeps' per-model medians
        out["between_sweeps_decode_spread"] = {
            m: (max(v) - min(v)) / statistics.mean(v) for m in MODELS for v in [[r["decode_median"][m] for r in new]]
        }
    return out


def side_by_side(section: str, pairs: int, run_one) -> dict:
    """Per model: run_one(label, model) -> (wall s, CPU s, folder of converted files, scratch to delete),
    old and new alternating; the figures, and the converted files of each side compared byte for byte."""
    figures = []
    for model in MODELS:
        times, cpus, folders, scratch = {"old": [], "new": []}, {"old": [], "new": []}, {}, []
        for label in ORDER[: 2 * pairs]:
            wall, cpu, folder, mess = run_one(label, model)
            times[label].append(wall)
            cpus[label].append(cpu)
            scratch.append(mess)
            folders.setdefault(label, folder)
            print(f"{section} {model} {label} {wall:.1f} s (CPU {cpu:.1f})", flush=True)
        names = sorted(p.name for p in folders["new"].iterdir() if p.name != "COMPLETE")  # COMPLETE names the GGUF
        _, mismatch, errors = filecmp.cmpfiles(folders["old"], folders["new"], names, shallow=False)
        figures.append(
            {
                "model": model,
                "old_s": times["old"],
                "new_s": times["new"],
                "speedup": statistics.median(times["old"]) / statistics.median(times["new"]),
                "old_cpu_s": cpus["old"],
                "new_cpu_s": cpus["new"],
                "cpu_speedup": statistics.median(cpus["old"]) / statistics.median(cpus["new"]),
                "files": names,
                "identical_files": not mismatch and not errors,
            }
        )
        for mess in scratch:
            shutil.rmtree(mess, ignore_errors=True)
    return {"models": figures}


def _checked(done: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if done.returncode != 0:
        raise SystemExit(f"{what} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done


def convert(old: Path, pairs: int) -> dict:
    """The converter as a process of its own (`python -m`), imports included."""
    from sizebench.weights import sources
    from sizebench.planning.registry import builtin

    def run_one(label: str, model: str):
        checkout, module = (
            (old, "sizebench.weights.sources") if label == "old" else (REPO, "sizebench.weights.gguf_convert")
        )
        target = Path(tempfile.mkdtemp(prefix=f"i13-cache-{label}-")) / "out"
        started, cpu = time.perf_counter(), _children_cpu()
        _checked(
            subprocess.run(
                [sys.executable, "-m", module, str(sources.package_gguf(builtin(model))), str(target)],
                cwd=checkout,
                env=_env(checkout),
                capture_output=True,
                text=True,
            ),
            f"{label} conversion of {model}",
        )
        return time.perf_counter() - started, _children_cpu() - cpu, target, target.parent

    return side_by_side("convert", pairs, run_one)


COLD_LOAD = """
import json, resource, sys, time
import torch  # noqa: F401  imported before the clock, as in a worker
from transformers import AutoModelForCausalLM, AutoTokenizer
from sizebench.weights import sources
from sizebench.planning.registry import builtin

def cpu():
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))

started, used = time.perf_counter(), cpu()
located = sources.locate(builtin(sys.argv[1]))
AutoTokenizer.from_pretrained(located.path)
AutoModelForCausalLM.from_pretrained(located.path)
print(json.dumps({"wall_s": time.perf_counter() - started, "cpu_s": cpu() - used, "path": str(located.path)}))
"""


def cold(old: Path, pairs: int) -> dict:
    """A worker's first load of each offline model on an empty cache (conversion included), old code and new.

    Each run is a fresh process that imports torch and transformers before its clock starts, as a worker
    has by the time it locates its model; the GGUF files themselves are shared (a symlink to the warm
    cache's gguf-files), so only the conversion and the load are timed.
    """
    from sizebench.weights import sources

    def run_one(label: str, model: str):
        checkout = old if label == "old" else REPO
        cache = Path(tempfile.mkdtemp(prefix=f"i13-cold-{label}-"))
        (cache / "gguf-files").symlink_to(sources.cache_root() / "gguf-files")
        done = _checked(
            subprocess.run(
                [sys.executable, "-c", COLD_LOAD, model],
                cwd=checkout,
                capture_output=True,
                env=_env(checkout, SIZEBENCH_CACHE=str(cache)),
                text=True,
            ),
            f"{label} cold load of {model}",
        )
        run = json.loads(done.stdout.strip().splitlines()[-1])
        return run["wall_s"], run["cpu_s"], Path(run["path"]), cache

    return side_by_side("cold", pairs, run_one)


def accuracy(limit, reps: int) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import accuracy as acc_bench

    return {"models": [acc_bench.compare(m, limit, reps, 8) for m in MODELS]}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, no GPU, {platform.platform()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, default=Path("/tmp/old"))
    parser.add_argument("--sections", nargs="+", default=["sweep", "convert", "accuracy"])
    parser.add_argument("--limit", type=int, default=None, help="accuracy: items per task (default all)")
    parser.add_argument("--reps", type=int, default=2, help="accuracy: timed runs of each side")
    parser.add_argument("--pairs", type=int, default=2, choices=(1, 2), help="convert, cold: old/new pairs per model")
    parser.add_argument(
        "--sweeps",
        nargs="+",
        default=["new", "old", "new"],
        choices=("new", "old"),
        help="sweep: which code runs each whole sweep, in order",
    )
    parser.add_argument("--append", action="store_true", help="sweep: add to the sweeps already in speed.json")
    args = parser.parse_args()
    figures = {"machine": machine()}

    def save(section: str, result: dict) -> None:  # re-read: another section may be running beside this one
        current = json.loads(OUT.read_text()) if OUT.exists() else {}
        current.update(machine=figures["machine"], **{section: result})
        OUT.write_text(json.dumps(current, indent=1))

    for section in args.sections:
        started = time.strftime("%H:%M", time.gmtime())
        kept = json.loads(OUT.read_text()).get("sweep", {}) if args.append and OUT.exists() else {}
        earlier = kept.get("runs", [])
        result = {
            "sweep": lambda: sweep(args.old, args.sweeps, earlier, lambda partial: save("sweep", partial)),  # noqa: B023 (called at once)
            "convert": lambda: convert(args.old, args.pairs),
            "cold": lambda: cold(args.old, args.pairs),
            "accuracy": lambda: accuracy(args.limit, args.reps),
        }[section]()
        result.update(started_utc=started, load_average_after=os.getloadavg())
        if section == "sweep" and earlier:
            result.update(started_utc=kept.get("started_utc", "?"), appended_utc=started)  # partial saves drop it
        save(section, result)
        print(section, json.dumps(result), flush=True)


if __name__ == "__main__" and "--render" not in sys.argv:
    main()


# ---- RESULTS.md: the tables between two markers, the prose around them written by hand -------------

BEGIN, END = "<!-- speed.py:begin -->", "<!-- speed.py:end -->"


def _pair(a: list, b: list | None, fmt: str = "{:.0f}") -> str:
    """Wall seconds, then CPU seconds where recorded."""
    text = " / ".join(fmt.format(x) for x in a)
    return f"{text} (CPU {' / '.join(fmt.format(x) for x in b)})" if b else text


def render(f: dict) -> str:
    lines = [f"Machine: {f.get('machine', '?')}.", ""]
    for acc in (f.get("accuracy"), f.get("accuracy_earlier")):
        if not acc:
            continue
        lines += [
            f"### Accuracy stage (lm-eval, started {acc.get('started_utc', '?')} UTC; {acc.get('note', '')})",
            "",
            "| model | items | plain HFLM s | sizebench-hf s | speed-up wall | "
            "speed-up CPU | same choice | max abs dlogL | goal | met |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in acc["models"]:
            goal = 2.0 if m["model"].startswith("gemma") else 1.3
            ratios = [m["speedup"]] + ([m["cpu_speedup"]] if "cpu_speedup" in m else [])
            met = min(ratios) >= goal and m["max_abs_dlogL"] <= 1e-4 and m["same_choice"] == m["items"]
            lines.append(
                f"| {m['model']} | {m['items']} | {_pair(m['plain_s'], m.get('plain_cpu_s'))} | "
                f"{_pair(m['fast_s'], m.get('fast_cpu_s'))} | x{m['speedup']:.2f} | "
                f"{'x%.2f' % m['cpu_speedup'] if 'cpu_speedup' in m else '-'} | "
                f"{m['same_choice']}/{m['items']} | {m['max_abs_dlogL']:.1e} | >= x{goal}, <= 1e-4 | "
                f"{'yes' if met else '**no**'} |"
            )
        lines.append("")
    titles = {
        "cold": "Cold start: a worker's first load on an empty cache, conversion included (torch and "
        "transformers imported before the clock, as in a worker)",
        "convert": "The one-time GGUF -> safetensors conversion as a process of its own (imports included)",
    }
    for section, title in titles.items():
        conv = f.get(section)
        if not conv:
            continue
        lines += [
            f"### {title} (started {conv.get('started_utc', '?')} UTC)",
            "",
            "| model | old s | new s | speed-up wall | speed-up CPU | files byte-identical | goal | met |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for m in conv["models"]:
            lines.append(
                f"| {m['model']} | {_pair(m['old_s'], m['old_cpu_s'])} | {_pair(m['new_s'], m['new_cpu_s'])} | "
                f"x{m['speedup']:.2f} | x{m['cpu_speedup']:.2f} | {m['identical_files']} | >= x3 | "
                f"{'yes' if min(m['speedup'], m['cpu_speedup']) >= 3 and m['identical_files'] else '**no**'} |"
            )
        lines.append("")
    sw = f.get("sweep")
    if sw:
        sw = {**sw, **summarise_sweeps(sw["runs"])}  # figures from the runs, whichever order they were added in
        lines += [
            f"### Warm default sweep (`sizebench bench --models offline --prompts prompts/geography.txt "
            f"--tasks sizebench_geo`, started {sw.get('started_utc', '?')} UTC)",
            "",
            "| run | code | started UTC | wall s | CPU s | load s | prompts s | tasks s | other s | timed runs per prompt | "
            "decode tok/s smollm2 / gemma3 |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(sw["runs"], 1):
            if "error" in r:
                lines.append(f"| {i} | {r['label']} | {r.get('started_utc', '-')} | failed: {r['error']} |||||||")
                continue
            s = r["split_s"]
            d = r["decode_median"]
            lines.append(
                f"| {i} | {r['label']} | {r.get('started_utc', '-')} | {r['wall_s']:.0f} | {r.get('cpu_s', float('nan')):.0f} | "
                f"{s['load']:.0f} | {s['prompts']:.0f} | {s['tasks']:.0f} | {s['other']:.0f} | "
                f"{r['runs_per_prompt']} | {d['smollm2-135m']:.1f} / {d['gemma3-270m']:.1f} |"
            )
        if "ratio_old_over_new" in sw:
            lines += [
                "",
                f"Old / new: x{sw['ratio_old_over_new']:.2f} wall, x{sw['cpu_ratio_old_over_new']:.2f} CPU "
                "(goal: new <= half of old, i.e. >= x2).",
            ]
        spread = sw.get("between_sweeps_decode_spread")
        if spread:
            lines.append(
                "Decode tok/s, (fastest - slowest) / mean over the new sweeps: "
                + ", ".join(f"{m} {v * 100:.1f}%" for m, v in spread.items())
                + " (goal < 5%)."
            )
        lines.append("")
    return "\n".join(lines)


def write_results(path: Path = REPO / "benchmarks" / "RESULTS.md") -> None:
    text = path.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{render(json.loads(OUT.read_text()))}\n{END}{tail}")


if __name__ == "__main__" and "--render" in sys.argv:
    write_results()
