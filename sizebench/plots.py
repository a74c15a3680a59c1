"""Scaling plots next to the report: accuracy, decode speed and peak memory against parameters."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd



def _short(params: float) -> str:
    return f"{params / 1e9:.1f}B" if params >= 1e9 else f"{params / 1e6:.0f}M"


def write(summary: pd.DataFrame, out_dir: Path) -> list[str]:
    """PNG files written (names relative to out_dir); none when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = summary[(summary["status"] == "ok") & summary["params"].notna()]
    if ok.empty:
        return []
    written = []
    tasks = sorted(c.removeprefix("task:") for c in ok.columns if c.startswith("task:"))

    def figure(name: str, ylabel: str, draw) -> None:
        from matplotlib.ticker import NullFormatter

        fig, ax = plt.subplots(figsize=(6.4, 4), dpi=100)
        draw(ax)
        ax.set_xscale("log")
        ax.set_xticks(list(ok["params"]), [f"{m}\n{_short(p)}" for m, p in zip(ok["model"], ok["params"])], fontsize=8)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(ok["params"].min() / 1.5, ok["params"].max() * 1.5)
        ax.set_ylim(bottom=0)  # differences drawn from zero, not magnified
        ax.set_xlabel("parameters, total incl. embeddings (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / name, metadata={"Software": None})
        plt.close(fig)
        written.append(name)

    if tasks:
        def accuracy(ax):
            for task in tasks:
                points = [(r["params"], *r[f"task:{task}"][:2]) for _, r in ok.iterrows()
                          if isinstance(r.get(f"task:{task}"), tuple)]
                x, y, e = zip(*points)
                ax.errorbar(x, y, yerr=[0 if v is None or math.isnan(v) else v for v in e],
                            marker="o", capsize=3, label=task)
            ax.legend(fontsize=7)
        figure("plot_accuracy.png", "accuracy (acc, ± stderr)", accuracy)
    for column, name, label in (("decode_tok_per_s", "plot_decode_speed.png", "decode tokens / s (median)"),
                                ("peak_rss_mb", "plot_peak_memory.png", "peak RSS of the worker (MiB)")):
        if column in ok and ok[column].notna().any():
            rows = ok[ok[column].notna()]
            figure(name, label, lambda ax, rows=rows, column=column: ax.plot(rows["params"], rows[column], marker="o"))
    return written
