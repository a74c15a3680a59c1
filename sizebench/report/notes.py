"""What a reader must know to read the numbers: how answers were decoded, which tasks were skipped."""

from __future__ import annotations

from sizebench.runstore.frames import Frames
from sizebench.specs.settings import GenSettings
from sizebench.report.markdown import table


def decoding(fr: Frames) -> str:
    """How the answers were decoded, from the runs' plans: one phrase, or one per run when they differ."""
    described = []
    for meta in fr.metas:
        plan = meta.get("plan", {})
        if "prompts" not in plan.get("stages", ["prompts"]) or "gen" not in plan:
            continue
        fields = set(GenSettings.__dataclass_fields__)
        text = GenSettings(**{k: v for k, v in plan["gen"].items() if k in fields}).describe()
        described.append((meta.get("run_id", "?"), text))
    texts = list(dict.fromkeys(t for _, t in described))
    if not texts:
        return "greedy decoding"
    if len(texts) == 1:
        return texts[0]
    return "; ".join(f"run {run}: {text}" for run, text in described)


def skipped_tasks(fr: Frames) -> str:
    """Skipped lm-eval tasks grouped by reason, for the terminal: which tasks, for which models, why."""
    skipped = fr["task_skipped"]
    if skipped.empty:
        return ""
    rows = []
    for reason, group in skipped.groupby("reason", sort=True):
        rows.append([", ".join(sorted(set(group["task"]))), ", ".join(dict.fromkeys(group["model"])), reason])
    return "## Skipped tasks\n\n" + table(["tasks", "models", "why"], rows)


def overhead_sentence(reason: str) -> str:
    return (
        f"**These decode figures are overhead-bound**: {reason}; they measure the decode loop more than "
        "the model, and the conclusion draws no speed ratios from them."
    )
