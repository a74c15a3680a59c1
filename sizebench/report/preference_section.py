"""The Preference section: blind pairwise votes on the prompt answers, per source of votes, with the
preference verdict, win rates, Bradley-Terry strengths, the LLM judges' worth and a drill-down per step."""

from __future__ import annotations

import math


from sizebench.analysis import fixed_sequence, paired, preference
from sizebench.analysis.preference import Preference
from sizebench.report.markdown import table
from sizebench.report.page import Page

TEXT_CHARS = 140
JUDGE_READ = (
    "its prompt (below) is rendered in the judge's own format and ends where the reply begins; the "
    'choice is whichever of the replies "A", "B" and "tie" has the highest log-likelihood '
    "(summed over its tokens), and all three log-likelihoods are stored as its raw output"
)


def _interval(low: float, high: float) -> str:
    return f"[{low:+.3f}, {high:+.3f}]"


def _pv(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _kappa(value: float) -> str:
    return "undefined (no variation)" if math.isnan(value) else f"{value:+.2f}"


def _trim(text) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def _name(p: Preference, order: list[str]) -> str:
    if not p.is_judge:
        return "**Human votes**"
    model = p.source[len(preference.JUDGE_PREFIX) :]
    return f"**LLM judge {model}**" + (" (itself one of the rungs)" if model in order else "")


def _verdict_text(p: Preference) -> str:
    v = p.verdict
    if v is None:
        return "nothing was judged against the baseline, so there is no preference verdict."
    if v.recommended == v.baseline:
        text = f"**{v.baseline}**, the baseline, is the one to take: no smaller rung is shown within the margin."
    else:
        r = v.vs_baseline[v.recommended]
        text = (
            f"**{v.recommended}** is enough: the mean outcome for {v.baseline} (the baseline) against it is "
            f"{r.diff:+.3f} ({r.a_only} prompts to {v.baseline}, {r.b_only} to it, of {r.n} judged), 95% interval "
            f"{_interval(r.low, r.high)}, below the {v.margin:g} margin (p at the margin "
            f"{_pv(v.adjusted[v.recommended])})."
        )
    worse = [m for m in v.vs_baseline if v.status(m) == fixed_sequence.WORSE]
    if worse:
        text += (
            " Worse by the margin or more: "
            + "; ".join(
                f"{m} ({v.vs_baseline[m].diff:+.3f} {_interval(v.vs_baseline[m].low, v.vs_baseline[m].high)})"
                for m in worse
            )
            + "."
        )
    for m in v.undecided:
        r = v.vs_baseline[m]
        if v.status(m) == fixed_sequence.NOT_REACHED:
            text += (
                f" **{m} is not tested**: the sequence stopped at {' and '.join(v.stopped_at)}; on its own the "
                f"baseline - it is {r.diff:+.3f}, 95% interval {_interval(r.low, r.high)}."
            )
            continue
        text += (
            f" **The votes cannot decide** whether {m} would do: baseline - it is {r.diff:+.3f}, 95% interval "
            f"{_interval(r.low, r.high)} on {r.n} judged prompts ({r.a_only} to {v.baseline}, {r.b_only} to "
            f"{m}), which contains the margin (p at the margin {_pv(v.adjusted[m])})."
        )
    return text


def _gate(p: Preference) -> str:
    """Why a judge may or may not decide: the three conditions of the gate, each with its figure."""
    failed = []
    if not p.consistency.above_chance:
        failed.append("its position consistency is not above chance")
    if p.non_tie < preference.GATE_NON_TIE:
        failed.append(
            f"it prefers one answer on only {p.non_tie:.0%} of its determined pairs (at least "
            f"{preference.GATE_NON_TIE:.0%} needed)"
        )
    k = p.kappa_vs_human
    if k is not None and not k.passes:
        failed.append(
            f"its kappa against the human votes is {_kappa(k.kappa)} (95% lower bound "
            f"{_kappa(k.low)}; at least {preference.GATE_KAPPA:g} with a lower bound above 0 needed)"
        )
    if failed:
        return "**It decides nothing here, no verdict: " + "; ".join(failed) + ".**"
    return f"It passes the judge gate (one answer preferred on {p.non_tie:.0%} of its determined pairs). "


def _raters(votes: str) -> list[str]:
    return [] if votes == "identical answers" else [v.rsplit(": ", 1)[0] for v in votes.split("; ")]


def paragraph(p: Preference, order: list[str]) -> str:
    head = _name(p, order)
    counts = p.outcomes
    determined = int(counts["outcome"].notna().sum())
    undetermined = len(counts) - determined
    identical = int((counts["label"] == "identical").sum())
    intro = f"{head} ({determined} prompts and pairs judged"
    if identical:
        intro += f", {identical} of them identical answers"
    if undetermined:
        intro += f"; {undetermined} undetermined"
    if not p.is_judge:
        raters = {r for v in p.outcomes["votes"] for r in _raters(v)}
        intro += f"; {len(raters)} rater" + ("" if len(raters) == 1 else "s")
    intro += "): "
    if p.is_judge:
        c = p.consistency
        if c is None or not c.pairs:
            return intro + "no prompt was judged in both orders, so its position consistency is unknown; no verdict."
        intro += (
            f"position consistency {c.consistent}/{c.pairs} ({c.consistent / c.pairs:.0%}) against "
            f"{c.chance:.0%} by chance from its own choice frequencies (binomial p {_pv(c.p)}); it chose A in "
            + (f"{c.first_shown:.0%}" if not math.isnan(c.first_shown) else "none")
            + " of its non-tie choices. "
        )
        k = p.kappa_vs_human
        if k is not None:
            bound = "" if math.isnan(k.kappa) else f" (95% lower bound {_kappa(k.low)})"
            intro += (
                f"Agreement with the human votes: Cohen's kappa {_kappa(k.kappa)}{bound} on {k.pairs} "
                "non-identical prompts and pairs. "
                if k.pairs
                else "Agreement with the human votes: none measurable, no non-identical prompt and pair is "
                "determined by both. "
            )
        if not p.decides:
            return intro + _gate(p)
        intro += _gate(p)
    return intro + _verdict_text(p)


def _tally_table(p: Preference) -> str:
    rows = []
    for t in p.tallies:
        if t.n:
            rate, low, high = t.win_rate()
            shown = f"{rate:.2f} [{low:.2f}, {high:.2f}]"
        else:
            shown = "-"
        rows.append(
            [f"{t.small} vs {t.big}", t.big_wins, t.small_wins, t.ties, t.bad, t.identical, t.undetermined, shown]
        )
    return table(
        [
            "pair (smaller vs bigger)",
            "bigger preferred",
            "smaller preferred",
            "tie",
            "both bad",
            "identical answers",
            "undetermined",
            "bigger's win rate (ties half) [95%]",
        ],
        rows,
    )


def _strength_table(p: Preference) -> str:
    rows = [[s.model, f"{s.value:+.2f}", _interval(s.low, s.high)] for s in p.strengths]
    return table(["model", "Bradley-Terry log-strength (largest = 0)", "95% bootstrap interval"], rows)


def _drilldown(prefs: list[Preference], fr, order: list[str]) -> str:
    prompts = fr["prompt"].drop_duplicates(["model", "prompt_id"], keep="last").set_index(["model", "prompt_id"])
    parts = []
    for small, big in zip(order, order[1:]):
        per_source = {}
        for p in prefs:
            rows = p.outcomes[(p.outcomes["small"] == small) & (p.outcomes["big"] == big)]
            per_source[p.source] = rows.set_index("prompt_id")
        won = sorted(
            {pid for rows in per_source.values() for pid, label in rows["label"].items() if label in ("big", "small")}
        )
        if not won:
            continue
        names = {"big": f"{big}", "small": f"{small}"}
        body = []
        for pid in won:
            cells = []
            for p in prefs:
                rows = per_source[p.source]
                if pid not in rows.index:
                    cells.append("")
                    continue
                label, votes = rows.loc[pid, "label"], rows.loc[pid, "votes"]
                cells.append(
                    f"{names.get(label, label)} ({votes})"
                    if label in ("big", "small") or p.is_judge
                    else f"{label} ({votes})"
                )
            body.append(
                [
                    pid,
                    _trim(prompts.loc[(small, pid), "prompt"]),
                    _trim(prompts.loc[(small, pid), "answer"]),
                    _trim(prompts.loc[(big, pid), "answer"]),
                    *cells,
                ]
            )
        header = ["prompt id", "prompt", f"{small} answered", f"{big} answered", *[p.source for p in prefs]]
        parts.append(
            f"### Preference: {small} -> {big}\n\nThe prompts one side won for at least one source of "
            "votes, with both answers and every source's outcome (its votes in brackets; an LLM judge's "
            "two orders as `smaller as A` and `bigger as A`).\n\n" + table(header, body)
        )
    return "\n\n".join(parts)


def rule(margin: float) -> str:
    return (
        f"**The preference rule.** Per judged prompt of a pair: +1 when the baseline's answer is preferred, "
        f"-1 when the other's is, 0 for a tie, both bad, or identical answers (these are not shown to raters "
        f"and are counted apart). The baseline is the largest rung, against which every model is judged, or "
        f"`--baseline`; the mean outcome against it is the difference of two paired proportions (the prompts "
        f"the baseline wins and the prompts the other wins), and the recommended model is chosen exactly as "
        f"the accuracy verdict's (one implementation): Tango's score test at `--margin {margin:g}` in a fixed "
        f"sequence from the largest rung down, stopping at the first rung not shown within the margin, Holm "
        f"within rungs of equal size, so the chance of recommending a model the source in truth prefers less "
        f"than the baseline by the margin or more is at most {paired.ALPHA:.1%} per source of votes. McNemar's "
        "exact test (a sign test) is not used for the margin. Win rates are the bigger model's, ties counting "
        "half, with Tango's interval. Several raters on one prompt and pair count once, as the sign of their "
        "summed outcomes. Sources of votes are never pooled. An LLM judge judges every pair in both orders; "
        "where the two orders disagree the prompt is undetermined: counted and shown, but excluded, never a "
        "tie. **The judge gate** decides whether an LLM judge's votes give a verdict at all: its position "
        "consistency must be above chance (one-sided binomial test against the agreement its own frequencies "
        f"of A, B and tie give by chance), it must prefer one answer on at least {preference.GATE_NON_TIE:.0%} "
        "of its determined pairs (a judge that calls most pairs a tie would find every rung within the "
        f"margin), and where people voted on at least {preference.GATE_HUMAN_PAIRS} of the same non-identical "
        f"pairs, its Cohen's kappa against them must be at least {preference.GATE_KAPPA:g} with a 95% lower "
        "bound above 0 (statsmodels' interval). Identical-answer pairs, ties for every source without "
        "judging, count in neither the kappa nor its number of pairs. The gate controls which judge may "
        "decide: one that cannot tell answers apart or disagrees with people; it does not make the judge's "
        "preference a person's, and the verdict's error rate is about the judge's own preference. "
        "Bradley-Terry strengths: logistic "
        f"regression (scikit-learn, L2 with C = {preference.RIDGE_C:g}) on every judged prompt and pair, ties "
        f"half a win each, with {preference.BOOTSTRAP} bootstrap resamples of those outcomes (seed "
        f"{preference.SEED})."
    )


def preference_section(fr, margin: float, baseline: str | None = None) -> str:
    if "vote" not in fr.tables or fr["vote"].empty:
        return ""
    from sizebench.judging import judge_prompt

    order = preference.ladder(fr)
    prefs = preference.analyse(fr, order, margin, baseline)
    if not prefs:
        return ""
    parts = [
        "## Preference",
        "Blind side-by-side votes on the prompt suite's answers (`sizebench judge`): each "
        "pair of answers shown with sides at random, the assignment recorded.",
        *[paragraph(p, order) for p in prefs],
        rule(margin),
    ]
    raters = preference.human_agreement(fr, order)
    if raters:
        parts.append(
            "Agreement between raters (Cohen's kappa on bigger / smaller / tie / both bad): "
            + "; ".join(f"{a} and {b}: {_kappa(k)} on {n} prompts and pairs" for a, b, k, n in raters)
            + "."
        )
    for p in prefs:
        name = p.source if p.is_judge else "human votes"
        parts.append(f"### {name}\n\n" + _tally_table(p))
        if p.strengths:
            parts.append(_strength_table(p))
    if any(p.is_judge for p in prefs):
        parts.append(
            "**How an LLM judge's choice is read:** " + JUDGE_READ + ". The judge's prompt, with the "
            "request (and its passage), answer A and answer B filled in:\n\n"
            + "\n".join("    " + line for line in judge_prompt.TEMPLATE.splitlines())
        )
    drill = _drilldown(prefs, fr, order)
    if drill:
        parts.append(drill)
    return "\n\n".join(parts)


def page_preference(p: Page) -> str:
    return preference_section(p.fr, p.a.margin, p.a.baseline)
