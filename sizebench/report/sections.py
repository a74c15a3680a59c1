"""The report's sections, each a pure function of the stored frames (or the summary built from them)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sizebench.analysis import reference
from sizebench.runstore.frames import Frames
from sizebench.report.markdown import fmt_num, cell, table
from sizebench.report.notes import decoding
from sizebench.analysis.per_model import stopped_early, task_names
from sizebench.analysis.sizes import SizeAxis, cost_only
from sizebench.report.page import Page

ANSWER_CHARS = 90
PROMPT_CHARS = 300  # a prompt too long for a context window would fill pages


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
        hub_kernels = meta.get("plan", {}).get("hub_kernels")
        if hub_kernels is not None:  # runs before the choice was recorded say nothing
            lines.append(
                "  - transformers' Hub kernels: "
                + (
                    "on (--hub-kernels: layers replaced by kernels fetched from the Hugging Face Hub)"
                    if hub_kernels
                    else "off (the layers as transformers ships them)"
                )
            )
    lines += [
        "",
        "Reproduce: `make bench` (offline ladder), or the command above; "
        "`sizebench report RUN_ID` re-renders this file from the stored records.",
    ]
    return "\n".join(lines)


def answers_section(fr: Frames, order: list[str]) -> str:
    prompts, skipped = fr["prompt"], fr.tables.get("prompt_skipped", pd.DataFrame())
    skipped = skipped if "model" in skipped else pd.DataFrame(columns=["model", "prompt_id", "reason"])
    if prompts.empty and skipped.empty:
        return ""
    shown = pd.concat([prompts, skipped]).sort_values(["run_id", "seq"], kind="stable")
    noise = cost_only(fr)  # random weights' answers are noise: their rungs are left out
    models = [m for m in order if m in set(shown["model"]) - noise]
    left_out = (
        " Rungs with random weights (cost only) are left out: their answers are noise."
        if noise & set(shown["model"])
        else ""
    )
    if not models:
        return f"## Answers side by side\n\n{left_out.strip()}" if left_out else ""
    first_seen = shown.drop_duplicates("prompt_id")[["prompt_id", "prompt", "expected"]]
    rows = []
    for _, p in first_seen.iterrows():
        row = [
            _trim(p["prompt"], PROMPT_CHARS),
            " / ".join(p["expected"]) if isinstance(p["expected"], list) and p["expected"] else "-",
        ]
        for model in models:
            hit = (
                prompts[(prompts["model"] == model) & (prompts["prompt_id"] == p["prompt_id"])]
                if not prompts.empty
                else prompts
            )
            if hit.empty:
                skip = skipped[(skipped["model"] == model) & (skipped["prompt_id"] == p["prompt_id"])]
                row.append(f"⏭ skipped: {skip.iloc[0]['reason']}" if not skip.empty else "-")
                continue
            answer = _trim(hit.iloc[0]["answer"], ANSWER_CHARS)
            mark = {True: "✅ ", False: "❌ "}.get(hit.iloc[0]["correct"], "")
            row.append(f"{mark}{answer}")
        rows.append(row)
    return (
        f"## Answers side by side\n\nAnswers from {decoding(fr)}, trimmed to "
        f"{ANSWER_CHARS} characters (full text in the run's records.jsonl). "
        "✅/❌: an expected answer (case- and accent-insensitive) appears in the answer or not. "
        "⏭: not sent to that model, the prompt and its answer would not fit in its context window."
        f"{left_out}\n\n" + table(["prompt", "expected"] + models, rows)
    )


def _trim(text, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tasks_section(fr: Frames, order: list[str]) -> str:
    tasks, skipped = fr["task"], fr["task_skipped"]
    parts = []
    if not tasks.empty:
        rows = []
        for model in order:
            for _, t in tasks[tasks["model"] == model].sort_values(["task", "metric"]).iterrows():
                size = stopped_early(fr, model, t["task"])
                rows.append(
                    [
                        model,
                        t["task"],
                        t["metric"],
                        f"{t['value']:.4f}",
                        fmt_num(t.get("stderr"), "{:.4f}"),
                        f"{int(t['n'])} of {size} (until decided)" if size else int(t["n"]),
                        fmt_num(t.get("num_fewshot"), "{:.0f}"),
                        fmt_num(t.get("wall_s"), "{:.1f}"),
                    ]
                )
        parts.append(
            "## Accuracy (lm-evaluation-harness)\n\n"
            + table(["model", "task", "metric", "value", "stderr", "n", "few-shot", "stage wall s"], rows)
        )
    if not skipped.empty:
        rows = [[s["model"], s["task"], s["reason"]] for _, s in skipped.iterrows()]
        parts.append("### Skipped tasks\n\n" + table(["model", "task", "why"], rows))
    return "\n\n".join(parts)


def published_section(fr: Frames) -> str:
    joined = reference.join(fr["task"], fr.models)
    if joined.empty:
        return ""
    rows = [
        [
            r["model"],
            r["task"],
            r["metric"],
            f"{r['value']:.4f}",
            fmt_num(r.get("stderr"), "{:.4f}"),
            f"{r['published']:.4f}",
            fmt_num(r["diff_in_stderr"], "{:+.1f}"),
        ]
        for _, r in joined.iterrows()
    ]
    return (
        "## Measured vs published\n\n"
        + reference.SOURCE_NOTE
        + "\n\n"
        + table(["model", "task", "metric", "measured", "stderr", "published", "difference (stderr units)"], rows)
    )


def conclusion_section(
    df: pd.DataFrame, size_axis: SizeAxis, judged_tasks: frozenset[str] = frozenset(), speed_ratios: bool = True
) -> str:
    """judged_tasks: tasks the paired verdict covers; the unpaired one-stderr sentence stays for the others.
    speed_ratios: False where the decode figures are overhead-bound (they would compare the loop, not the models)."""
    lines = ["## Conclusion"]
    ran = df[df["status"] == "ok"]
    axis = size_axis.column
    size = size_axis.format
    for task in [t for t in task_names(df) if t not in judged_tasks]:
        scored = [
            (r["model"], r[axis], *r[f"task:{task}"][:2])
            for _, r in ran.iterrows()
            if isinstance(r.get(f"task:{task}"), tuple)
        ]
        if not scored:
            continue
        best = max(scored, key=lambda s: s[2])
        enough = next(s for s in scored if s[2] >= best[2] - math.sqrt((s[3] or 0) ** 2 + (best[3] or 0) ** 2))
        lines.append(
            f"- **{task}**: best {best[0]} ({best[2]:.3f}); the smallest model within the standard error of "
            f"the difference (√(se² + se_best²), unpaired) of it is **{enough[0]}** ({size(enough[1])}, {enough[2]:.3f})."
        )
    if "right" in ran and ran["judged"].fillna(0).sum():
        top = ran["right"].max()
        leaders = ran[ran["right"] == top]
        lines.append(
            f"- Prompt suite: most right answers ({int(top)}/{int(leaders.iloc[0]['judged'])}) from "
            f"{' and '.join(leaders['model'])}" + (" (a tie)." if len(leaders) > 1 else ".")
        )
    steps = ran.reset_index(drop=True)
    for i in range(1, len(steps)):
        small, big = steps.iloc[i - 1], steps.iloc[i]
        ratios = []
        # Latency is left out: answers differ in length between models; TTFT and tok/s do not depend on it.
        speeds = (("ttft_s", "time to first token"), ("decode_tok_per_s", "decode speed")) if speed_ratios else ()
        for column, label in (("peak_rss_mb", "running peak memory"), *speeds):
            a, b = small.get(column), big.get(column)
            if a and b and not (pd.isna(a) or pd.isna(b)):
                ratios.append(f"{label} x{b / a:.2f}")
        if ratios:
            grows = "params" if axis == "params" else "weight memory"
            step = (
                f"x{big[axis] / small[axis]:.1f} {grows}"
                if size_axis.smaller(small["model"], big["model"])
                else f"equal in {size_axis.label}"
            )
            lines.append(f"- Going up from {small['model']} to {big['model']} ({step}): {', '.join(ratios)}.")
    failed = df[df["status"].str.startswith(("failed", "unavailable", "interrupted"))]
    for _, r in failed.iterrows():
        outcome = "did not finish" if r["status"].startswith("interrupted") else "has no result"
        lines.append(f"- {r['model']} {outcome}: {cell(r['status'])}.")
    return "\n".join(lines) if len(lines) > 1 else ""


def protocol_section(fr: Frames) -> str:
    return PROTOCOL.replace("with greedy decoding", f"with {decoding(fr)}")


PROTOCOL = """## How this was measured

- Each model runs in its own worker process; peak RSS is that process's high-water mark (VmHWM),
  CUDA peak is `torch.cuda.max_memory_allocated` (GPU runs only).
- Load: `from_pretrained` of tokenizer and model from local files, after the model's Python class is
  imported (recorded apart as `import_s`); GGUF models are dequantized once into a safetensors cache
  (that one-time conversion is recorded apart as `convert_s`).
- Prompts: one warm-up generation on a short fixed prompt, then each prompt `repeat` times (default once) with greedy
  decoding; TTFT is a one-token generate of the prompt (prefill and the first token), timed apart from the
  full generate, decode tok/s = (new tokens - 1) / (latency - TTFT); figures are medians over repetitions,
  then over prompts. A prompt whose tokens plus
  the new-token limit exceed a model's context window is not sent to it (⏭ in the answers).
- Accuracy: lm-evaluation-harness on the already loaded model, through its `sizebench-hf` model class
  (HFLM computing logits only where they are read; same log-likelihoods); stderr as lm-eval reports it."""


def page_metadata(p: Page) -> str:
    return metadata_section(p.fr)


def page_conclusion(p: Page) -> str:
    return conclusion_section(
        p.df, p.a.size_axis, frozenset(v.outcomes.name for v in p.a.verdicts), p.a.overhead is None
    )


def page_tasks(p: Page) -> str:
    return tasks_section(p.fr, p.order)


def page_published(p: Page) -> str:
    return published_section(p.fr)


def page_scaling_plots(p: Page) -> str:
    drawn = [f for f in p.plot_files if not f.endswith("agreement.png")]
    return "## Scaling plots\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in drawn) if drawn else ""


def page_answers(p: Page) -> str:
    return answers_section(p.fr, p.order)


def page_protocol(p: Page) -> str:
    return protocol_section(p.fr)
