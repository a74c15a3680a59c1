"""The ladder-wide margin test both verdicts use (accuracy and preference): one implementation.

Every rung is compared with one baseline fixed in advance (not the observed best). The hypotheses "rung is
worse than the baseline by the margin or more" are tested in a fixed sequence from the baseline's tier down
(rungs larger than a chosen baseline are compared but never candidates),
each with Tango's score test at the margin (`paired.noninferiority_p`) at level ALPHA; the rungs of one tier
(equal size: precisions, engines) are tested together with Holm's correction, and the sequence goes on to
the next smaller tier only when every rung of this one is shown within the margin. This is a closed
(serial gatekeeping) procedure: a false claim can first happen only in the first tier holding a rung that
is in truth worse by the margin, where Holm keeps its chance at most ALPHA (a false claim further down needs
every rung of that tier claimed first), so the chance of calling any rung
of the ladder within the margin when it is worse by the margin or more is at most ALPHA per benchmark,
however many rungs the ladder has. Adjusted p-values: a rung's Holm p within its tier, never below any
adjusted p of a larger tier (the sequence reached it only if those were below ALPHA).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sizebench.analysis import paired
from sizebench.analysis.paired import ALPHA, Paired


WITHIN = "within the margin"
WORSE = "worse by the margin or more"
UNDECIDED = "undecided"
NOT_REACHED = "not reached"  # below the tier where the fixed sequence stopped: not tested
LARGER = "larger than the baseline"  # not a candidate: compared, never tested
BASELINE = "baseline"


@dataclass(frozen=True)
class LadderTest:
    baseline: str
    margin: float
    vs_baseline: dict[str, Paired]  # baseline - rung
    sequence: list[list[str]]  # the tiers from the baseline's down, it left out: the order they are tested in
    p: dict[str, float]  # Tango's score test at the margin, one-sided, not corrected
    adjusted: dict[str, float]  # fixed sequence over tiers, Holm within a tier; only rungs the sequence reached
    within: list[str]  # shown within the margin, largest first
    stopped_at: list[str]  # the tier where the sequence stopped (a rung of it not shown within); [] if none
    recommended: str  # the first in its tier's order of the smallest tier with a rung shown within (or the baseline)
    equal: list[str]  # in the recommended one's tier and shown within too (or the baseline)
    same_size: list[str]  # in the recommended one's tier, not shown within
    undecided: list[str]  # smaller than the recommended one, neither shown within nor worse by the margin

    def status(self, model: str) -> str:
        if model == self.baseline:
            return BASELINE
        if not any(model in tier for tier in self.sequence) and model in self.vs_baseline:
            return LARGER
        if model in self.within:
            return WITHIN
        r = self.vs_baseline.get(model)
        if r is not None and r.low >= self.margin:
            return WORSE
        return UNDECIDED if model in self.adjusted else NOT_REACHED


def test(
    tiers: list[list[str]],
    baseline: str,
    vs_baseline: dict[str, Paired],
    margin: float,
    p: dict[str, float] | None = None,
) -> LadderTest:
    """tiers: smallest first, each in its own order, the baseline in one of them; vs_baseline: baseline - rung.
    Rungs without a comparison are left out. p: each rung's p-value of "baseline - rung >= margin" where another
    test gives it (the anytime-valid one of a chunked task, sizebench.analysis.confseq); else Tango's."""
    tiers = [[m for m in tier if m == baseline or m in vs_baseline] for tier in tiers]
    tiers = [tier for tier in tiers if tier]
    top = next(i for i, tier in enumerate(tiers) if baseline in tier)  # rungs larger than the baseline: no candidates
    sequence = [[m for m in tier if m != baseline] for tier in reversed(tiers[: top + 1])]
    sequence = [tier for tier in sequence if tier]
    p = (
        p
        if p is not None
        else {m: paired.noninferiority_p(r.a_only, r.b_only, r.n, margin) for m, r in vs_baseline.items()}
    )
    adjusted: dict[str, float] = {}
    within: list[str] = []
    stopped: list[str] = []
    floor = 0.0
    for tier in sequence:
        held = dict(zip(tier, paired.holm([p[m] for m in tier])))
        adjusted.update({m: max(held[m], floor) for m in tier})
        within += [m for m in tier if adjusted[m] < ALPHA]
        if any(adjusted[m] >= ALPHA for m in tier):
            stopped = tier
            break
        floor = max(adjusted[m] for m in tier)
    ok = within + [baseline]
    tier = next(t for t in tiers if any(m in ok for m in t))  # the smallest tier with a rung shown within
    chosen = [m for m in tier if m in ok]
    partial = LadderTest(
        baseline,
        margin,
        vs_baseline,
        sequence,
        p,
        adjusted,
        within,
        stopped,
        chosen[0],
        chosen[1:],
        [m for m in tier if m not in ok],
        [],
    )
    smaller = [m for t in tiers[: tiers.index(tier)] for m in t]
    return replace(partial, undecided=[m for m in smaller if partial.status(m) in (UNDECIDED, NOT_REACHED)])
