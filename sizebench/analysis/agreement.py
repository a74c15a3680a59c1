"""Agreement with the reference rung, from stored records: next-token figures, and choices on the tasks.

The next-token figures were measured by the agreement stage (sizebench.stages.agreement_stage). The choice
figures are computed here from the per-item log-likelihoods every model already stores: per task, the
share of items where a variant picks the reference's choice, and the KL divergence between the two
models' probabilities over the choices (each model's choice log-likelihoods normalised to sum to one).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sizebench.errors import SizebenchError
from sizebench.measurement.divergence import bytes_per_token, choice_agreement
from sizebench.runstore.frames import Frames


@dataclass(frozen=True)
class Protocol:
    """How the agreement stage measured, as its DistributionsRecords store it."""

    chunk_tokens: int  # the corpus's chunk length, the second half of each scored
    max_chunks: int  # corpus chunks fed at most
    top_k: int  # ids of the reference's distribution kept per token


# What the agreement stage ran with before its records stored the protocol; such runs (and a run whose
# references stored no distributions) render through it.
RECORDED_BEFORE = Protocol(chunk_tokens=512, max_chunks=8, top_k=128)


def _rows(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return table[table["model"] == model] if not table.empty and "model" in table else pd.DataFrame()


def stored_references(fr: Frames) -> list[str]:
    table = fr.tables.get("distributions", pd.DataFrame())
    return list(dict.fromkeys(table["model"])) if not table.empty else []


def references(fr: Frames, chosen: str | None = None) -> dict[str, str]:
    """variant -> reference, as the agreement stage recorded (measured or skipped); `chosen` keeps one
    reference's variants and must name a rung with stored distributions."""
    stored = stored_references(fr)
    if chosen is not None and chosen not in stored:
        have = ", ".join(stored) if stored else "none in these runs"
        raise SizebenchError(f"--reference {chosen}: no next-token distributions stored for it (stored: {have})")
    out = {}
    for kind in ("agreement", "agreement_skipped"):
        table = fr.tables.get(kind, pd.DataFrame())
        for _, r in table.iterrows() if not table.empty else ():
            if isinstance(r["reference"], str) and r["model"] != r["reference"]:
                out[r["model"]] = r["reference"]
    return {m: ref for m, ref in out.items() if chosen is None or ref == chosen}


def protocol(fr: Frames) -> Protocol:
    """The protocol the first reference with stored distributions recorded, else RECORDED_BEFORE."""
    table = fr.tables.get("distributions", pd.DataFrame())
    if "chunk_tokens" in table:
        for _, r in table[table["chunk_tokens"].notna()].iterrows():
            return Protocol(int(r["chunk_tokens"]), int(r["max_chunks"]), int(r["top_k_asked"]))
    return RECORDED_BEFORE


def distributions(fr: Frames) -> pd.DataFrame:
    """The references' stored distributions, with what each scored token takes before compression."""
    table = fr.tables.get("distributions", pd.DataFrame())
    if table.empty:
        return table
    return table.assign(
        bytes_per_token=[bytes_per_token(int(v), int(k)) for v, k in zip(table["vocab"], table["top_k"])]
    )


def token_figures(fr: Frames, mapping: dict[str, str]) -> pd.DataFrame:
    table = fr.tables.get("agreement", pd.DataFrame())
    if table.empty:
        return table
    keep = table[[mapping.get(m) == ref for m, ref in zip(table["model"], table["reference"])]]
    return keep.reset_index(drop=True)


def skipped(fr: Frames, mapping: dict[str, str]) -> list[tuple[str, str]]:
    table = fr.tables.get("agreement_skipped", pd.DataFrame())
    if table.empty:
        return []
    return [
        (r["model"], r["reason"]) for _, r in table.iterrows() if r["model"] in mapping or r["model"] == r["reference"]
    ]


def choice_figures(fr: Frames, mapping: dict[str, str]) -> pd.DataFrame:
    """One row per (variant, task): items compared, same-choice share, mean KL of the choice probabilities."""
    items = fr.tables.get("items", pd.DataFrame())
    rows = []
    if items.empty:
        return pd.DataFrame(rows)
    for model, reference in mapping.items():
        mine, ref = _rows(items, model), _rows(items, reference)
        for task in [t for t in ref["task"] if t in set(mine["task"])] if not mine.empty and not ref.empty else []:
            a, b = ref[ref["task"] == task].iloc[-1], mine[mine["task"] == task].iloc[-1]
            ref_lls = dict(zip(a["doc_ids"], a["lls"]))
            pairs = [(ref_lls[d], ll) for d, ll in zip(b["doc_ids"], b["lls"]) if d in ref_lls and len(ll) > 1]
            if pairs:
                same, kl = choice_agreement([p for p, _ in pairs], [q for _, q in pairs])
                rows.append(
                    {
                        "model": model,
                        "reference": reference,
                        "task": task,
                        "items": len(pairs),
                        "same_choice": same,
                        "choice_kld": kl,
                    }
                )
    return pd.DataFrame(rows)
