"""What each model costs to run, from measured figures only; and which models are Pareto-optimal.

Memory is what a user must provision to run the model once it is loaded: the running peak over the
prompt and task stages (peak RSS on CPU; on GPU the CUDA peak summed over the GPUs, plus the weights
offloaded to CPU RAM). The load's own peak is apart in the summary: a quantized variant is loaded at
full precision and then quantized, a transient a pre-quantized checkpoint would not have.

Device-hours per million generated tokens = 1e6 / (measured tokens per second) / 3600: single stream
from the prompt suite (all new tokens over all latencies, as the batched record's ratio does), batched
where a batched throughput was measured. Money only from a price the user gives; energy only from a
stored energy record (no TDP estimates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sizebench.analysis import limit, serving
from sizebench.runstore.frames import Frames


@dataclass(frozen=True)
class Cost:
    model: str
    memory_mb: float | None  # MiB
    memory_kind: str  # what memory_mb is: see the module's docstring
    decode_s_per_token: float | None  # 1 / median decode tokens per second
    single_tok_per_s: float | None
    batched_tok_per_s: float | None = None
    batch_size: int | None = None
    joules_per_token: float | None = None
    energy_source: str | None = None
    served_level: str | None = None  # batched_tok_per_s is the load sweep's best level within the SLO (served rungs)
    bound: limit.Limit | None = None  # the bandwidth limit of its decode, where the run measured the bandwidth
    decode_mode: str | None = None  # transformers rungs: eager or static (older runs: not recorded)
    compiled: bool = False
    warmup_s: float | None = None  # the first generate: the one-time compile, where compiled
    batched_warmup_s: float | None = None  # the first batch: the batch shape's compile
    cache_mb: float | None = None  # static KV cache preallocated for one sequence, MiB (in the memory peaks)

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
    swept = serving.levels(fr)
    limits = limit.limits(fr)
    decodes, throughput = fr.tables.get("decode", pd.DataFrame()), fr["throughput"]
    for _, r in summary[summary["status"] == "ok"].iterrows():
        memory, memory_kind = provisioned_mib(r)
        decode = _number(r.get("decode_tok_per_s"))
        mine = prompts[prompts["model"] == r["model"]] if not prompts.empty else prompts
        single = (
            float(mine["new_tokens"].sum() / mine["latency_s"].sum())
            if not mine.empty and mine["latency_s"].sum() > 0
            else None
        )
        joules = source = None
        own = energy[energy["model"] == r["model"]] if not energy.empty else energy
        if not own.empty and own.iloc[-1]["new_tokens"]:
            joules = float(own.iloc[-1]["joules"] / own.iloc[-1]["new_tokens"])
            source = str(own.iloc[-1]["source"])
        batch = _number(r.get("batch_size"))
        batched, level = _number(r.get("batched_tok_per_s")), None
        best = serving.best_within_slo([lv for lv in swept if lv.model == r["model"]])
        if best is not None:  # a served rung: the highest throughput its sweep reached within the SLO
            batched, batch, level = best.out_tok_per_s, None, best.label + (" within the SLO" if best.meets_slo else "")
        ran = decodes[decodes["model"] == r["model"]] if not decodes.empty else decodes
        loop = ran.iloc[-1] if not ran.empty else None
        batches = throughput[throughput["model"] == r["model"]] if not throughput.empty else throughput
        batch_warmup = _number(batches.iloc[-1].get("warmup_s")) if not batches.empty else None
        out.append(
            Cost(
                r["model"],
                memory,
                memory_kind,
                1 / decode if decode else None,
                single,
                batched,
                int(batch) if batch else None,
                joules,
                source,
                level,
                limits.get(r["model"]),
                loop["mode"] if loop is not None else None,
                bool(loop["compiled"]) if loop is not None else False,
                _number(loop["warmup_s"]) if loop is not None else None,
                batch_warmup,
                _number(loop["cache_mb"]) if loop is not None else None,
            )
        )
    return out


def provisioned_mib(row: pd.Series) -> tuple[float | None, str]:
    """(MiB, what it is) a user must provision to run the model of a summary row."""
    cuda, rss = _number(row.get("cuda_peak_mb")), _number(row.get("peak_rss_mb"))
    if cuda is None:
        return rss, "running peak RSS"
    offloaded = _number(row.get("offload_cpu_gib"))
    if offloaded:
        return cuda + offloaded * 1024, "running CUDA peak, all GPUs, + offloaded to CPU"
    return cuda, "running CUDA peak, all GPUs"


def pareto(points: dict[str, tuple[float, float]]) -> list[str]:
    """Models no other beats on both cost (lower) and accuracy (higher), cheapest first."""
    front = []
    for name, (cost, acc) in points.items():
        dominated = any(
            c <= cost and a >= acc and (c < cost or a > acc) for other, (c, a) in points.items() if other != name
        )
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: (points[n][0], n))
