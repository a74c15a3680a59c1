"""The load sweep's figures per rung and level, from its request records: latency percentiles, throughput, goodput.

As `vllm bench serve` defines them: TTFT (request sent to first streamed text), TPOT ((E2E - TTFT) / (output
tokens - 1), per request), ITL (every gap between streamed chunks, pooled), E2E (sent to last chunk), with
"sent" the moment the request was due (its Poisson arrival, or its closed-loop slot freeing), so a client
that falls behind shows as latency rather than hiding it; a level whose client sent some request more than
FELL_BEHIND_S late is flagged. Percentiles by numpy's linear interpolation over the successful requests,
each with its count; p99 only from 100 requests or more. Throughput is over the level's wall time (first
request sent to last answer).
Goodput: requests per second that met every SLO metric given; a level meets the SLO when at least
SLO_SHARE of its requests did (all of them: errors count against it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sizebench.runstore.frames import Frames

P99_MIN = 100
FELL_BEHIND_S = 0.05
SLO_SHARE = 0.9
QUANTILES = (50, 90, 99)


@dataclass(frozen=True)
class Level:
    model: str
    mode: str
    load: float
    requests: int
    errors: int
    wall_s: float
    req_per_s: float
    out_tok_per_s: float
    stats: dict  # metric -> {"n": count, 50: s, 90: s, 99: s or None}
    goodput: float | None  # requests/s meeting the SLO; None without an SLO
    slo_share: float | None
    serving: str
    slo: dict  # metric -> seconds, as given
    behind_s: float | None = None  # the most a request was sent after it was due (None: a run before it was kept)

    @property
    def fell_behind(self) -> bool:
        return self.behind_s is not None and self.behind_s > FELL_BEHIND_S

    @property
    def label(self) -> str:
        return f"concurrency {self.load:g}" if self.mode == "concurrency" else f"{self.load:g} req/s"

    @property
    def meets_slo(self) -> bool | None:
        return None if self.slo_share is None else self.slo_share >= SLO_SHARE


def percentiles(values: list[float], requests: int | None = None) -> dict:
    """p50/p90/p99 and the count of values; p99 only when `requests` (default: the count) reach P99_MIN."""
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    out = {"n": len(values)}
    enough = (len(values) if requests is None else requests) >= P99_MIN
    for q in QUANTILES:
        out[q] = float(np.percentile(values, q)) if values and (q < 99 or enough) else None
    return out


def tpot(row) -> float | None:
    if (
        row["ttft_s"] is None
        or (isinstance(row["ttft_s"], float) and math.isnan(row["ttft_s"]))
        or row["output_tokens"] < 2
    ):
        return None
    return (row["e2e_s"] - row["ttft_s"]) / (row["output_tokens"] - 1)


def meets(row, slo: dict) -> bool:
    if row["error"] is not None and not (isinstance(row["error"], float) and math.isnan(row["error"])):
        return False
    measured = {"ttft": row["ttft_s"], "tpot": tpot(row), "e2e": row["e2e_s"]}
    return all(measured[m] is not None and measured[m] <= limit for m, limit in slo.items())


def levels(fr: Frames) -> list[Level]:
    done, requests = fr.tables.get("sweep_level", pd.DataFrame()), fr.tables.get("served_request", pd.DataFrame())
    if done.empty or requests.empty:
        return []
    out = []
    for _, level in done.iterrows():
        mine = requests[
            (requests["model"] == level["model"])
            & (requests["mode"] == level["mode"])
            & (requests["load"] == level["load"])
            & (requests["attempt"] == level["attempt"])
        ]
        rows = [r for _, r in mine.iterrows()]
        ok = [r for r in rows if r["error"] is None or (isinstance(r["error"], float) and math.isnan(r["error"]))]
        wall = float(level["wall_s"]) or float("nan")
        slo = dict(level["slo"]) if isinstance(level["slo"], dict) else {}
        met = sum(meets(r, slo) for r in rows) if slo else None
        stats = {
            "ttft": percentiles([r["ttft_s"] for r in ok]),
            "tpot": percentiles([tpot(r) for r in ok]),
            "itl": percentiles([g for r in ok for g in (r["itl_s"] or [])], len(ok)),
            "e2e": percentiles([r["e2e_s"] for r in ok]),
        }
        behind = level.get("behind_s")
        out.append(
            Level(
                level["model"],
                level["mode"],
                float(level["load"]),
                len(rows),
                len(rows) - len(ok),
                wall,
                len(ok) / wall,
                sum(int(r["output_tokens"]) for r in ok) / wall,
                stats,
                met / wall if slo else None,
                met / len(rows) if slo and rows else None,
                level["serving"],
                slo,
                None if behind is None or pd.isna(behind) else float(behind),
            )
        )
    return out


def best_within_slo(rung_levels: list[Level]) -> Level | None:
    """The level with the highest output-token throughput among those meeting the SLO (any level without one)."""
    fit = [lv for lv in rung_levels if lv.meets_slo in (True, None)]
    return max(fit, key=lambda lv: lv.out_tok_per_s) if fit else None
