"""The verdict that opens the report, its evidence (paired comparisons) and the flips drill-down."""

from __future__ import annotations

from sizebench.analysis import paired
from sizebench.runstore.frames import Frames
from sizebench.analysis.paired import Paired
from sizebench.report.markdown import table
from sizebench.analysis.sizes import SizeAxis
from sizebench.analysis.fixed_sequence import NOT_REACHED, WORSE
from sizebench.analysis.verdict import POOLED, PROMPTS, Verdict, flips
from sizebench.report.agreement_section import verdict_notes
from sizebench.report.page import Page

FLIP_EXAMPLES = 10
CHUNKED_RULE = (
    "**Until decided.** A task marked `--until-decided` drew its items in a seeded random order; every rung but the "
    "baseline answered all of them, the baseline chunk by chunk until no rung the sequence tests was undecided. Its "
    "comparisons use the items the baseline answered, in the order drawn, and an anytime-valid 95% confidence "
    "sequence for the difference over all the task's items (Waudby-Smith & Ramdas's hedged betting sequence, "
    "sampling without replacement), valid at every chunk boundary and so where the run stopped; p at the margin is "
    "its anytime-valid p-value, in the same fixed sequence and Holm correction. The pooled verdict pools the items "
    "every rung answered, so a task stopped early counts with the items it ran; its interval is Tango's "
    "fixed-sample one over those items, a summary beside the per-task sequences, which carry the guarantee. The "
    "prompt suite is not chunked: every rung answers every prompt. Items needed, where a chunked task ran out of "
    "items undecided, is the count for a new fixed-sample run; the sequence needs more."
)
TEXT_CHARS = 90


def rule(margin: float, size_label: str, baseline: str | None = None) -> str:
    base = (
        f"`--baseline {baseline}`"
        if baseline
        else f"the largest rung (by {size_label}; among equals the one holding the most bits per weight)"
    )
    alpha = f"{paired.ALPHA:.1%}"
    return (
        f"**The rule.** Every rung is compared with a baseline fixed in advance, {base}; the observed best is "
        "shown but never compared with, since choosing it from the same items would favour it. A rung is within "
        f'the margin when Tango\'s score test at the margin rejects "baseline - rung ≥ {margin:g}" '
        f"(`--margin {margin:g}`) at one-sided level {alpha}: exactly when the upper end of the 95% interval of "
        "(baseline - rung) is below the margin. The tests run in a fixed sequence from the "
        + ("baseline's size down (a larger rung is compared, never recommended)" if baseline else "largest rung down")
        + " and stop at the first rung not shown within the margin; rungs of equal size (precisions, engines) are "
        "tested together with Holm's correction, and the sequence goes on only when all of them pass. The "
        "recommended model is the smallest rung shown within the margin. Why a fixed sequence: testing each "
        "rung on its own and taking the smallest that passes lets the chance of a wrong recommendation grow "
        "with every rung; the fixed sequence is a closed procedure, so **the chance that the recommended model "
        f"is in truth worse than the baseline by the margin or more is at most {alpha} per benchmark (each "
        "task, the pooled tasks, the prompt suite), however many rungs the ladder has** (simulated in "
        "benchmarks/verdict_error.py). p at the margin: that test's p-value adjusted for the sequence and Holm (a "
        "rung below the stop is not tested). Intervals: Tango's score interval for paired data (Tango 1998, "
        "Statistics in Medicine 17:891-908), from the counts of discordant items (right for one model only) "
        "and of all items; it has width even with no discordant item. McNemar p (exact, uncorrected) tests "
        "only whether two neighbouring rungs differ at all, not the margin. Items needed: for the interval to "
        "land on one side of the margin with 80% power if the observed shares of discordant items hold, from "
        "the score test's variance at the margin (Nam 1997, Biometrics 53:1422-1430)."
    )


def _interval(p: Paired) -> str:
    return f"[{p.low:+.3f}, {p.high:+.3f}]"


def _kind(v: Verdict) -> str:
    return "95% confidence sequence" if v.outcomes.chunked else "95% interval"


def _pv(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _margin_p(v: Verdict, model: str) -> str:
    adjusted = v.test.adjusted.get(model)
    return "not reached" if adjusted is None else _pv(adjusted)


def chunked_note(v: Verdict) -> str:
    """Where a task ran until decided: where it stopped, and the baseline's time against all items."""
    c = v.outcomes.chunked
    if c is None:
        return ""
    why = {"decided": "decided", None: "still running when the records were read"}.get(c.reason, c.reason)
    full = c.wall_s * c.population / v.n if v.n else 0.0
    text = (
        f" *`--until-decided`: {c.model} stopped after {v.n} of {c.population} items ({why}, margin "
        f"{c.margin:g}): {c.population / v.n:.1f}x fewer items; {c.wall_s:.0f} s of its time in lm-eval against "
        f"about {full:.0f} s for all {c.population} at its time per item; the other rungs answered all items."
    )
    if v.n >= c.population:  # sampled without replacement to the last item: the task's own difference, exactly
        text += (
            " With every item answered the sequence is the difference on these items exactly; a full run's "
            "Tango interval speaks of items like them, so it can be undecided where this is not."
        )
    return text + "*"


def paragraph(v: Verdict, notes: dict[str, str] | None = None) -> str:
    """notes: model -> a clause added where the items cannot decide on it (its agreement with the reference)."""
    rec, base = v.recommended, v.baseline
    size = f"{v.n} of {v.outcomes.chunked.population} items" if v.outcomes.chunked else f"{v.n} items"
    head = f"**{v.outcomes.name}** ({size}, {v.outcomes.metric}): "
    if rec == base:
        text = head + (
            f"**{rec}** ({v.accuracy(rec):.3f}), the baseline, is the one to take: no smaller rung is "
            "shown within the margin."
        )
    else:
        r = v.vs_baseline[rec]
        text = head + (
            f"**{rec}** is enough: {v.accuracy(rec):.3f} against {v.accuracy(base):.3f} for the baseline, "
            f"{base}; the gap is {r.diff:+.3f}, {_kind(v)} {_interval(r)}, below the {v.margin:g} margin "
            f"(p at the margin {_margin_p(v, rec)})."
        )
    text += chunked_note(v)
    if v.best not in (base, rec):
        text += f" The observed best is {v.best} ({v.accuracy(v.best):.3f}), shown only: rungs are compared with the baseline."
    if v.equal:
        text += (
            " Equal to it in size and within the margin too, so as good a choice: "
            + "; ".join(f"**{m}** ({v.accuracy(m):.3f})" for m in v.equal)
            + "."
        )
    if v.same_size:
        text += (
            " Equal to it in size but not within the margin: "
            + "; ".join(f"{m} ({v.accuracy(m):.3f}, {v.status(m)})" for m in v.same_size)
            + "."
        )
    models = list(v.outcomes.table.columns)
    tier = {rec, *v.equal, *v.same_size}
    worse = [m for m in models[: models.index(rec)] if m not in tier and v.status(m) == WORSE]
    if worse:
        text += (
            " Smaller and worse by the margin or more: "
            + "; ".join(
                f"{m} ({v.vs_baseline[m].diff:+.3f} {_interval(v.vs_baseline[m])}, {v.vs_baseline[m].a_only} vs "
                f"{v.vs_baseline[m].b_only} discordant items)"
                for m in worse
            )
            + "."
        )
    for m in v.undecided:
        r = v.vs_baseline[m]
        need = v.needed.get(m)
        if v.status(m) == NOT_REACHED:
            text += (
                f" **{m} is not tested**: the sequence stopped at {' and '.join(v.test.stopped_at)}, and a "
                f"smaller rung is tested only once every larger one is within the margin; on its own it is "
                f"{r.diff:+.3f} behind the baseline, {_kind(v)} {_interval(r)}."
            )
            continue
        text += (
            f" **The items cannot decide** whether {m} would do: it is {r.diff:+.3f} behind the baseline, "
            f"{_kind(v)} {_interval(r)}, which contains the margin (p at the margin {_margin_p(v, m)}, "
            f"{r.a_only} vs {r.b_only} discordant items)"
            + (
                (
                    f"; a fixed-sample run of about {need:,} items would decide (the sequence, valid at every look, "
                    "needs more)."
                    if v.outcomes.chunked
                    else f"; about {need:,} items would decide."
                )
                if need
                else "; no item count would settle it at this gap."
            )
            + (notes or {}).get(m, "")
        )
    return text


def verdict_section(
    vs: list[Verdict],
    margin: float,
    size_axis: SizeAxis,
    has_old_tasks: bool,
    notes: dict[str, str] | None = None,
    baseline: str | None = None,
) -> str:
    lines = ["## Verdict"]
    if not vs:
        lines.append(
            "No per-item outcomes with two or more models are stored in these runs, so there is no paired "
            "verdict"
            + (
                "; the conclusion below compares unpaired standard errors (runs made before per-item records)."
                if has_old_tasks
                else "."
            )
        )
        return "\n\n".join(lines)
    ordered = [v for v in vs if v.outcomes.name == POOLED] + [v for v in vs if v.outcomes.name != POOLED]
    lines += [paragraph(v, notes) for v in ordered]
    lines.append(rule(margin, size_axis.title, baseline))
    if any(v.outcomes.chunked for v in vs):
        lines.append(CHUNKED_RULE)
    return "\n\n".join(lines)


def evidence_section(vs: list[Verdict]) -> str:
    if not vs:
        return ""
    parts = [
        "## Paired comparisons\n\nEvery model answered the same items. a - b: accuracy difference; "
        "a only / b only: items one model gets right and the other wrong (McNemar's discordant pairs)."
    ]
    header = [
        "comparison",
        "a",
        "b",
        "acc a",
        "acc b",
        "a - b",
        "95% interval",
        "a only",
        "b only",
        "McNemar p (a = b)",
        "p at the margin (ladder)",
        "vs margin",
    ]
    for v in vs:
        rows = []
        for m, r in v.vs_baseline.items():
            rows.append(
                [
                    "vs baseline",
                    v.baseline,
                    m,
                    f"{v.accuracy(v.baseline):.3f}",
                    f"{v.accuracy(m):.3f}",
                    f"{r.diff:+.3f}",
                    _interval(r),
                    r.a_only,
                    r.b_only,
                    _pv(r.p),
                    _margin_p(v, m),
                    v.status(m),
                ]
            )
        for s in v.steps:
            r = s.paired
            rows.append(
                [
                    "equal size" if s.equal_size else "step up",
                    s.big,
                    s.small,
                    f"{v.accuracy(s.big):.3f}",
                    f"{v.accuracy(s.small):.3f}",
                    f"{r.diff:+.3f}",
                    _interval(r),
                    r.a_only,
                    r.b_only,
                    _pv(r.p),
                    "",
                    "",
                ]
            )
        c = v.outcomes.chunked
        size = (
            f"{v.n} of {c.population} items run until decided; vs baseline: the 95% confidence sequence, step up: "
            f"Tango's interval on these items"
            if c
            else f"{v.n} items"
        )
        parts.append(f"### {v.outcomes.name} ({size}, {v.outcomes.metric})\n\n" + table(header, rows))
    return "\n\n".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _trim(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"


def flips_section(fr: Frames, vs: list[Verdict]) -> str:
    parts = []
    for v in vs:
        if v.outcomes.name == POOLED:
            continue
        for s in v.steps:
            up, down, up_examples, down_examples = flips(fr, v.outcomes, s.small, s.big, FLIP_EXAMPLES)
            text = (
                f"### {v.outcomes.name}: {s.small} -> {s.big}\n\n{_count(up, 'item')} only {s.big} gets "
                f"right, {down} only {s.small}."
            )
            rows = [
                [f"only {s.big}", _trim(f.item), _trim(f.expected), _trim(f.small_answer), _trim(f.big_answer)]
                for f in up_examples
            ]
            rows += [
                [f"only {s.small}", _trim(f.item), _trim(f.expected), _trim(f.small_answer), _trim(f.big_answer)]
                for f in down_examples
            ]
            if rows:
                kind = "answered" if v.outcomes.name == PROMPTS else "chose"
                text += "\n\n" + table(["right", "item", "expected", f"{s.small} {kind}", f"{s.big} {kind}"], rows)
            parts.append(text)
    if not parts:
        return ""
    return (
        "## Flips up the ladder\n\nPer step to the next bigger model: the items that change from wrong to "
        f"right and back, with up to {FLIP_EXAMPLES} of each (first by item order).\n\n" + "\n\n".join(parts)
    )


def page_verdict(p: Page) -> str:
    return verdict_section(
        p.a.verdicts,
        p.a.margin,
        p.a.size_axis,
        not p.fr["task"].empty,
        verdict_notes(p.fr, p.a.agreement),
        p.a.baseline,
    )


def page_evidence(p: Page) -> str:
    return evidence_section(p.a.verdicts)


def page_flips(p: Page) -> str:
    return flips_section(p.fr, p.a.verdicts)
