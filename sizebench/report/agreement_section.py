"""The agreement section: how far each variant's next-token distributions and task choices are from its
reference rung's, without labels; and the line each undecided verdict paragraph adds."""

from __future__ import annotations

import pandas as pd

from sizebench.analysis import agreement
from sizebench.analysis.agreement import Protocol
from sizebench.report.markdown import fmt_num, table
from sizebench.runstore.frames import Frames
from sizebench.report.page import Page

TEXT_NAMES = {
    "corpus": "the bundled corpus (The Python Language Reference, 5 sections)",
    "answers": "the reference's own answers to the prompt suite",
}


def protocol_text(p: Protocol) -> str:
    """How the figures were measured, with the protocol the run recorded."""
    return (
        "KL(reference ‖ variant) in nats per token, computed as `llama-perplexity --kl-divergence` does: both models "
        "are fed the same token ids (teacher forcing), the corpus in "
        f"{p.chunk_tokens}-token chunks (BOS first where the tokenizer adds one) with the second half of each chunk "
        "scored, and each of the reference's answers after its rendered prompt, every answer token scored. *Same top*: tokens whose most likely next token is the "
        "reference's. *PPL ratio*: perplexity of the variant over the reference's on the same tokens (95% interval "
        "from the per-token log ratios). The tokens of one chunk or answer are not independent, so the mean KLD's "
        "standard error and the PPL ratio's interval treat each chunk or answer as one unit (statsmodels' "
        "cluster-robust variance of the mean; the units are counted beside the tokens); rows recorded before that "
        "treat tokens as independent, which makes both too narrow, and say so. *RMS Δp*: root mean "
        "square of the change in the probability of the token that came next. The reference's distributions are "
        f"stored as its top {p.top_k} log-probabilities per token plus the remaining mass, and the KL divergence is "
        'taken over those outcomes and "any other token": a lower bound of the exact one (merging outcomes never '
        "raises a KL divergence); on the offline ladder its mean measured 0.90-0.95 of the exact one "
        "(benchmarks/agreement.py). Two models are compared only when their tokenizers map every id the reference "
        "scores to the same token. Accuracy stays the verdict's criterion: agreement changes no recommendation."
    )


def _weights(df: pd.DataFrame) -> dict[str, float]:
    if "weights_mem_mb" not in df:
        return {}
    return dict(zip(df["model"], df["weights_mem_mb"]))


def agreement_section(fr: Frames, df: pd.DataFrame, mapping: dict[str, str], plot: str | None = None) -> str:
    figures = agreement.token_figures(fr, mapping)
    choices = agreement.choice_figures(fr, mapping)
    skipped = agreement.skipped(fr, mapping)
    if figures.empty and choices.empty and not skipped:
        return ""
    order = {m: i for i, m in enumerate(df["model"])}
    weights = _weights(df)
    parts = ["## Agreement with the reference rung", protocol_text(agreement.protocol(fr))]
    stored = agreement.distributions(fr)
    for _, r in stored.iterrows() if not stored.empty else ():
        counts = ", ".join(f"{n:,} tokens of {t}" for t, n in r["tokens"].items())
        vocab = int(r["vocab"])
        parts.append(
            f"Reference **{r['model']}**: {counts}; {vocab:,} ids compared; its distributions "
            f"take {r['bytes'] / 2**20:.1f} MiB in the run folder (`{r['file']}`, "
            f"{r['bytes_per_token']} bytes a token before compression)."
        )
    header = [
        "variant",
        "reference",
        "weights in memory MiB",
        "tokens (units)",
        "mean KLD ± stderr",
        "median",
        "p90",
        "p99",
        "max",
        "same top",
        "PPL ratio (95%)",
        "RMS Δp",
    ]
    for text in ("corpus", "answers"):
        rows = figures[figures["text"] == text] if not figures.empty else figures
        if rows.empty:
            continue
        rows = rows.assign(_o=rows["model"].map(order)).sort_values("_o", kind="stable")
        body = []
        for _, r in rows.iterrows():
            low, high = _ratio_interval(r)
            body.append(
                [
                    r["model"],
                    r["reference"],
                    fmt_num(weights.get(r["model"]), "{:.0f}"),
                    f"{r['tokens']:,} ({_units(r, text)})",
                    f"{r['kld_mean']:.5f}" + (f" ± {r['kld_stderr']:.5f}" if pd.notna(r["kld_stderr"]) else ""),
                    f"{r['kld_median']:.5f}",
                    f"{r['kld_p90']:.4f}",
                    f"{r['kld_p99']:.4f}",
                    f"{r['kld_max']:.3f}",
                    f"{100 * r['same_top']:.1f}%",
                    f"{r['ppl_ratio']:.4f} [{low:.4f}, {high:.4f}]",
                    f"{100 * r['rms_dp']:.2f}%",
                ]
            )
        parts.append(f"### Next tokens on {TEXT_NAMES[text]}\n\n" + table(header, body))
    if plot:
        parts.append(f"![mean KLD against weight memory]({plot})")
    if not choices.empty:
        choices = choices.assign(_o=choices["model"].map(order)).sort_values(["task", "_o"], kind="stable")
        body = [
            [
                r["model"],
                r["reference"],
                r["task"],
                f"{r['items']:,}",
                f"{100 * r['same_choice']:.1f}%",
                f"{r['choice_kld']:.4f}",
            ]
            for _, r in choices.iterrows()
        ]
        parts.append(
            "### Choices on the tasks\n\nPer task, from the per-item log-likelihoods: the share of items "
            "where the variant picks the reference's choice (the `acc` choice, right or wrong), and the "
            "mean KL divergence between the two models' probabilities over the choices (each model's "
            "choice log-likelihoods normalised to sum to one).\n\n"
            + table(["variant", "reference", "task", "items", "same choice", "mean choice KLD"], body)
        )
    if skipped:
        parts.append("Not compared: " + "; ".join(f"{m}: {why}" for m, why in skipped) + ".")
    return "\n\n".join(parts)


def _units(r, text: str) -> str:
    units = r.get("units")
    if units is None or pd.isna(units):
        return "± as if independent"
    return f"{int(units)} {'chunks' if text == 'corpus' else 'answers'}"


def _ratio_interval(r) -> tuple[float, float]:
    import math

    half = 1.96 * r["ln_ppl_ratio_stderr"] if pd.notna(r["ln_ppl_ratio_stderr"]) else float("nan")
    return r["ppl_ratio"] * math.exp(-half), r["ppl_ratio"] * math.exp(half)


def verdict_notes(fr: Frames, mapping: dict[str, str]) -> dict[str, str]:
    """model -> the clause an undecided verdict paragraph adds: its agreement with its reference."""
    figures = agreement.token_figures(fr, mapping)
    notes = {}
    for model, rows in figures.groupby("model", sort=False) if not figures.empty else ():
        r = rows.sort_values("text", key=lambda s: s.map({"corpus": 0, "answers": 1})).iloc[0]
        notes[model] = (
            f" Beside accuracy, its next tokens agree with {r['reference']}'s on "
            f"{100 * r['same_top']:.1f}% of {r['tokens']:,} tokens of {r['text']} (same top token), "
            f"mean KLD {r['kld_mean']:.4f} nats; accuracy decides."
        )
    return notes


def page_agreement(p: Page) -> str:
    drawn = next((f for f in p.plot_files if f.endswith("agreement.png")), None)
    return agreement_section(p.fr, p.df, p.a.agreement, drawn)
