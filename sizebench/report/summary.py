"""The model summary: one row per model with every figure the summary table shows."""

from __future__ import annotations

import math
import os

import pandas as pd

from sizebench.frames import Frames
from sizebench.report.markdown import fmt_num, fmt_params, table

PRIMARY_METRIC = "acc"


def summary(fr: Frames) -> pd.DataFrame:
    """One row per model ordered by parameter count, with every figure the summary table shows."""
    rows = []
    for _, m in fr.models.iterrows():
        name = m["model"]
        row = {"model": name, "params": m["params_published"], "status": "not run",
               "params_non_embedding": m.get("params_non_embedding_published")}
        load = _rows(fr["load"], name)
        if not load.empty:
            last = load.iloc[-1]
            row.update(params=last["params"], weights_mb=last["weights_mb"], load_s=last["load_s"],
                       convert_s=last.get("convert_s"), dtype=last["dtype"], device=last["device"],
                       n_devices=last["n_devices"], status="ok", offload_cpu_gb=last.get("offload_cpu_gb"),
                       weights_mem_mb=last.get("weights_mem_mb"),
                       precision=_text(last.get("precision_label")) or last["dtype"])
            if not pd.isna(last.get("params_non_embedding")):  # measured on the loaded model
                row["params_non_embedding"] = last["params_non_embedding"]
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
            last_failure = failed.iloc[-1]
            flag = last_failure.get("unavailable")
            if flag is not None and not pd.isna(flag) and bool(flag):
                row["status"] = f"unavailable: {last_failure['reason']}"
            else:
                row["status"] = f"failed ({last_failure['stage']}): {last_failure['reason']}"
        rows.append(row)
    df = pd.DataFrame(rows)
    axis = size_axis(df)[0]  # weight memory when precisions are mixed, else parameters
    df["_sort"] = df[axis].fillna(float("inf"))
    return df.sort_values(["_sort", "model"], kind="stable").drop(columns="_sort").reset_index(drop=True)


def _text(value) -> str | None:
    return value if isinstance(value, str) else None  # NaN where an older record has no such field


def mixed_precisions(df: pd.DataFrame) -> bool:
    """Several precisions among the measured rows: then bytes, not parameters, are the size axis."""
    return "precision" in df and df["precision"].dropna().nunique() > 1


def size_axis(df: pd.DataFrame) -> tuple[str, str]:
    """(column, axis label) by which models are ordered, plotted and called smaller or larger."""
    if mixed_precisions(df) and "weights_mem_mb" in df and df["weights_mem_mb"].notna().any():
        return "weights_mem_mb", "weights in memory (MiB)"
    return "params", "parameters"


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
    header = ["model", "params (total)", "non-emb params", "device", "weights MB", "weights in memory MB", "load s", "peak RSS MB", "CUDA peak MB", "median TTFT s",
              "decode tok/s", "prompts right"] + [f"{t.removeprefix(prefix)} acc" for t in tasks] + ["status"]
    rows = []
    for _, r in df.iterrows():
        # int(): combined runs leave NaN for models without prompts, and the column turns float
        score = f"{int(r['right'])}/{int(r['judged'])}" if "judged" in r and not pd.isna(r.get("judged")) \
            and r["judged"] else "-"
        devices = "-" if pd.isna(r.get("device")) else f"{r['device']} {r['precision']}" + (
            f" x{int(r['n_devices'])}" if r.get("n_devices", 1) > 1 else "")
        offload = r.get("offload_cpu_gb")
        if offload is not None and not pd.isna(offload) and offload > 0:
            devices += f", offloaded {offload:.1f} GB to CPU"
        rows.append([r["model"], fmt_params(r["params"]), fmt_params(r.get("params_non_embedding"), "-"),
                     devices, fmt_num(r.get("weights_mb"), "{:.0f}"), fmt_num(r.get("weights_mem_mb"), "{:.0f}"), fmt_num(r.get("load_s")),
                     fmt_num(r.get("peak_rss_mb"), "{:.0f}"), fmt_num(r.get("cuda_peak_mb"), "{:.0f}"),
                     fmt_num(r.get("ttft_s"), "{:.3f}"), fmt_num(r.get("decode_tok_per_s"), "{:.1f}"), score]
                    + [_acc(r.get(f"task:{t}")) for t in tasks] + [r["status"]])
    filled = [i for i in range(len(header)) if i == 0 or any(row[i] not in ("-", "") for row in rows)]
    return table([header[i] for i in filled], [[row[i] for i in filled] for row in rows])
