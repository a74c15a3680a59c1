"""A row's identity (model, engine, precision) and the one size axis the whole report uses.

The verdict, the summary, the plots, the conclusion and the scaling fit all ask this module which rows
are smaller: total parameters when every row holds its weights the same way (one engine, one
precision), else the weight memory measured from the loaded tensors. Rows equal on the axis form one
tier and are named together as equal; within a tier they keep the order the user gave them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from sizebench import engines
from sizebench.runstore.frames import Frames
from sizebench.engines.hf.precision import ALIASES

DEFAULT_ENGINE = "transformers"  # every run recorded before engines were named ran on transformers


def cost_only(fr: Frames) -> set[str]:
    """Rows of random-weight rungs (`--weights random`): measured for cost, never for quality."""
    loads = fr["load"]
    if loads.empty or "weights" not in loads:
        return set()
    return set(loads.loc[loads["weights"] == "random", "model"])


@dataclass(frozen=True)
class Identity:
    name: str  # the row as the report names it (what the user typed, `@precision` included)
    model: str  # the model the row is a variant of
    engine: str
    precision: str  # the variant's `@precision`, else the dtype the weights ran in


@dataclass(frozen=True)
class SizeAxis:
    column: str  # "params" or "weights_mem_mb" (MiB, whatever the field's old name says)
    label: str  # "total parameters" or "weight memory"
    values: dict[str, float]  # row -> its size on this axis, for every row with a load record
    order: list[str]  # those rows, smallest first; a tier keeps the plan's order
    bits: dict[str, float] = field(default_factory=dict)  # row -> bits per weight held, where measured

    @property
    def unit(self) -> str:
        return "MiB" if self.column == "weights_mem_mb" else "parameters"

    @property
    def title(self) -> str:
        """For axis titles and table prose: 'total parameters' or 'weight memory (MiB)'."""
        return self.label if self.column == "params" else f"{self.label} ({self.unit})"

    def tier(self, name: str) -> list[str]:
        """The rows equal to `name` on this axis (itself included), in order."""
        if name not in self.values:
            return [name]
        return [m for m in self.order if equal(self.values[m], self.values[name])]

    def tiers(self, models: list[str]) -> list[list[str]]:
        """`models` (smallest first) in tiers of equal size, smallest first, each keeping the given order."""
        out: list[list[str]] = []
        for m in models:
            if (
                out
                and m in self.values
                and out[-1][0] in self.values
                and equal(self.values[m], self.values[out[-1][0]])
            ):
                out[-1].append(m)
            else:
                out.append([m])
        return out

    def baseline(self, models: list[str]) -> str:
        """The verdicts' default baseline among `models` (smallest first): the largest, and among equals the
        one holding the most bits per weight (the most precise), else the first of them in the plan."""
        top = self.tiers(models)[-1]
        return max(top, key=lambda m: (self.bits.get(m, 0.0), -top.index(m)))

    def smaller(self, a: str, b: str) -> bool:
        return self.values[a] < self.values[b] and not equal(self.values[a], self.values[b])

    def format(self, value: float) -> str:
        if self.column == "params":
            return f"{value / 1e9:.2f}B params" if value >= 1e9 else f"{value / 1e6:.1f}M params"
        return f"{value:.0f} MiB of weights"


def equal(a: float, b: float) -> bool:
    """Equal as far as the report can tell: within 0.1% (parameter counts differ by more, or not at all)."""
    return math.isclose(a, b, rel_tol=1e-3)


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None  # NaN where an older record lacks the field


def base_model(name: str) -> str:
    """`smollm2-135m` from `smollm2-135m@int8` and from `llama.cpp:smollm2-135m@q8_0`: a run recorded before load
    records named the base model (LoadRecord.base_model) is read this way."""
    prefix, colon, rest = name.partition(":")
    if colon and prefix in engines.names():
        name = rest
    return name.rpartition("@")[0] or name


def identities(fr: Frames) -> dict[str, Identity]:
    """Every row with a load record (its latest), from what the worker wrote."""
    loads = fr["load"]
    if loads.empty:
        return {}
    out = {}
    for _, r in loads.drop_duplicates("model", keep="last").iterrows():
        held = _text(r.get("precision")) or ALIASES.get(str(r["dtype"]), str(r["dtype"]))  # float32 is fp32
        base = _text(r.get("base_model")) or base_model(r["model"])
        out[r["model"]] = Identity(r["model"], base, _text(r.get("engine")) or DEFAULT_ENGINE, held)
    return out


def axis(fr: Frames) -> SizeAxis:
    ids = identities(fr)
    loads = fr["load"].drop_duplicates("model", keep="last").set_index("model") if ids else None
    kinds = {(i.engine, i.precision) for i in ids.values()}
    by_memory = len(kinds) > 1 and "weights_mem_mb" in loads and loads["weights_mem_mb"].notna().all()
    column, label = ("weights_mem_mb", "weight memory") if by_memory else ("params", "total parameters")
    values = {m: float(loads.loc[m, column]) for m in ids if not pd.isna(loads.loc[m, column])}
    planned = list(dict.fromkeys(fr.models["model"])) if not fr.models.empty else []
    position = {m: (planned.index(m) if m in planned else len(planned)) for m in values}
    bits = {
        m: float(loads.loc[m, "weights_mem_mb"]) * 2**23 / float(loads.loc[m, "params"])
        for m in values
        if "weights_mem_mb" in loads
        and not pd.isna(loads.loc[m, "weights_mem_mb"])
        and not pd.isna(loads.loc[m, "params"])
        and loads.loc[m, "params"] > 0
    }
    return SizeAxis(column, label, values, _tiers_in_plan_order(sorted(values, key=values.get), values, position), bits)


def _tiers_in_plan_order(order: list[str], values: dict[str, float], position: dict[str, int]) -> list[str]:
    """Rows within equal()'s tolerance of a tier's first form that tier, ordered as the plan gives them."""
    out: list[str] = []
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and equal(values[order[j]], values[order[i]]):
            j += 1
        out += sorted(order[i:j], key=lambda m: position[m])
        i = j
    return out
