"""Each rung's decode against its limit: the run's measured memory bandwidth over the bytes one token reads.

One decode step of one sequence reads every weight and the KV cache it attends to; nothing decodes faster than
bandwidth / those bytes. Bytes per token = the weights in memory (every tensor: a slight overstatement, the
input embedding is only gathered) + the KV cache a step attends to: a static cache is read whole (its
`cache_len` positions, masked); a growing cache holds the prompt and half the answer on average (median prompt
tokens + median new tokens / 2). Rungs without a decode record (other engines, older runs) count the weights
alone. Share = measured decode tok/s / limit. Only where the rung's run measured its device's bandwidth, and
not for rungs offloaded in part to CPU RAM (no one device's bandwidth bounds them).

Overhead-bound rows: decode that does not fall with size (the rung reading the most bytes a token, at least
x1.5 the least, decodes at least as fast), or every rung below FAR_BELOW of its limit, measures the loop
around the model (kernel launches, Python), not the model: the report says so and draws no speed ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sizebench.runstore.frames import Frames

FAR_BELOW = 0.10  # every rung under this share of its limit: overhead-bound
SIZE_STEP = 1.5  # bytes per token of the largest over the smallest for "does not fall with size" to be judged


@dataclass(frozen=True)
class Limit:
    model: str
    device: str
    bandwidth_bytes_per_s: float
    weight_bytes: float
    kv_bytes: float | None  # per token; None: not known (no decode record)
    decode_tok_per_s: float | None
    mode: str | None  # the decode mode, where recorded

    @property
    def bytes_per_token(self) -> float:
        return self.weight_bytes + (self.kv_bytes or 0.0)

    @property
    def limit_tok_per_s(self) -> float:
        return self.bandwidth_bytes_per_s / self.bytes_per_token

    @property
    def share(self) -> float | None:
        return self.decode_tok_per_s / self.limit_tok_per_s if self.decode_tok_per_s else None


def _last(df: pd.DataFrame, model: str) -> pd.Series | None:
    if df.empty or "model" not in df:
        return None
    mine = df[df["model"] == model]
    return None if mine.empty else mine.iloc[-1]


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def limits(fr: Frames) -> dict[str, Limit]:
    """model -> its Limit, for rungs whose run measured the bandwidth of the device the rung ran on."""
    bandwidth = fr.tables.get("bandwidth", pd.DataFrame())
    if bandwidth.empty:
        return {}
    loads, decodes, prompts = fr["load"], fr.tables.get("decode", pd.DataFrame()), fr["prompt"]
    out = {}
    for model in loads["model"].unique() if not loads.empty else []:
        load = _last(loads, model)
        offloaded = load.get("offloaded")
        held = _number(load.get("weights_mem_mb"))
        measured = bandwidth[(bandwidth["run_id"] == load["run_id"]) & (bandwidth["device"] == load["device"])]
        if measured.empty or not held or (offloaded is not None and not pd.isna(offloaded) and bool(offloaded)):
            continue
        decode = _last(decodes, model)
        mine = prompts[prompts["model"] == model] if not prompts.empty else prompts
        rate = _number(mine["decode_tok_per_s"].median()) if not mine.empty else None
        kv = None
        if decode is not None:
            positions = _number(decode.get("cache_len"))
            if positions is None and not mine.empty:
                positions = float(mine["prompt_tokens"].median() + mine["new_tokens"].median() / 2)
            kv = decode["kv_bytes_per_position"] * positions if positions is not None else None
        out[model] = Limit(
            model,
            load["device"],
            float(measured["bytes_per_s"].max()),
            held * 2**20,
            kv,
            rate,
            decode["mode"] if decode is not None else None,
        )
    return out


def overhead_bound(found: dict[str, Limit]) -> str | None:
    """Why these rungs' decode figures measure the loop rather than the model, in a clause; None when they do not
    look overhead-bound (or too little is known to say)."""
    rated = [lim for lim in found.values() if lim.share is not None]
    if not rated:
        return None
    for device in sorted({lim.device for lim in rated}):
        rows = sorted((lim for lim in rated if lim.device == device), key=lambda lim: lim.bytes_per_token)
        small, big = rows[0], rows[-1]
        if (
            len(rows) > 1
            and big.bytes_per_token >= SIZE_STEP * small.bytes_per_token
            and big.decode_tok_per_s >= small.decode_tok_per_s
        ):
            return (
                f"decode does not fall with size ({big.model} reads x{big.bytes_per_token / small.bytes_per_token:.1f} "
                f"the bytes a token of {small.model} and decodes {big.decode_tok_per_s:.1f} against "
                f"{small.decode_tok_per_s:.1f} tok/s)"
            )
    if all(lim.share < FAR_BELOW for lim in rated):
        return f"every rung decodes below {FAR_BELOW:.0%} of its bandwidth limit"
    return None
