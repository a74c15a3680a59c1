"""The GPU check's one table (benchmarks/gpu_check.sh): both decode modes' runs, the anchors and the bandwidth.

    .venv/bin/python benchmarks/gpu_table.py --static RESULTS_DIR --eager RESULTS_DIR --bandwidth FILE.json \
        --anchors FILE.json [--append benchmarks/RESULTS.md]

Every figure is read from the runs' records through sizebench's own analysis (the summary and cost rows the
report shows), the bandwidth and anchors from the JSON lines the check wrote. Prints the Markdown; --append adds
it to the file. The issue's goals are stated as met or not, never enforced here (figures, not tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sizebench.analysis import cost, limit  # noqa: E402
from sizebench.analysis.per_model import summary  # noqa: E402
from sizebench.runstore import frames  # noqa: E402


def rows_of(results: Path) -> tuple[dict, str, dict, str | None]:
    """(model -> (summary row, cost), run id, environment, why overhead-bound or None) of the one run in a folder."""
    run_dir = max((results / "runs").iterdir())
    fr = frames.load([run_dir])
    df = summary(fr)
    costs = {c.model: c for c in cost.costs(fr, df)}
    rows = {r["model"]: (r, costs.get(r["model"])) for _, r in df.iterrows()}
    return rows, run_dir.name, (fr.metas[0].get("environment") or {}), limit.overhead_bound(limit.limits(fr))


def fmt(value, spec: str = "{:.1f}") -> str:
    return "-" if value is None or value != value else spec.format(value)


def pair(a, b, spec: str = "{:.1f}") -> str:
    return f"{fmt(a, spec)} / {fmt(b, spec)}"


def share(c) -> float | None:
    return c.bound.share * 100 if c is not None and c.bound is not None and c.bound.share is not None else None


def table(static: Path, eager: Path, bandwidth: dict, anchors: dict) -> str:
    s_rows, s_id, env, s_overhead = rows_of(static)
    e_rows, e_id, _, e_overhead = rows_of(eager)
    header = [
        "rung",
        "weights in memory MiB",
        "decode tok/s batch 1, static / eager",
        "% of limit, static / eager",
        "batched tok/s, static / eager",
        "batched / batch 1 (static)",
        "first generate s: batch 1, batched (static)",
        "memory to run MiB, static / eager",
        "median TTFT s, static / eager",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    goals, decode_static = [], []
    for model, (r, c) in s_rows.items():
        er, ec = e_rows.get(model, (None, None))
        batched = c.batched_tok_per_s if c else None
        single = c.single_tok_per_s if c else None
        decode_static.append((r.get("weights_mem_mb"), r.get("decode_tok_per_s"), model))
        lines.append(
            "| "
            + " | ".join(
                [
                    model,
                    fmt(r.get("weights_mem_mb"), "{:,.0f}"),
                    pair(r.get("decode_tok_per_s"), er.get("decode_tok_per_s") if er is not None else None),
                    pair(share(c), share(ec), "{:.0f}%"),
                    pair(batched, ec.batched_tok_per_s if ec else None)
                    + (f" (batch {c.batch_size})" if c and c.batch_size else ""),
                    fmt(batched / single if batched and single else None, "x{:.1f}"),
                    pair(c.warmup_s if c else None, c.batched_warmup_s if c else None),
                    pair(c.memory_mb if c else None, ec.memory_mb if ec else None, "{:,.0f}"),
                    pair(r.get("ttft_s"), er.get("ttft_s") if er is not None else None, "{:.3f}"),
                ]
            )
            + " |"
        )
        wanted = 30 if "3b" in model else 50
        if share(c) is not None:
            goals.append(
                f"{model} static decode {share(c):.0f}% of its limit (goal >= {wanted}%): "
                + ("met" if share(c) >= wanted else "NOT met")
            )
        if batched and single:
            goals.append(
                f"{model} batched / batch 1 x{batched / single:.1f} (goal >= x4): "
                + ("met" if batched / single >= 4 else "NOT met")
            )
    ordered = [d for _, d, _ in sorted(decode_static, key=lambda t: t[0] or 0)]
    if len(ordered) > 1 and all(d is not None for d in ordered):
        falls = all(a > b for a, b in zip(ordered, ordered[1:]))
        goals.append("static decode tok/s falls as size grows: " + ("met" if falls else "NOT met"))
    for name, overhead in (("static", s_overhead), ("eager", e_overhead)):
        goals.append(f"{name} run: " + (f"overhead-bound ({overhead})" if overhead else "not overhead-bound"))
    for mode in ("eager", "static"):
        if mode in anchors:
            lines.append(
                f"| plain `model.generate`, {mode} ({anchors['shape']} shape, {anchors['dtype']}) | "
                f"{anchors['weights_mib']:,.0f} | {anchors[mode]['tok_per_s']:.1f} | | | | "
                f"{anchors[mode]['first_calls_s'][0]:.1f} | | |"
            )
    gpu = ", ".join(env.get("gpu") or []) or bandwidth.get("device_name", "?")
    published = bandwidth.get("published_gb_s")
    head = (
        f"### GPU check: {gpu}, {time.strftime('%Y-%m-%d')} (runs {s_id} static, {e_id} eager; "
        f"commit {env.get('git_commit')})\n\n"
        f"Bandwidth: {bandwidth['bytes_per_s'] / 1e9:,.0f} GB/s measured (copy of "
        f"{bandwidth['copy_bytes'] / 2**30:g} GiB, read plus write, best of {len(bandwidth['runs_s'])})"
        + (f", {bandwidth['share_of_published']:.0%} of the published {published:,.0f} GB/s" if published else "")
        + f". Software: {', '.join(f'{k} {v}' for k, v in (env.get('versions') or {}).items() if v)}.\n"
    )
    return head + "\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {g}" for g in goals) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--static", type=Path, required=True)
    parser.add_argument("--eager", type=Path, required=True)
    parser.add_argument("--bandwidth", type=Path, required=True)
    parser.add_argument("--anchors", type=Path, required=True)
    parser.add_argument("--append", type=Path)
    args = parser.parse_args()
    last_line = lambda path: json.loads(path.read_text().strip().splitlines()[-1])  # noqa: E731
    text = table(args.static, args.eager, last_line(args.bandwidth), last_line(args.anchors))
    print(text)
    if args.append:
        with args.append.open("a", encoding="utf-8") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
