"""What each model costs to run, from measured figures only; and which models are Pareto-optimal.

Device-hours per million generated tokens = 1e6 / (measured tokens per second) / 3600: single stream
from the prompt suite (all new tokens over all latencies, as the batched record's ratio does), batched
where a batched throughput was measured. Money only from a price the user gives; energy only from a
stored energy record (no TDP estimates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sizebench.frames import Frames


@dataclass(frozen=True)
class Cost:
    model: str
    memory_mb: float | None
    memory_kind: str  # "CUDA peak" on GPU runs, else the worker's peak RSS
    decode_s_per_token: float | None  # 1 / median decode tokens per second
    single_tok_per_s: float | None
    batched_tok_per_s: float | None = None
    batch_size: int | None = None
    joules_per_token: float | None = None
    energy_source: str | None = None

    @staticmethod
    def hours_per_million(tok_per_s: float | None) -> float | None:
        return 1e6 / tok_per_s / 3600 if tok_per_s else None


def _number(value) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def costs(fr: Frames, summary: pd.DataFrame) -> list[Cost]:
    out = []
    prompts = fr["prompt"]
    energy = fr.tables.get("energy", pd.DataFrame())
    for _, r in summary[summary["status"] == "ok"].iterrows():
        cuda, rss = _number(r.get("cuda_peak_mb")), _number(r.get("peak_rss_mb"))
        decode = _number(r.get("decode_tok_per_s"))
        mine = prompts[prompts["model"] == r["model"]] if not prompts.empty else prompts
        single = (float(mine["new_tokens"].sum() / mine["latency_s"].sum())
                  if not mine.empty and mine["latency_s"].sum() > 0 else None)
        joules = source = None
        own = energy[energy["model"] == r["model"]] if not energy.empty else energy
        if not own.empty and own.iloc[-1]["new_tokens"]:
            joules = float(own.iloc[-1]["joules"] / own.iloc[-1]["new_tokens"])
            source = str(own.iloc[-1]["source"])
        batch = _number(r.get("batch_size"))
        out.append(Cost(r["model"], cuda if cuda is not None else rss, "CUDA peak" if cuda is not None else "peak RSS",
                        1 / decode if decode else None, single, _number(r.get("batched_tok_per_s")),
                        int(batch) if batch else None, joules, source))
    return out


def pareto(points: dict[str, tuple[float, float]]) -> list[str]:
    """Models no other beats on both cost (lower) and accuracy (higher), cheapest first."""
    front = []
    for name, (cost, acc) in points.items():
        dominated = any(c <= cost and a >= acc and (c < cost or a > acc)
                        for other, (c, a) in points.items() if other != name)
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: (points[n][0], n))
