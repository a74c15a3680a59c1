"""The load sweep in the report: per rung and level, throughput, latency percentiles with counts, goodput; and its plot."""

from __future__ import annotations

from pathlib import Path

from sizebench.analysis import serving
from sizebench.analysis.serving import Level
from sizebench.report.markdown import table
from sizebench.report.page import Page


def _cell(stats: dict, q: int, scale: float = 1000.0) -> str:
    value = stats.get(q)
    return "-" if value is None else f"{value * scale:.0f}"


def _latency(stats: dict) -> str:
    """'p50 / p90 / p99 (n)' in ms; p99 '-' below 100 requests."""
    return f"{_cell(stats, 50)} / {_cell(stats, 90)} / {_cell(stats, 99)} ({stats['n']})"


def serving_section(swept: list[Level], prefix: str = "plot_") -> str:
    if not swept:
        return ""
    slo = next((lv for lv in swept if lv.slo_share is not None), None)
    rows = []
    for lv in swept:
        label = lv.label + (f" ⚠ client {lv.behind_s * 1000:.0f} ms behind" if lv.fell_behind else "")
        rows.append(
            [
                lv.model,
                label,
                str(lv.requests),
                str(lv.errors),
                f"{lv.req_per_s:.2f}",
                f"{lv.out_tok_per_s:.1f}",
                _latency(lv.stats["ttft"]),
                _latency(lv.stats["tpot"]),
                _latency(lv.stats["itl"]),
                _latency(lv.stats["e2e"]),
                "-" if lv.goodput is None else f"{lv.goodput:.2f} ({lv.slo_share:.0%}{' ✅' if lv.meets_slo else ''})",
            ]
        )
    servers = sorted({(lv.model, lv.serving) for lv in swept})
    text = [
        "## Load sweep",
        "Each served rung under load, level by level: closed loop (`concurrency N`: N requests in flight, a new one "
        "sent as each finishes) or Poisson arrivals (`R req/s`). Latencies in ms as p50 / p90 / p99 (requests "
        f"measured; for ITL, the gaps); p99 only from {serving.P99_MIN} requests. TTFT: request sent to first streamed text; TPOT: "
        "(E2E - TTFT) / (output tokens - 1) per request; ITL: every gap between streamed chunks, pooled; E2E: "
        "sent to last chunk. Throughput over the level's wall time (first request sent to last answer). "
        + (
            "Goodput: requests/s meeting every SLO metric ("
            + ", ".join(f"{m} <= {s:g} s" for m, s in slo_items(swept))
            + f"), with the share of requests; ✅: at least "
            f"{serving.SLO_SHARE:.0%} met it."
            if slo
            else "No --slo given: no goodput."
        ),
        *(
            [
                f"⚠: the client sent some request of that level more than {serving.FELL_BEHIND_S * 1000:.0f} ms after "
                "it was due (this machine could not keep the schedule); latencies count from when each was due, so "
                "the delay is in them, but the server saw less load than the level names."
            ]
            if any(lv.fell_behind for lv in swept)
            else []
        ),
        "Servers: " + "; ".join(f"{model}: {how}" for model, how in servers) + ".",
        table(
            [
                "model",
                "level",
                "requests",
                "errors",
                "req/s",
                "output tok/s",
                "TTFT ms",
                "TPOT ms",
                "ITL ms",
                "E2E ms",
                "goodput req/s",
            ],
            rows,
        ),
        "The plot shows median E2E and TTFT against output-token throughput, one line per rung through its levels.",
        f"![{prefix}latency_throughput]({prefix}latency_throughput.png)",
    ]
    return "\n\n".join(text)


def slo_items(swept: list[Level]) -> list[tuple[str, float]]:
    """The SLO the levels were judged by (as given to the run)."""
    return [(m, s) for m, s in next((lv.slo for lv in swept if lv.slo), {}).items()]


def plot(swept: list[Level], out_dir: Path, prefix: str) -> str | None:
    if not swept:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sizebench.report.plots import _save

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for model in dict.fromkeys(lv.model for lv in swept):
        mine = sorted((lv for lv in swept if lv.model == model), key=lambda lv: lv.out_tok_per_s)
        x = [lv.out_tok_per_s for lv in mine]
        for ax, metric in zip(axes, ("e2e", "ttft")):
            y = [(lv.stats[metric][50] or 0) * 1000 for lv in mine]
            ax.plot(x, y, marker="o", label=model)
            for lv, xi, yi in zip(mine, x, y):
                ax.annotate(
                    lv.label.replace("concurrency ", "c"),
                    (xi, yi),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, 3),
                )
    for ax, metric in zip(axes, ("E2E", "TTFT")):
        ax.set_xlabel("output tokens/s (all requests)")
        ax.set_ylabel(f"median {metric} (ms)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    name = f"{prefix}latency_throughput.png"
    _save(fig, out_dir / name)
    return name


def page_serving(p: Page) -> str:
    return serving_section(serving.levels(p.fr), p.prefix)
