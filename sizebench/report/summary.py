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
        rows.append([r["model"], fmt_params(r["params"]), devices, fmt_num(r.get("weights_mb"), "{:.0f}"), fmt_num(r.get("load_s")),
                     fmt_num(r.get("peak_rss_mb"), "{:.0f}"), fmt_num(r.get("cuda_peak_mb"), "{:.0f}"),
                     fmt_num(r.get("ttft_s"), "{:.3f}"), fmt_num(r.get("decode_tok_per_s"), "{:.1f}"), score]
                    + [_acc(r.get(f"task:{t}")) for t in tasks] + [r["status"]])
    filled = [i for i in range(len(header)) if i == 0 or any(row[i] not in ("-", "") for row in rows)]
    return table([header[i] for i in filled], [[row[i] for i in filled] for row in rows])
