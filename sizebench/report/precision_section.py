"""The precision section: the same model at several precisions, and alternatives of about equal memory.

A variant is `model@precision`; its reference is the variant of the same model with the most bytes per
parameter (fp32 before bf16 before int8). For each variant: weight memory measured from storage, bytes
per parameter, speed, how many prompt answers differ from the reference's (greedy text, compared
whole), and the accuracy on every item of the lm-eval tasks against the reference's.
"""

from __future__ import annotations

import pandas as pd

from sizebench.runstore.frames import Frames
from sizebench.analysis.sizes import cost_only
from sizebench.report.markdown import fmt_num, table
from sizebench.analysis.per_model import _rows, task_names
from sizebench.report.page import Page

EQUAL_MEMORY = 1.25  # two variants whose weight memories are within this ratio count as "about equal"


def variants(fr: Frames, df: pd.DataFrame) -> pd.DataFrame:
    """The measured rows with precision figures: base model, bytes/param, pooled accuracy, reference."""
    ok = df[(df["status"] == "ok") & df.get("weights_mem_mb", pd.Series(dtype=float)).notna()].copy()
    if ok.empty:
        return ok
    ok["bytes_per_param"] = ok["weights_mem_mb"] * 2**20 / ok["params"]
    tasks = fr["task"]
    pooled = {}
    for model in ok["model"]:
        rows = _rows(tasks, model)
        rows = rows[rows["metric"] == "acc"] if not rows.empty else rows
        pooled[model] = (rows["value"] * rows["n"]).sum() / rows["n"].sum() if not rows.empty else None
    ok["pooled_acc"] = ok["model"].map(pooled)
    ok["reference"] = (
        ok.groupby("base")["bytes_per_param"].transform(lambda s: s.idxmax()).map(lambda i: ok.loc[i, "model"])
    )
    return ok


def answer_changes(fr: Frames, model: str, reference: str) -> tuple[int, int, int, int]:
    """(answers differing from the reference's, prompts compared, right -> wrong, wrong -> right)."""
    prompts = fr["prompt"]
    if prompts.empty or model == reference:
        return 0, 0, 0, 0
    mine, ref = _rows(prompts, model).set_index("prompt_id"), _rows(prompts, reference).set_index("prompt_id")
    common = mine.index.intersection(ref.index)
    norm = lambda s: s.map(lambda a: " ".join(str(a).split()))  # noqa: E731 - whitespace never counts
    differ = int((norm(mine.loc[common, "answer"]) != norm(ref.loc[common, "answer"])).sum())
    judged = common[mine.loc[common, "correct"].notna() & ref.loc[common, "correct"].notna()]
    was, now = ref.loc[judged, "correct"].astype(bool), mine.loc[judged, "correct"].astype(bool)
    return differ, len(common), int((was & ~now).sum()), int((~was & now).sum())


def precision_section(fr: Frames, df: pd.DataFrame) -> str:
    v = variants(fr, df)
    if v.empty or v["base"].nunique() == len(v):
        return ""  # no model was measured at more than one precision
    tasks = task_names(df)
    rows = []
    noise = cost_only(fr)  # random weights' answers are noise: never compared
    for _, r in v.iterrows():
        differ, compared, lost, gained = answer_changes(fr, r["model"], r["reference"])
        changes = (
            "reference"
            if r["model"] == r["reference"]
            else (
                f"{differ}/{compared} ({lost} right→wrong, {gained} wrong→right)"
                if compared and not {r["model"], r["reference"]} & noise
                else "-"
            )
        )
        deltas = []
        for task in tasks:
            mine, ref = r.get(f"task:{task}"), v.loc[v["model"] == r["reference"]].iloc[0].get(f"task:{task}")
            if isinstance(mine, tuple) and isinstance(ref, tuple) and r["model"] != r["reference"]:
                deltas.append(f"{mine[0] - ref[0]:+.3f}")
            else:
                deltas.append("-")
        rows.append(
            [
                r["model"],
                r["precision"],
                fmt_num(r["weights_mem_mb"], "{:.0f}"),
                fmt_num(r["bytes_per_param"], "{:.2f}"),
                fmt_num(r.get("decode_tok_per_s"), "{:.1f}"),
                fmt_num(r.get("ttft_s"), "{:.3f}"),
                fmt_num(r.get("peak_rss_mb"), "{:.0f}"),
                fmt_num(r["pooled_acc"], "{:.3f}"),
                changes,
            ]
            + deltas
        )
    short = [t.rsplit("_", 1)[-1] if len(tasks) > 1 else t for t in tasks]
    header = [
        "variant",
        "precision",
        "weights in memory MiB",
        "bytes/param",
        "decode tok/s",
        "median TTFT s",
        "running peak RSS MiB",
        "acc (all items)",
        "answers differing from the reference",
    ] + [f"Δ acc {t}" for t in short]
    several = v.groupby("base")["model"].transform("count") > 1
    engines = "precisions or engines" if _engines(fr, v[several]) > 1 else "precisions"
    text = (
        f"## Precision\n\nThe same model at several {engines}. Weights in memory are measured from the storage "
        "of the loaded tensors (packed bytes and scales of quantized weights; embeddings are never quantized); "
        "the reference of each model is its variant with the most bytes per parameter. acc (all items) pools "
        "every item of the tasks; Δ acc is against the reference, per task.\n\n" + table(header, rows)
    )
    lines = reference_lines(fr, v[several]) + equal_memory_lines(v, tasks)
    return text + ("\n\n" + "\n".join(lines) if lines else "")


def _loads(fr: Frames) -> pd.DataFrame:
    return fr["load"].drop_duplicates("model", keep="last").set_index("model")


def _engines(fr: Frames, v: pd.DataFrame) -> int:
    loads = _loads(fr)
    return (
        loads.loc[loads.index.intersection(v["model"])]
        .get("engine", pd.Series(dtype=str))
        .fillna("transformers")
        .nunique()
    )


def reference_lines(fr: Frames, v: pd.DataFrame) -> list[str]:
    """What a reference holds when the model was distributed as a GGUF: the shipped quantization, dequantized."""
    loads, lines = _loads(fr), []
    for reference in dict.fromkeys(v["reference"]):
        load = loads.loc[reference]
        if load["source"] not in ("gguf-package", "gguf-file"):
            continue
        shipped = load.get("quantization") if isinstance(load.get("quantization"), str) else "GGUF"
        others = v[(v["reference"] == reference) & (v["model"] != reference)]
        made = [m for m in others["model"] if _requantized(loads.loc[m])]
        line = (
            f"- The reference **{reference}** holds the distributed {shipped} weights dequantized "
            f"({load['dtype']}): it measures the shipped quantization, not the model's original weights"
        )
        if made:
            line += (
                f"; {', '.join(made)} {'were' if len(made) > 1 else 'was'} made by llama.cpp's quantizer "
                "from the same dequantized weights (an F32 GGUF)"
            )
        lines.append(line + ".")
    return lines


def _requantized(load: pd.Series) -> bool:
    """Whether the rung's GGUF was made by llama.cpp's quantizer, as its load record says (older runs: see
    LoadRecord.requantized)."""
    stated = load.get("requantized")
    if stated is not None and pd.notna(stated):
        return bool(stated)
    return load.get("engine") == "llama.cpp" and not str(load.get("precision_label", "")).endswith("as distributed")


def equal_memory_lines(v: pd.DataFrame, tasks: list[str]) -> list[str]:
    """A larger model at lower precision against a smaller one at higher precision, about equal in memory."""
    lines = []
    ordered = v.sort_values("weights_mem_mb").reset_index(drop=True)
    for i, a in ordered.iterrows():
        for _, b in ordered.iloc[i + 1 :].iterrows():
            if a["base"] == b["base"] or b["weights_mem_mb"] > a["weights_mem_mb"] * EQUAL_MEMORY:
                continue
            lines.append(
                f"- About equal memory: **{a['model']}** ({a['weights_mem_mb']:.0f} MiB, {a['precision']}) "
                f"vs **{b['model']}** ({b['weights_mem_mb']:.0f} MiB, {b['precision']}): " + _compare(a, b, tasks) + "."
            )
    return lines


def _compare(a: pd.Series, b: pd.Series, tasks: list[str]) -> str:
    parts = []
    if pd.notna(a["pooled_acc"]) and pd.notna(b["pooled_acc"]):
        parts.append(f"accuracy {a['pooled_acc']:.3f} vs {b['pooled_acc']:.3f} over all task items")
    if pd.notna(a.get("decode_tok_per_s")) and pd.notna(b.get("decode_tok_per_s")):
        parts.append(f"decode {a['decode_tok_per_s']:.1f} vs {b['decode_tok_per_s']:.1f} tok/s")
    if all(pd.notna(x.get("right")) and x.get("judged", 0) > 0 for x in (a, b)):  # judged: expected answers given
        parts.append(f"prompts right {int(a['right'])} vs {int(b['right'])}")
    return ", ".join(parts) or "no comparable figures"


def page_precision(p: Page) -> str:
    return precision_section(p.fr, p.df)
