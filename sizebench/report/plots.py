"""Scaling plots next to the report: accuracy, decode speed and peak memory against parameters."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sizebench.system import atomic


def _short(params: float) -> str:
    return f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"


def _save(fig, path: Path) -> None:
    """Atomically (a reader never sees half a PNG), without the version stamp that breaks byte-identity."""
    import matplotlib.pyplot as plt

    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def write(summary: pd.DataFrame, size_axis, out_dir: Path, prefix: str = "plot_") -> list[str]:
    """PNG files written (names relative to out_dir); none when there is nothing to plot.

    The x axis is the report's size axis (`sizebench.analysis.sizes`): parameters, or weight memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xcol = size_axis.column
    ok = summary[(summary["status"] == "ok") & summary[xcol].notna()]
    short = _short if xcol == "params" else (lambda mib: f"{mib:.0f} MiB")
    if ok.empty:
        return []
    written = []
    tasks = sorted(c.removeprefix("task:") for c in ok.columns if c.startswith("task:"))

    def figure(name: str, ylabel: str, draw) -> None:
        from matplotlib.ticker import NullFormatter

        fig, ax = plt.subplots(figsize=(6.4, 4), dpi=100)
        draw(ax)
        ax.set_xscale("log")
        ax.set_xticks(list(ok[xcol]), [f"{m}\n{short(p)}" for m, p in zip(ok["model"], ok[xcol])], fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(ok[xcol].min() / 1.5, ok[xcol].max() * 1.5)
        ax.set_ylim(bottom=0)  # differences drawn from zero, not magnified
        ax.set_xlabel(
            "parameters, total incl. embeddings (log scale)" if xcol == "params" else f"{size_axis.title} (log scale)"
        )
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        fig.tight_layout()
        _save(fig, out_dir / (prefix + name))
        written.append(prefix + name)

    # With mixed precisions, one line per model through its precisions (smollm2-135m@fp32, @bf16, ...).
    lines = ok["base"] if xcol != "params" else pd.Series("", ok.index)
    if tasks:

        def accuracy(ax):
            for task in tasks:
                for line in lines.unique():
                    points = [
                        (r[xcol], *r[f"task:{task}"][:2])
                        for _, r in ok[lines == line].iterrows()
                        if isinstance(r.get(f"task:{task}"), tuple)
                    ]
                    if not points:
                        continue
                    x, y, e = zip(*points)
                    ax.errorbar(
                        x,
                        y,
                        yerr=[0 if v is None or math.isnan(v) else v for v in e],
                        marker="o",
                        capsize=3,
                        label=f"{task} {line}".strip(),
                    )
            ax.legend(fontsize=7)

        figure("accuracy.png", "accuracy (acc, ± stderr)", accuracy)
    for column, name, label in (
        ("decode_tok_per_s", "decode_speed.png", "decode tokens / s (median)"),
        ("peak_rss_mb", "peak_memory.png", "running peak RSS of the worker (MiB)"),
    ):
        if column in ok and ok[column].notna().any():

            def draw(ax, column=column):
                for line in lines.unique():
                    rows = ok[(lines == line) & ok[column].notna()]
                    ax.plot(rows[xcol], rows[column], marker="o", label=line or None)
                if lines.nunique() > 1:
                    ax.legend(fontsize=7)

            figure(name, label, draw)
    return written


def frontier(
    points: dict[str, tuple[float | None, float | None, float, float, float]],
    recommended: list[str],
    front: dict[str, list[str]],
    accuracy_label: str,
    out_dir: Path,
    prefix: str = "plot_",
) -> str | None:
    """Accuracy (95% interval bars) against peak memory and against decode time per token.

    points: model -> (memory MiB, decode ms/token, accuracy, low, high); front: axis -> Pareto models;
    recommended: the recommended row and those equal to it in size (one star each).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_data = [(0, "memory to run: running peak (MiB)", "memory"), (1, "decode time per token (ms)", "decode")]
    axes_data = [a for a in axes_data if any(v[a[0]] is not None for v in points.values())]
    if not axes_data:
        return None
    fig, axes = plt.subplots(1, len(axes_data), figsize=(5.2 * len(axes_data), 4), dpi=100, squeeze=False)
    for ax, (index, label, key) in zip(axes[0], axes_data):
        shown = {m: v for m, v in points.items() if v[index] is not None}
        for v in shown.values():
            ax.errorbar(
                [v[index]],
                [v[2]],
                yerr=[[v[2] - v[3]], [v[4] - v[2]]],
                marker="o",
                capsize=3,
                color="tab:blue",
                alpha=0.8,
            )
        ax.set_ylim(0, 1)
        _label(ax, {model: (v[index], v[2]) for model, v in shown.items()})
        line = [m for m in front.get(key, []) if m in shown]
        if len(line) > 1:
            ax.plot(
                [shown[m][index] for m in line], [shown[m][2] for m in line], color="tab:orange", label="Pareto-optimal"
            )
        starred = [m for m in recommended if m in shown]
        if starred:
            ax.plot(
                [shown[m][index] for m in starred],
                [shown[m][2] for m in starred],
                marker="*",
                markersize=16,
                color="tab:red",
                linestyle="none",
                label=f"recommended: {' = '.join(starred)}",
            )
        ax.set_xlabel(label)
        ax.set_ylabel(accuracy_label)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    name = prefix + "cost_frontier.png"
    _save(fig, out_dir / name)
    return name


def _label(ax, at: dict[str, tuple[float, float]], size: int = 7) -> None:
    """Each name beside its point, moved a line down (then up) while it would overlap a name already placed."""
    ax.autoscale_view()
    to_pixels, per_point = ax.transData.transform, ax.figure.dpi / 72
    line, char = 1.3 * size * per_point, 0.6 * size * per_point  # a text line's height, a character's width
    placed: list[tuple[float, float, float]] = []  # left, right, baseline of each name, in pixels
    for name, (x, y) in sorted(at.items(), key=lambda item: (-item[1][1], item[1][0])):
        px, py = to_pixels((x, y))
        left, right = px + 5 * per_point, px + 5 * per_point + char * len(name)
        for step in (0, -1, 1, -2, 2, -3, 3, -4, 4):
            base = py + 5 * per_point + step * line
            if not any(left < r and other < right and abs(base - b) < line for other, r, b in placed):
                break
        placed.append((left, right, base))
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, (base - py) / per_point), fontsize=size)


def scaling_fit(fits: list, accuracy_label: str, out_dir: Path, prefix: str = "plot_") -> str | None:
    """Accuracy against parameters (log) per family with its fitted line; None without a fit."""
    if not fits:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=100)
    for fit in fits:
        ax.plot(fit.params, fit.accuracy, marker="o", linestyle="none", label=fit.family)
        xs = [min(fit.params), max(fit.params)]
        ax.plot(
            xs,
            [fit.intercept + fit.per_decade * math.log10(x) for x in xs],
            linestyle="--",
            label=f"{fit.family}: {fit.per_decade:+.3f} per 10x params",
        )
    ax.set_xscale("log")
    ax.set_xlabel("total parameters (log scale)")
    ax.set_ylabel(accuracy_label)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    name = prefix + "scaling_fit.png"
    _save(fig, out_dir / name)
    return name


def agreement(figures: pd.DataFrame, weights: dict[str, float], out_dir: Path, prefix: str = "plot_") -> str | None:
    """Mean KLD on the corpus against weight memory, both log scale, one series per reference; None without
    two points to draw."""
    rows = (
        figures[(figures["text"] == "corpus") & figures["model"].map(lambda m: weights.get(m) is not None)]
        if not figures.empty
        else figures
    )
    rows = rows[rows["kld_mean"] > 0] if not rows.empty else rows
    if len(rows) < 1:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=100)
    at = {}
    for reference, group in rows.groupby("reference", sort=False):
        xs = [weights[m] for m in group["model"]]
        ax.plot(xs, list(group["kld_mean"]), marker="o", linestyle="none", label=f"against {reference}")
        at.update({m: (x, y) for m, x, y in zip(group["model"], xs, group["kld_mean"])})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("weights in memory, MiB (log scale)")
    ax.set_ylabel("mean KL divergence, nats/token (log scale)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    _label(ax, at)
    fig.tight_layout()
    name = prefix + "agreement.png"
    _save(fig, out_dir / name)
    return name
