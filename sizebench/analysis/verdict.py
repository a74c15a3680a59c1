"""The verdict: which model of the ladder is enough, from the stored per-item outcomes alone.

The rule: per task (and for all tasks pooled, and for the prompt suite) every rung is compared with a baseline
fixed in advance, the largest rung (the most bits per weight among equals) or `--baseline MODEL`; the observed
best is shown but never compared with, since picking it from the same items would bias the comparison. The
recommended model is the smallest that `fixed_sequence` shows within the margin: Tango's score test at the
margin, in a fixed sequence from the largest rung down that stops at the first tier not shown within, Holm
within a tier of equal size. The chance of recommending a model in truth worse than the baseline by the
margin or more is then at most paired.ALPHA per benchmark, for the whole ladder. A smaller model not shown
within (nor worse by the margin) is one the items cannot decide on; the verdict names it and the items it needs.
"Smallest" is on the one size axis of `sizebench.analysis.sizes`: total parameters, or weight memory when the
rows hold their weights in more than one way (precisions, engines). Rows equal on it form one tier.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from sizebench.analysis import confseq, fixed_sequence, paired, sizes
from sizebench.analysis.fixed_sequence import LadderTest
from sizebench.errors import SizebenchError
from sizebench.runstore.frames import Frames
from sizebench.analysis.paired import Paired
from sizebench.analysis.sizes import SizeAxis
from sizebench.specs.settings import DEFAULT_MARGIN

METRICS = ("acc", "exact_match")  # the per-item score a task's verdict uses: the first one lm-eval gave
POOLED = "all tasks"
PROMPTS = "prompt suite"


@dataclass(frozen=True)
class Chunked:
    """A task the baseline rung ran chunk by chunk (`--until-decided`): the table's rows are in the order drawn."""

    model: str  # the rung run in chunks
    population: int  # the task's items
    reason: str | None  # why it stopped (None: it had not, when the records were read)
    wall_s: float  # its time in lm-eval on the items it ran
    margin: float  # the margin the runner decided against


@dataclass(frozen=True)
class Outcomes:
    name: str  # a task, POOLED or PROMPTS
    metric: str
    table: pd.DataFrame  # one row per item every model answered, one 0/1 column per model, smallest first
    chunked: Chunked | None = None


@dataclass(frozen=True)
class Step:
    small: str
    big: str
    paired: Paired  # big - small
    equal_size: bool = False  # the two are equal on the size axis: a step across, not up


@dataclass(frozen=True)
class Verdict:
    outcomes: Outcomes
    best: str  # the observed best, shown only
    test: LadderTest  # baseline, comparisons with it, the rungs shown within, the recommended one
    steps: list[Step]
    needed: dict[str, int | None] = field(default_factory=dict)  # items that would decide, per undecided model
    sequences: dict[str, confseq.Sequence] = field(default_factory=dict)  # chunked tasks: baseline - rung

    @property
    def n(self) -> int:
        return len(self.outcomes.table)

    def accuracy(self, model: str) -> float:
        return float(self.outcomes.table[model].mean())

    def status(self, model: str) -> str:
        return self.test.status(model)

    @property
    def baseline(self) -> str:
        return self.test.baseline

    @property
    def margin(self) -> float:
        return self.test.margin

    @property
    def vs_baseline(self) -> dict[str, Paired]:
        return self.test.vs_baseline

    @property
    def recommended(self) -> str:
        return self.test.recommended

    @property
    def equal(self) -> list[str]:
        return self.test.equal

    @property
    def same_size(self) -> list[str]:
        return self.test.same_size

    @property
    def undecided(self) -> list[str]:
        return self.test.undecided


def size_order(fr: Frames) -> tuple[list[str], SizeAxis]:
    """Models with a load record, smallest first, and the axis that measured 'smallest'."""
    size_axis = sizes.axis(fr)
    return size_axis.order, size_axis


def outcome_sets(fr: Frames, order: list[str]) -> list[Outcomes]:
    """Per task, all tasks pooled (with two or more), and the prompt suite: items every model answered."""
    sets = []
    items = fr["items"]
    if not items.empty:
        for task in sorted(items["task"].unique()):
            rows = items[items["task"] == task]
            last = rows.drop_duplicates("model", keep="last").set_index("model")[["run_id", "attempt"]]
            rows = rows[
                [(r, a) == tuple(last.loc[m]) for m, r, a in zip(rows["model"], rows["run_id"], rows["attempt"])]
            ]
            models = [m for m in order if m in set(rows["model"])]  # each model's last attempt: its chunks, if chunked
            scores = {m: [r for r in rows.loc[rows["model"] == m, "scores"]] for m in models}
            metric = next((k for k in METRICS if all(all(k in (s or {}) for s in scores[m]) for m in models)), None)
            if metric is None or not models:
                continue
            columns = {
                m: pd.concat(
                    [
                        pd.Series(s[metric], index=d, dtype=float)
                        for s, d in zip(scores[m], rows.loc[rows["model"] == m, "doc_ids"])
                    ]
                )
                for m in models
            }
            columns = {m: c[~c.index.duplicated(keep="last")] for m, c in columns.items()}  # chunks: one row each
            table = pd.DataFrame(columns).dropna().sort_index()
            chunked, drawn = _chunked(fr, task)
            if chunked is not None:
                table = table.loc[[d for d in drawn if d in table.index]]
            if _binary(table):
                sets.append(Outcomes(task, metric, table.astype(int), chunked))
        if len(sets) > 1:
            common = [m for m in order if all(m in s.table for s in sets)]
            pooled = pd.concat({s.name: s.table[common] for s in sets}, names=["task", "doc_id"])
            metric = "/".join(sorted({s.metric for s in sets}))
            sets.append(Outcomes(POOLED, metric, pooled))
    prompts = fr["prompt"]
    if not prompts.empty and prompts["correct"].notna().any():
        judged = prompts[prompts["correct"].notna()].drop_duplicates(["model", "prompt_id"], keep="last")
        table = judged.pivot(index="prompt_id", columns="model", values="correct")
        models = [m for m in order if m in table.columns]
        table = table[models].dropna()
        if not table.empty and models:
            sets.append(Outcomes(PROMPTS, "expected answer found", table.astype(bool).astype(int)))
    return sets


def _chunked(fr: Frames, task: str) -> tuple[Chunked | None, list[int]]:
    """The task's chunked run, if the baseline ran it in chunks, and the doc ids in the order drawn."""
    chunks = fr["chunk"]
    if chunks.empty or task not in set(chunks["task"]):
        return None, []
    rows = chunks[chunks["task"] == task]
    model = rows["model"].iloc[-1]
    rows = rows[rows["model"] == model]
    drawn = [int(d) for part in rows["drawn"] for d in part]
    stops = fr["stopped"]
    stop = stops[(stops["task"] == task) & (stops["model"] == model)] if not stops.empty else stops
    reason = stop["reason"].iloc[-1] if not stop.empty else None
    margin = float(stop["margin"].iloc[-1]) if not stop.empty else DEFAULT_MARGIN
    return Chunked(model, int(rows["population"].iloc[-1]), reason, float(rows["wall_s"].sum()), margin), drawn


def _binary(table: pd.DataFrame) -> bool:
    return not table.empty and bool(table.isin([0, 1]).all().all())


def decide(
    outcomes: Outcomes, margin: float, size_axis: SizeAxis | None = None, baseline: str | None = None
) -> Verdict | None:
    """The verdict for one benchmark; None with fewer than two models (nothing to compare).

    The table's columns are smallest first; without `size_axis` every column is its own size. `baseline`:
    the rung to compare with, where this benchmark has it; else the largest (`SizeAxis.baseline`)."""
    table = outcomes.table
    models = list(table.columns)
    if len(models) < 2 or table.empty:
        return None
    means = table.mean()
    best = max(models, key=lambda m: (means[m], -models.index(m)))  # ties: the smaller model
    tiers = size_axis.tiers(models) if size_axis else [[m] for m in models]
    chunked = outcomes.chunked
    if baseline not in models:
        baseline = (
            chunked.model
            if chunked and chunked.model in models
            else (size_axis.baseline(models) if size_axis else models[-1])
        )
    vs_baseline = {m: paired.compare(table[baseline], table[m]) for m in models if m != baseline}
    sequences, p = {}, None
    if chunked is not None:  # the items were drawn until decided: the confidence sequence, not Tango's interval
        sequences = {m: confseq.sequence(table[baseline] - table[m], margin, chunked.population) for m in vs_baseline}
        vs_baseline = {m: replace(r, low=sequences[m].low, high=sequences[m].high) for m, r in vs_baseline.items()}
        p = {m: s.p_within for m, s in sequences.items()}
    test = fixed_sequence.test(tiers, baseline, vs_baseline, margin, p)
    steps = [
        Step(small, big, paired.compare(table[big], table[small]), bool(size_axis) and big in size_axis.tier(small))
        for small, big in zip(models, models[1:])
    ]
    needed = {
        m: paired.items_needed(vs_baseline[m].a_only, vs_baseline[m].b_only, len(table), margin) for m in test.undecided
    }
    return Verdict(outcomes, best, test, steps, needed, sequences)


def check_baseline(baseline: str | None, order: list[str]) -> None:
    """`--baseline` must name a model of the runs."""
    if baseline is not None and baseline not in order:
        raise SizebenchError(f"--baseline {baseline}: not a model of these runs (models: {', '.join(order) or 'none'})")


def verdicts(fr: Frames, margin: float = DEFAULT_MARGIN, baseline: str | None = None) -> list[Verdict]:
    order, size_axis = size_order(fr)
    check_baseline(baseline, order)
    return [v for v in (decide(o, margin, size_axis, baseline) for o in outcome_sets(fr, order)) if v is not None]


@dataclass(frozen=True)
class Flip:
    item: str  # the question (or prompt)
    expected: str
    small_answer: str
    big_answer: str


def flips(fr: Frames, outcomes: Outcomes, small: str, big: str, limit: int = 10) -> tuple[int, int, list, list]:
    """Items only the bigger model gets right, and only the smaller: counts and the first `limit` of each."""
    table = outcomes.table
    big_only = table.index[(table[big] == 1) & (table[small] == 0)]
    small_only = table.index[(table[big] == 0) & (table[small] == 1)]
    describe = _describer(fr, outcomes, small, big)
    return (
        len(big_only),
        len(small_only),
        [describe(k) for k in big_only[:limit]],
        [describe(k) for k in small_only[:limit]],
    )


def _describer(fr: Frames, outcomes: Outcomes, small: str, big: str):
    if outcomes.name == PROMPTS:
        prompts = fr["prompt"].drop_duplicates(["model", "prompt_id"], keep="last").set_index(["model", "prompt_id"])

        def prompt_flip(key) -> Flip:
            row = prompts.loc[(small, key)]
            expected = row["expected"]
            return Flip(
                str(row["prompt"]),
                " / ".join(expected) if isinstance(expected, list) else "",
                str(row["answer"]),
                str(prompts.loc[(big, key), "answer"]),
            )

        return prompt_flip
    texts = fr["item_text"]
    text = texts[texts["task"] == outcomes.name].drop_duplicates("task", keep="last") if not texts.empty else texts
    by_doc = {}
    if not text.empty:
        row = text.iloc[0]
        by_doc = {d: (q, c, t) for d, q, c, t in zip(row["doc_ids"], row["questions"], row["choices"], row["targets"])}
    items = fr["items"]
    answers = {}
    for model in (small, big):
        answers[model] = {}
        for _, row in items[(items["model"] == model) & (items["task"] == outcomes.name)].iterrows():  # chunks too
            picked = row["chosen"] if len(row["chosen"]) else row["answers"]
            answers[model].update(zip(row["doc_ids"], picked))

    def answer(model, doc, choices):
        value = answers[model].get(doc)
        if isinstance(value, (int, np.integer)) and choices and 0 <= value < len(choices):
            return choices[value]
        return "" if value is None else str(value)

    def task_flip(doc) -> Flip:
        question, choices, target = by_doc.get(doc, (f"item {doc} (text not stored)", [], ""))
        return Flip(question, target, answer(small, doc, choices), answer(big, doc, choices))

    return task_flip
