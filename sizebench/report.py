"""The report: results/report.md and a terminal summary, rendered only from stored runs.

The same Markdown sections go to the file and (the short ones) to the terminal through rich.
Rendering is deterministic: the same runs give byte-identical Markdown.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markdown import Markdown

from sizebench import frames as frames_module
from sizebench import reference
from sizebench.frames import Frames

ANSWER_CHARS = 90
PRIMARY_METRIC = "acc"


def cell(value) -> str:
    """Text safe inside a Markdown table cell: no pipe, newline, backtick or HTML can break the table."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    text = " ".join(text.split())
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("`", "\\`"), ("<", "&lt;"), (">", "&gt;"),
                          ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(char, escaped)
    return text


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _params(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    if value >= 1e9:
        return f"{value / 1e9:.2f}B"
    return f"{value / 1e6:.0f}M" if value >= 1e7 else f"{value / 1e6:.2f}M"


# ---- the model summary ---------------------------------------------------------------------------

def summary(fr: Frames) -> pd.DataFrame:
    """One row per model ordered by parameter count, with every figure the summary table shows."""
    rows = []
    for _, m in fr.models.iterrows():
        name = m["model"]
        row = {"model": name, "params": m["params_published"], "status": "not run"}
        load = _rows(fr["load"], name)
        if not load.empty:
            last = load.iloc[-1]
            row.update(params=last["params"], weights_mb=last["weights_mb"], load_s=last["load_s"],
                       convert_s=last.get("convert_s"), dtype=last["dtype"], device=last["device"],
                       n_devices=last["n_devices"], status="ok")
        peaks = [v for v in list(load.get("peak_rss_mb", [])) + list(_rows(fr["stage"], name).get("peak_rss_mb", []))]
        row["peak_rss_mb"] = max(peaks) if peaks else None
        cuda = [v for v in list(load.get("cuda_peak_mb", [])) + list(_rows(fr["stage"], name).get("cuda_peak_mb", []))
                if v is not None and not (isinstance(v, float) and math.isnan(v))]
        row["cuda_peak_mb"] = max(cuda) if cuda else None
        prompts = _rows(fr["prompt"], name)
        if not prompts.empty:
            row["ttft_s"] = prompts["ttft_s"].median()
            row["latency_s"] = prompts["latency_s"].median()
            row["decode_tok_per_s"] = prompts["decode_tok_per_s"].dropna().median()
            judged = prompts[prompts["correct"].notna()]
            row["right"], row["judged"] = int(judged["correct"].astype(bool).sum()), len(judged)
        throughput = _rows(fr["throughput"], name)
        if not throughput.empty:
            row["batched_tok_per_s"] = throughput.iloc[-1]["tok_per_s"]
            row["batch_size"] = throughput.iloc[-1]["batch_size"]
        tasks = _rows(fr["task"], name)
        for _, t in tasks[tasks["metric"] == PRIMARY_METRIC].iterrows() if not tasks.empty else []:
            row[f"task:{t['task']}"] = (t["value"], t["stderr"], t["n"])
        failed = _rows(fr["failed"], name)
        if not failed.empty:
            row["status"] = f"failed ({failed.iloc[-1]['stage']}): {failed.iloc[-1]['reason']}"
        rows.append(row)
    df = pd.DataFrame(rows)
    df["_sort"] = df["params"].fillna(float("inf"))
    return df.sort_values(["_sort", "model"], kind="stable").drop(columns="_sort").reset_index(drop=True)


def _rows(df: pd.DataFrame, model: str) -> pd.DataFrame:
    return df[df["model"] == model] if not df.empty and "model" in df else pd.DataFrame()


def task_names(df: pd.DataFrame) -> list[str]:
    return sorted(c.removeprefix("task:") for c in df.columns if c.startswith("task:"))


def _acc(value) -> str:
    if not isinstance(value, tuple):
        return "-"
    acc, stderr, _ = value
    return f"{acc:.3f} ± {stderr:.3f}" if stderr is not None and not math.isnan(stderr) else f"{acc:.3f}"


def summary_table(df: pd.DataFrame) -> str:
    tasks = task_names(df)
    prefix = os.path.commonprefix(tasks) if len(tasks) > 1 else ""
    prefix = prefix[:prefix.rfind("_") + 1]  # "sizebench_geo_capitals" -> "capitals" in the header
    header = ["model", "params", "device", "weights MB", "load s", "peak RSS MB", "CUDA peak MB", "median TTFT s",
              "decode tok/s", "prompts right"] + [f"{t.removeprefix(prefix)} acc" for t in tasks] + ["status"]
    rows = []
    for _, r in df.iterrows():
        score = f"{r['right']}/{r['judged']}" if "judged" in r and not pd.isna(r.get("judged")) and r["judged"] else "-"
        devices = "-" if pd.isna(r.get("device")) else f"{r['device']} {r['dtype']}" + (
            f" x{int(r['n_devices'])}" if r.get("n_devices", 1) > 1 else "")
        rows.append([r["model"], _params(r["params"]), devices, _num(r.get("weights_mb"), "{:.0f}"), _num(r.get("load_s")),
                     _num(r.get("peak_rss_mb"), "{:.0f}"), _num(r.get("cuda_peak_mb"), "{:.0f}"),
                     _num(r.get("ttft_s"), "{:.3f}"), _num(r.get("decode_tok_per_s"), "{:.1f}"), score]
                    + [_acc(r.get(f"task:{t}")) for t in tasks] + [r["status"]])
    filled = [i for i in range(len(header)) if i == 0 or any(row[i] not in ("-", "") for row in rows)]
    return table([header[i] for i in filled], [[row[i] for i in filled] for row in rows])


# ---- sections -----------------------------------------------------------------------------------

def metadata_section(fr: Frames) -> str:
    lines = ["## Run"]
    for meta in fr.metas:
        env = meta.get("environment", {})
        versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items() if v)
        gpu = ", ".join(env.get("gpu") or []) or "none"
        lines += [
            f"- **{cell(meta['run_id'])}** ({cell(meta.get('status', 'running'))}), started {cell(env.get('started'))}",
            f"  - command: `{meta.get('command', '').replace('`', '')}`",
            f"  - machine: {cell(env.get('cpu'))}, {env.get('cpu_count')} CPUs, GPU: {cell(gpu)}; {cell(env.get('platform'))}",
            f"  - software: Python {cell(env.get('python'))}, {cell(versions)}; commit {cell(env.get('git_commit'))}",
        ]
    lines += ["", "Reproduce: `make bench` (offline ladder), or the command above; "
              "`sizebench report RUN_ID` re-renders this file from the stored records."]
    return "\n".join(lines)


def answers_section(fr: Frames, order: list[str]) -> str:
    prompts = fr["prompt"]
    if prompts.empty:
        return ""
    models = [m for m in order if m in set(prompts["model"])]
    first_seen = prompts.drop_duplicates("prompt_id")[["prompt_id", "prompt", "expected"]]
    rows = []
    for _, p in first_seen.iterrows():
        row = [p["prompt"], " / ".join(p["expected"]) if isinstance(p["expected"], list) and p["expected"] else "-"]
        for model in models:
            hit = prompts[(prompts["model"] == model) & (prompts["prompt_id"] == p["prompt_id"])]
            if hit.empty:
                row.append("-")
                continue
            answer = " ".join(str(hit.iloc[0]["answer"]).split())
            answer = answer if len(answer) <= ANSWER_CHARS else answer[:ANSWER_CHARS - 1] + "…"
            mark = {True: "✅ ", False: "❌ "}.get(hit.iloc[0]["correct"], "")
            row.append(f"{mark}{answer}")
        rows.append(row)
    return ("## Answers side by side\n\nGreedy answers, trimmed to "
            f"{ANSWER_CHARS} characters (full text in the run's records.jsonl). "
            "✅/❌: an expected answer (case- and accent-insensitive) appears in the answer or not.\n\n"
            + table(["prompt", "expected"] + models, rows))


def tasks_section(fr: Frames, order: list[str]) -> str:
    tasks, skipped = fr["task"], fr["task_skipped"]
    parts = []
    if not tasks.empty:
        rows = []
        for model in order:
            for _, t in tasks[tasks["model"] == model].sort_values(["task", "metric"]).iterrows():
                rows.append([model, t["task"], t["metric"], f"{t['value']:.4f}", _num(t.get("stderr"), "{:.4f}"),
                             int(t["n"]), _num(t.get("num_fewshot"), "{:.0f}"), _num(t.get("wall_s"), "{:.1f}")])
        parts.append("## Accuracy (lm-evaluation-harness)\n\n"
                     + table(["model", "task", "metric", "value", "stderr", "n", "few-shot", "stage wall s"], rows))
    if not skipped.empty:
        rows = [[s["model"], s["task"], s["reason"]] for _, s in skipped.iterrows()]
        parts.append("### Skipped tasks\n\n" + table(["model", "task", "why"], rows))
    return "\n\n".join(parts)


def published_section(fr: Frames) -> str:
    joined = reference.join(fr["task"], fr.models)
    if joined.empty:
        return ""
    rows = [[r["model"], r["task"], f"{r['value']:.4f}", _num(r.get("stderr"), "{:.4f}"), f"{r['published']:.4f}",
             _num(r["diff_in_stderr"], "{:+.1f}")] for _, r in joined.iterrows()]
    return ("## Measured vs published\n\n" + reference.SOURCE_NOTE + "\n\n"
            + table(["model", "task", "measured acc", "stderr", "published acc", "difference (stderr units)"], rows))


def conclusion_section(df: pd.DataFrame) -> str:
    lines = ["## Conclusion"]
    ran = df[df["status"] == "ok"]
    for task in task_names(df):
        scored = [(r["model"], r["params"], *r[f"task:{task}"][:2]) for _, r in ran.iterrows()
                  if isinstance(r.get(f"task:{task}"), tuple)]
        if not scored:
            continue
        best = max(scored, key=lambda s: s[2])
        enough = next(s for s in scored
                      if s[2] >= best[2] - math.sqrt((s[3] or 0) ** 2 + (best[3] or 0) ** 2))
        lines.append(f"- **{task}**: best {best[0]} ({best[2]:.3f}); the smallest model within one standard error "
                     f"of it is **{enough[0]}** ({_params(enough[1])}, {enough[2]:.3f}).")
    if "right" in ran and ran["judged"].fillna(0).sum():
        top = ran["right"].max()
        leaders = ran[ran["right"] == top]
        lines.append(f"- Prompt suite: most right answers ({int(top)}/{int(leaders.iloc[0]['judged'])}) from "
                     f"{' and '.join(leaders['model'])}" + (" (a tie)." if len(leaders) > 1 else "."))
    steps = ran.reset_index(drop=True)
    for i in range(1, len(steps)):
        small, big = steps.iloc[i - 1], steps.iloc[i]
        ratios = []
        # Latency is left out: answers differ in length between models; TTFT and tok/s do not depend on it.
        for column, label in (("peak_rss_mb", "peak memory"), ("ttft_s", "time to first token"),
                              ("decode_tok_per_s", "decode speed")):
            a, b = small.get(column), big.get(column)
            if a and b and not (pd.isna(a) or pd.isna(b)):
                ratios.append(f"{label} x{b / a:.2f}")
        if ratios:
            lines.append(f"- Going up from {small['model']} to {big['model']} "
                         f"(x{big['params'] / small['params']:.1f} params): {', '.join(ratios)}.")
    failed = df[df["status"].str.startswith("failed")]
    for _, r in failed.iterrows():
        lines.append(f"- {r['model']} has no result: {cell(r['status'])}.")
    return "\n".join(lines) if len(lines) > 1 else ""


PROTOCOL = """## How this was measured

- Each model runs in its own worker process; peak RSS is that process's high-water mark (VmHWM),
  CUDA peak is `torch.cuda.max_memory_allocated` (GPU runs only).
- Load: `from_pretrained` of tokenizer and model from local files, after the model's Python class is
  imported (recorded apart as `import_s`); GGUF models are dequantized once into a safetensors cache
  (that one-time conversion is recorded apart as `convert_s`).
- Prompts: one warm-up generation, then each prompt `repeat` times with greedy decoding; TTFT is the
  time to the first new token (seen by a streamer), decode tok/s = (new tokens - 1) / (latency - TTFT);
  figures are medians over repetitions, then over prompts.
- Accuracy: lm-evaluation-harness on the already loaded model; stderr as lm-eval reports it."""


def render(fr: Frames, plot_files: list[str], df: pd.DataFrame | None = None) -> str:
    df = summary(fr) if df is None else df
    order = list(df["model"])
    sections = ["# sizebench report", metadata_section(fr),
                "## Summary\n\nOne row per model, smallest first. Accuracy is lm-eval `acc` ± stderr.\n\n"
                + summary_table(df),
                conclusion_section(df), tasks_section(fr, order), published_section(fr),
                "## Scaling plots\n\n" + "\n\n".join(f"![{Path(p).stem}]({p})" for p in plot_files) if plot_files else "",
                answers_section(fr, order), PROTOCOL]
    return "\n\n".join(s for s in sections if s) + "\n"


def publish(run_dirs: list[Path], results_dir: Path, console: Console, latest_only: bool = True) -> Path:
    """Write results/report.md (and plots) and print the summary, answers and conclusion."""
    from sizebench import plots

    fr = frames_module.load(run_dirs, latest_only)
    df = summary(fr)
    results_dir.mkdir(parents=True, exist_ok=True)
    plot_files = plots.write(df, results_dir)
    path = results_dir / "report.md"
    path.write_text(render(fr, plot_files, df), encoding="utf-8")
    console.print(Markdown("## Summary\n\n" + summary_table(df)))
    answers = answers_section(fr, list(df["model"]))
    if answers:
        console.print(Markdown(answers))
    conclusion = conclusion_section(df)
    if conclusion:
        console.print(Markdown(conclusion))
    console.print(f"report: {path}", highlight=False)
    return path
