"""The cost frontier's and the scaling fit's sections (their figures: sizebench.analysis.frontier, .scaling)."""

from __future__ import annotations

from sizebench.analysis.cost import Cost
from sizebench.analysis.frontier import Frontier
from sizebench.report.markdown import fmt_num, table
from sizebench.report.notes import overhead_sentence
from sizebench.analysis.scaling import MIN_RUNGS, Fit
from sizebench.report.page import Page


def _money(hours: float | None, price: float | None) -> str:
    return "-" if hours is None or price is None else f"{hours * price:.4g}"


def _loop(c: Cost) -> str:
    if not c.decode_mode:
        return "-"
    how = c.decode_mode + (", compiled" if c.compiled else "")
    first = [f"{c.warmup_s:.1f}"] if c.warmup_s is not None else []
    first += (
        [f"batch {c.batch_size}: {c.batched_warmup_s:.1f}"] if c.batched_warmup_s is not None and c.batch_size else []
    )
    return how + (f" ({'; '.join(first)})" if first else "")


def limit_prose(costs: list[Cost], overhead: str | None) -> str:
    """What the limit, the decode loop and the static cache's memory are, and whether the rows are overhead-bound."""
    parts = []
    bandwidths = sorted({(c.bound.device, c.bound.bandwidth_bytes_per_s) for c in costs if c.bound})
    if bandwidths:
        measured = ", ".join(f"{b / 1e9:.1f} GB/s on {device}" for device, b in bandwidths)
        parts.append(
            f"Limit tok/s: the run's memory bandwidth ({measured}; a copy of up to 1 GiB, read plus write, "
            "best of 5) over the bytes one token reads: the weights in memory plus the KV cache a step "
            "attends to (a static cache whole, a growing one at the prompt plus half the answer; weights "
            "only where the decode loop is not recorded). Decode % of limit = median decode tok/s / limit."
        )
    if any(c.decode_mode for c in costs):
        parts.append(
            "Decode loop: eager (generate's growing KV cache, one Python-driven step per token) or static "
            "(a KV cache preallocated for the suite's longest prompt plus the new-token limit, and the "
            "forward compiled with CUDA graphs where transformers compiles); the first generate of each "
            "shape, in brackets, holds the one-time compile a process pays, kept out of TTFT and decode."
        )
    cached = [c for c in costs if c.cache_mb]
    if cached:
        parts.append(
            "Memory to run includes the static KV cache, preallocated: "
            + ", ".join(f"{c.model} {c.cache_mb:.0f} MiB a sequence" for c in cached)
            + "."
        )
    if overhead:
        parts.append(overhead_sentence(overhead))
    return " ".join(parts)


def cost_section(
    costs: list[Cost], fr_data: Frontier | None, price: float | None, prefix: str = "plot_", overhead: str | None = None
) -> str:
    if not costs:
        return ""
    header = [
        "model",
        "memory to run MiB",
        "decode ms/token",
        "single-stream tok/s",
        "device-h per 1M tokens",
        "batched tok/s",
        "device-h per 1M (batched)",
    ]
    if price is not None:
        header += ["cost per 1M tokens", "cost per 1M (batched)"]
    header += ["energy per token"]
    bounded = any(c.bound for c in costs)
    if bounded:
        header[3:3] = ["limit tok/s", "decode % of limit"]
    loops = any(c.decode_mode for c in costs)
    if loops:
        header.insert(1, "decode loop (first generate s)")
    rows = []
    for c in costs:
        single, batched = Cost.hours_per_million(c.single_tok_per_s), Cost.hours_per_million(c.batched_tok_per_s)
        row = [
            c.model,
            fmt_num(c.memory_mb, "{:.0f}") + (f" ({c.memory_kind})" if c.memory_mb else ""),
            fmt_num(c.decode_s_per_token * 1000 if c.decode_s_per_token else None, "{:.1f}"),
            fmt_num(c.single_tok_per_s, "{:.1f}"),
            fmt_num(single, "{:.3g}"),
            fmt_num(c.batched_tok_per_s, "{:.1f}")
            + (f" (batch {c.batch_size})" if c.batch_size else "")
            + (f" (served, {c.served_level})" if c.served_level else ""),
            fmt_num(batched, "{:.3g}"),
        ]
        if price is not None:
            row += [_money(single, price), _money(batched, price)]
        row.append(f"{c.joules_per_token:.3g} J ({c.energy_source})" if c.joules_per_token else "not measured")
        if bounded:
            share = c.bound.share if c.bound else None
            row[3:3] = [
                fmt_num(c.bound.limit_tok_per_s if c.bound else None, "{:.1f}"),
                fmt_num(share * 100 if share is not None else None, "{:.0f}%")
                + ("" if not c.bound or c.bound.kv_bytes is not None else " (weights only)"),
            ]
        if loops:
            row.insert(1, _loop(c))
        rows.append(row)
    text = [
        "## Cost frontier",
        "Measured figures only. Device-hours per million generated tokens = 10^6 / measured tokens per "
        "second / 3600 (single stream: all new tokens of the prompt suite over all latencies). "
        "Memory to run: the running peak over the prompt and task stages (RSS on CPU; on GPU the CUDA peak "
        "summed over the GPUs plus weights offloaded to CPU RAM), what a user must provision once the model "
        "is loaded; the load's own peak is in the summary. "
        + (
            f"Money at the given --price-per-hour {price:g} per device-hour."
            if price is not None
            else "Money only with `--price-per-hour` (no built-in prices)."
        )
        + " Energy only where measured (NVML on GPUs, RAPL counters where the kernel exposes them), "
        "never estimated.",
        table(header, rows),
    ]
    if bounded or loops:
        text.insert(2, limit_prose(costs, overhead))
    if fr_data and fr_data.points:
        text.append(
            f"The plot shows {fr_data.outcomes.name} accuracy (95% Clopper-Pearson bars, "
            f"{len(fr_data.outcomes.table)} items) against cost; orange joins the Pareto-optimal models "
            "(no other model is both cheaper and more accurate), the star is the recommended one"
            + (" (and rows equal to it in size)" if fr_data.recommended and len(fr_data.recommended) > 1 else "")
            + "."
        )
        for key, label in (("memory", "memory to run"), ("decode", "decode time per token")):
            if fr_data.front.get(key):
                text.append(f"- Pareto-optimal by {label}: {', '.join(fr_data.front[key])}.")
        text.append(f"![{prefix}cost_frontier]({prefix}cost_frontier.png)")
    return "\n\n".join(text)


def scaling_section(fits: list[Fit], too_few: dict[str, int], name: str, prefix: str = "plot_") -> str:
    if not fits and not too_few:
        return ""
    lines = [
        "## Scaling fit",
        f"{name} accuracy against log10(total parameters), per family (and per engine and "
        f"precision: variants of one model are not sizes), fitted (least squares, scipy.stats.linregress) "
        f"only with {MIN_RUNGS} or more distinct parameter counts.",
    ]
    for fit in fits:
        lines.append(
            f"- **{fit.family}** ({', '.join(fit.models)}): {fit.per_decade:+.3f} ± "
            f"{fit.per_decade_stderr:.3f} accuracy per 10x parameters (R² {fit.r_squared:.2f})."
        )
    for family, count in too_few.items():
        lines.append(
            f"- {family}: {count} size{'' if count == 1 else 's'} measured; no fit is claimed below {MIN_RUNGS} sizes."
        )
    if fits:
        lines.append(f"![{prefix}scaling_fit]({prefix}scaling_fit.png)")
    return "\n\n".join(lines)


def page_cost(p: Page) -> str:
    return cost_section(p.a.costs, p.a.frontier, p.a.price_per_hour, p.prefix, p.a.overhead)


def page_scaling(p: Page) -> str:
    return scaling_section(p.a.fits, p.a.too_few, p.a.headline, p.prefix)
