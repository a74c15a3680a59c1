"""The summary table and its prose, formatted from the per-model table (sizebench.analysis.per_model)."""

from __future__ import annotations

import math
import os

import pandas as pd

from sizebench.analysis.per_model import task_names
from sizebench.report.markdown import fmt_num, fmt_params, table
from sizebench.report.notes import overhead_sentence
from sizebench.analysis.sizes import SizeAxis
from sizebench.report.page import Page


def _share(value) -> float | None:
    return None if value is None or pd.isna(value) else value * 100


def summary_prose(size_axis: SizeAxis, mapped: bool = False, overhead: str | None = None) -> str:
    """`mapped`: some row's engine maps its weights file, and the resident part has its column; `overhead`: why
    the decode figures are overhead-bound (sizebench.analysis.limit), said beside them."""
    by = (
        "total parameters (embeddings included; non-emb: without the input and untied output embeddings, "
        "Pythia's count)"
        if size_axis.column == "params"
        else "weight memory in MiB (the rows hold their weights in different precisions or engines)"
    )
    return (
        f"One row per model, smallest first by {by}; rows equal in size keep the order they were given in. "
        "Memory in MiB (2^20 bytes): the load's peak RSS apart from the running peak over the prompt and "
        "task stages, and on GPU the load's CUDA peak apart from the running one in the same way"
        + (
            "; where an engine maps its weights file (llama.cpp), the part of the weights "
            "resident at the end of a stage (the most over the stages) beside it"
            if mapped
            else ""
        )
        + ". Accuracy is lm-eval `acc` ± stderr."
        + ("" if overhead is None else " " + overhead_sentence(overhead))
    )


def _acc(value) -> str:
    if not isinstance(value, tuple):
        return "-"
    acc, stderr, n = value[:3]
    text = f"{acc:.3f} ± {stderr:.3f}" if stderr is not None and not math.isnan(stderr) else f"{acc:.3f}"
    return text + (f" (n {int(n)} of {value[3]}, until decided)" if len(value) > 3 and value[3] else "")


def summary_table(df: pd.DataFrame) -> str:
    tasks = task_names(df)
    prefix = os.path.commonprefix(tasks) if len(tasks) > 1 else ""
    prefix = prefix[: prefix.rfind("_") + 1]  # "sizebench_geo_capitals" -> "capitals" in the header
    header = (
        [
            "model",
            "params (total)",
            "non-emb params",
            "device",
            "weights file MiB",
            "weights in memory MiB",
            "of them resident MiB",
            "load s",
            "load peak RSS MiB",
            "running peak RSS MiB",
            "load CUDA peak MiB (all GPUs)",
            "running CUDA peak MiB (all GPUs)",
            "median TTFT s",
            "decode tok/s",
            "decode % of limit",
            "prompts right",
        ]
        + [f"{t.removeprefix(prefix)} acc" for t in tasks]
        + ["status"]
    )
    rows = []
    for _, r in df.iterrows():
        # int(): combined runs leave NaN for models without prompts, and the column turns float
        score = (
            f"{int(r['right'])}/{int(r['judged'])}"
            if "judged" in r and not pd.isna(r.get("judged")) and r["judged"]
            else "-"
        )
        devices = (
            "-"
            if pd.isna(r.get("device"))
            else f"{r['device']} {r['precision']}" + (f" x{int(r['n_devices'])}" if r.get("n_devices", 1) > 1 else "")
        )
        offload = r.get("offload_cpu_gib")
        if offload is not None and not pd.isna(offload) and offload > 0:
            devices += f", offloaded {offload:.1f} GiB to CPU"
        rows.append(
            [
                r["model"],
                fmt_params(r["params"]),
                fmt_params(r.get("params_non_embedding"), "-"),
                devices,
                fmt_num(r.get("weights_mb"), "{:.0f}"),
                fmt_num(r.get("weights_mem_mb"), "{:.0f}"),
                fmt_num(r.get("weights_resident_mb"), "{:.0f}"),
                fmt_num(r.get("load_s")),
                fmt_num(r.get("load_peak_rss_mb"), "{:.0f}"),
                fmt_num(r.get("peak_rss_mb"), "{:.0f}"),
                fmt_num(r.get("load_cuda_peak_mb"), "{:.0f}"),
                fmt_num(r.get("cuda_peak_mb"), "{:.0f}"),
                fmt_num(r.get("ttft_s"), "{:.3f}"),
                fmt_num(r.get("decode_tok_per_s"), "{:.1f}"),
                fmt_num(_share(r.get("decode_share")), "{:.0f}%"),
                score,
            ]
            + [_acc(r.get(f"task:{t}")) for t in tasks]
            + [r["status"]]
        )
    filled = [i for i in range(len(header)) if i == 0 or any(row[i] not in ("-", "") for row in rows)]
    return table([header[i] for i in filled], [[row[i] for i in filled] for row in rows])


def page_summary(p: Page) -> str:
    mapped = "weights_resident_mb" in p.df and p.df["weights_resident_mb"].notna().any()
    return "## Summary\n\n" + summary_prose(p.a.size_axis, mapped, p.a.overhead) + "\n\n" + summary_table(p.df)
