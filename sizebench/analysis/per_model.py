"""The per-model table: one row per model with every figure the summary shows, from stored runs (computed here,
formatted by sizebench.report.summary)."""

from __future__ import annotations

import math

import pandas as pd

from sizebench.analysis import limit, sizes
from sizebench.runstore.frames import Frames

PRIMARY_METRIC = "acc"


def summary(fr: Frames) -> pd.DataFrame:
    """One row per model, smallest first on the report's size axis, with every figure the summary shows.

    Memory figures are MiB (2**20 bytes) whatever the record fields' old `_mb` names say; GiB for offload."""
    rows = []
    limits = limit.limits(fr)
    ids = sizes.identities(fr)
    for _, m in fr.models.iterrows():
        name = m["model"]
        row = {
            "model": name,
            "base": ids[name].model if name in ids else sizes.base_model(name),
            "params": m["params_published"],
            "status": "not run",
            "params_non_embedding": m.get("params_non_embedding_published"),
        }
        load = _rows(fr["load"], name)
        if not load.empty:
            last = load.iloc[-1]
            row.update(
                params=last["params"],
                weights_mb=last["weights_mb"],
                load_s=last["load_s"],
                convert_s=last.get("convert_s"),
                dtype=last["dtype"],
                device=last["device"],
                n_devices=last["n_devices"],
                status="ok",
                offload_cpu_gib=offload_gib(last),
                weights_mem_mb=last.get("weights_mem_mb"),
                precision=_text(last.get("precision_label")) or last["dtype"],
            )
            if not pd.isna(last.get("params_non_embedding")):  # measured on the loaded model
                row["params_non_embedding"] = last["params_non_embedding"]
        stages = _rows(fr["stage"], name)
        # The load's peak (a quantized variant loads at full precision first) is kept apart from the
        # running peak of the prompt and task stages, which is what the model needs once loaded (the
        # agreement stage's logit rows are a measurement's cost, not the model's).
        stages = stages[stages["stage"].isin(("prompts", "tasks"))] if not stages.empty else stages
        row["load_peak_rss_mb"] = _peak(load, "peak_rss_mb")
        row["peak_rss_mb"] = _peak(stages, "peak_rss_mb")
        row["load_cuda_peak_mb"] = _peak(load, "cuda_peak_mb")
        row["cuda_peak_mb"] = _peak(stages, "cuda_peak_mb")
        row["weights_resident_mb"] = _peak(stages, "weights_resident_mb")  # memory-mapped weights (llama.cpp)
        prompts = _rows(fr["prompt"], name)
        if not prompts.empty:
            row["ttft_s"] = prompts["ttft_s"].median()
            row["latency_s"] = prompts["latency_s"].median()
            row["decode_tok_per_s"] = prompts["decode_tok_per_s"].dropna().median()
            row["decode_share"] = limits[name].share if name in limits else None
            judged = prompts[prompts["correct"].notna()]
            row["right"], row["judged"] = int(judged["correct"].astype(bool).sum()), len(judged)
        throughput = _rows(fr["throughput"], name)
        if not throughput.empty:
            row["batched_tok_per_s"] = throughput.iloc[-1]["tok_per_s"]
            row["batch_size"] = throughput.iloc[-1]["batch_size"]
        tasks = _rows(fr["task"], name)
        for _, t in tasks[tasks["metric"] == PRIMARY_METRIC].iterrows() if not tasks.empty else []:
            row[f"task:{t['task']}"] = (t["value"], t["stderr"], t["n"], stopped_early(fr, name, t["task"]))
        failed = _rows(fr["failed"], name)
        if not failed.empty:
            last_failure = failed.iloc[-1]
            if _flag(last_failure, "unavailable"):
                row["status"] = f"unavailable: {last_failure['reason']}"
            elif _flag(last_failure, "interrupted"):
                row["status"] = f"interrupted ({last_failure['stage']}): {last_failure['reason']}"
            else:
                row["status"] = f"failed ({last_failure['stage']}): {last_failure['reason']}"
        rows.append(row)
    df = pd.DataFrame(rows)
    order = sizes.axis(fr).order  # rows without a load record (not run, unavailable) keep the plan's order last
    df["_sort"] = df["model"].map({m: i for i, m in enumerate(order)}).fillna(len(order))
    return df.sort_values("_sort", kind="stable").drop(columns="_sort").reset_index(drop=True)


def _peak(rows: pd.DataFrame, column: str) -> float | None:
    values = [v for v in rows.get(column, []) if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return max(values) if values else None


def offload_gib(load: pd.Series) -> float | None:
    """GiB of weights offloaded to CPU RAM; records before the unit fix wrote 10**9-byte GB."""
    for column, scale in (("offload_cpu_gib", 1.0), ("offload_cpu_gb", 1e9 / 2**30)):
        value = load.get(column)
        if value is not None and not pd.isna(value):
            return float(value) * scale
    return None


def _flag(record: pd.Series, field: str) -> bool:
    value = record.get(field)  # NaN where an older record has no such field
    return value is not None and not pd.isna(value) and bool(value)


def _text(value) -> str | None:
    return value if isinstance(value, str) else None  # NaN where an older record has no such field


def _rows(df: pd.DataFrame, model: str) -> pd.DataFrame:
    return df[df["model"] == model] if not df.empty and "model" in df else pd.DataFrame()


def task_names(df: pd.DataFrame) -> list[str]:
    return sorted(c.removeprefix("task:") for c in df.columns if c.startswith("task:"))


def stopped_early(fr: Frames, model: str, task: str) -> int | None:
    """The task's size where `--until-decided` stopped this model before its last item (its accuracy counts fewer)."""
    stops = fr["stopped"]
    if stops.empty:
        return None
    rows = stops[(stops["model"] == model) & (stops["task"] == task)]
    if rows.empty or rows["items"].iloc[-1] >= rows["population"].iloc[-1]:
        return None
    return int(rows["population"].iloc[-1])
