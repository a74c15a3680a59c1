"""Preference from pairwise votes: per pair wins, ties and losses, the preference verdict, Bradley-Terry
strengths, and how far an LLM judge can be trusted (position consistency, agreement with people).

Sources are never pooled: the page's votes ("human", every rater) and each LLM judge ("judge:NAME")
are analysed apart. Per judged prompt of a pair the outcome is +1 (the bigger model's answer preferred),
-1 (the smaller's) or 0 (tie, both bad, or identical answers, the last counted apart). Several raters
on one prompt and pair: the sign of the sum of their outcomes. An LLM judge judges both orders; when
the two disagree the prompt is undetermined, shown but excluded (never a tie).

The rule: against the best (the largest rung, which every model is judged against), the recommended
model is the smallest whose 95% upper bound of the mean outcome (best preferred +1, it -1, else 0) is
below the margin. That mean is the difference of two paired proportions (prompts the best wins, prompts
the other wins), so its interval is the accuracy verdict's own: Tango's score interval, with McNemar's
exact test (a sign test) from `sizebench.analysis.paired`. A judge whose position consistency is not
above chance (one-sided binomial test against the agreement its own choice frequencies give by chance)
gets no verdict.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sizebench.analysis import fixed_sequence, paired, sizes
from sizebench.analysis.fixed_sequence import LadderTest

HUMAN = "human"
JUDGE_PREFIX = "judge:"
CONFIDENCE = 0.95
BOOTSTRAP = 500
SEED = 0
RIDGE_C = 10.0  # sklearn's inverse L2 strength: keeps a never-beaten model's strength finite
SCORES = {"tie": 0, "bad": 0}
GATE_NON_TIE = 0.5  # the least share of a judge's determined, non-identical pairs where it prefers one answer
GATE_HUMAN_PAIRS = 30  # with this many non-identical pairs determined by people and the judge, kappa gates:
GATE_KAPPA = 0.4  # the least Cohen's kappa against the people (and its 95% lower bound above 0)


@dataclass(frozen=True)
class Tally:
    small: str
    big: str
    big_wins: int
    small_wins: int
    ties: int
    bad: int
    identical: int
    undetermined: int

    @property
    def n(self) -> int:  # judged prompts: every determined outcome
        return self.big_wins + self.small_wins + self.ties + self.bad + self.identical

    def win_rate(self) -> tuple[float, float, float]:
        """The bigger model's win rate, ties half, with its 95% interval (Tango's, mapped from [-1, 1])."""
        low, high = paired.tango_interval(self.big_wins, self.small_wins, self.n)
        mean = (self.big_wins - self.small_wins) / self.n
        return (1 + mean) / 2, (1 + float(low)) / 2, (1 + float(high)) / 2


@dataclass(frozen=True)
class Consistency:
    pairs: int  # prompts and pairs judged in both orders
    consistent: int
    chance: float  # agreement expected from the judge's own frequencies of A, B and tie
    p: float  # one-sided binomial test of consistent against chance
    first_shown: float  # share of A among its non-tie choices: position bias

    @property
    def above_chance(self) -> bool:
        return self.pairs > 0 and self.p < 1 - CONFIDENCE


@dataclass(frozen=True)
class Strength:
    model: str
    value: float  # Bradley-Terry log-strength, the largest at 0
    low: float
    high: float


@dataclass(frozen=True)
class Agreement:
    """Cohen's kappa of a judge against the human votes on the non-identical prompts and pairs both determined."""

    kappa: float
    low: float  # 95% lower bound (statsmodels' asymptotic interval)
    pairs: int

    @property
    def gates(self) -> bool:
        return self.pairs >= GATE_HUMAN_PAIRS

    @property
    def passes(self) -> bool:
        return not self.gates or (self.kappa >= GATE_KAPPA and self.low > 0)


@dataclass(frozen=True)
class Preference:
    source: str
    outcomes: pd.DataFrame  # prompt_id, small, big, outcome (+1/0/-1, NaN undetermined), label, votes
    tallies: list[Tally]
    verdict: LadderTest | None
    strengths: list[Strength] = field(default_factory=list)
    consistency: Consistency | None = None
    kappa_vs_human: Agreement | None = None  # None: no human votes

    @property
    def is_judge(self) -> bool:
        return self.source.startswith(JUDGE_PREFIX)

    @property
    def non_tie(self) -> float:
        """The share of determined, non-identical prompts and pairs where one answer is preferred."""
        told = self.outcomes[self.outcomes["outcome"].notna() & (self.outcomes["label"] != "identical")]
        return float((told["outcome"] != 0).mean()) if len(told) else 0.0

    @property
    def decides(self) -> bool:
        """The judge gate (people always decide)."""
        if not self.is_judge:
            return True
        consistent = self.consistency is not None and self.consistency.above_chance
        return (
            consistent and self.non_tie >= GATE_NON_TIE and (self.kappa_vs_human is None or self.kappa_vs_human.passes)
        )


def ladder(fr) -> list[str]:
    """The models with prompt answers, smallest first on the report's size axis."""
    from sizebench.analysis.verdict import size_order

    prompts = fr["prompt"]
    if prompts.empty:
        return []
    answered = set(prompts["model"]) - sizes.cost_only(fr)  # random weights' answers are noise: never judged
    return [m for m in size_order(fr)[0] if m in answered]


def current_votes(fr) -> pd.DataFrame:
    votes = fr["vote"] if "vote" in fr.tables else pd.DataFrame()
    if votes.empty:
        return votes
    undone = fr["vote_undone"] if "vote_undone" in fr.tables else pd.DataFrame()
    if not undone.empty:
        gone = set(zip(undone["model"], undone["screen"]))
        votes = votes[[(m, s) not in gone for m, s in zip(votes["model"], votes["screen"])]]
    return votes.drop_duplicates(["model", "screen", "rater"], keep="last")


def outcome(choice: str, left: str, right: str, big: str) -> int:
    """+1 when the bigger model's answer is preferred, -1 when the smaller's, 0 for tie or both bad."""
    if choice in SCORES:
        return SCORES[choice]
    winner = left if choice == "A" else right
    return 1 if winner == big else -1


def _oriented(votes: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(order)}
    rows = votes[votes["left"].isin(rank) & votes["right"].isin(rank)].copy()
    if rows.empty:
        return rows.assign(small=[], big=[], outcome=[])
    bigger_right = rows["right"].map(rank) > rows["left"].map(rank)
    rows["small"] = np.where(bigger_right, rows["left"], rows["right"])
    rows["big"] = np.where(bigger_right, rows["right"], rows["left"])
    rows["outcome"] = [
        outcome(c, left, right, b)
        for c, left, right, b in zip(rows["choice"], rows["left"], rows["right"], rows["big"])
    ]
    return rows


def _combine(group: pd.DataFrame, judge: bool) -> dict:
    """One outcome per prompt and pair from its votes."""
    identical = bool(group["identical"].any()) if "identical" in group else False
    votes = "; ".join(f"{r}: {c}" for r, c in zip(group["rater"], group["label"]))
    if identical:
        return {"outcome": 0.0, "label": "identical", "votes": "identical answers"}
    if judge:
        if len(group) < 2:
            return {"outcome": np.nan, "label": "one order only", "votes": votes}
        values = set(group["outcome"])
        if len(values) > 1:
            return {"outcome": np.nan, "label": "undetermined", "votes": votes}
        value = values.pop()
        return {"outcome": float(value), "label": {1: "big", -1: "small", 0: "tie"}[value], "votes": votes}
    total = int(group["outcome"].sum())
    value = int(np.sign(total))
    label = {1: "big", -1: "small"}.get(value) or ("bad" if (group["choice"] == "bad").all() else "tie")
    return {"outcome": float(value), "label": label, "votes": votes}


def outcomes(votes: pd.DataFrame, order: list[str], judge: bool) -> pd.DataFrame:
    rows = _oriented(votes, order)
    columns = ["prompt_id", "small", "big", "outcome", "label", "votes"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows["label"] = [{1: "big", -1: "small"}.get(o) or c for o, c in zip(rows["outcome"], rows["choice"])]
    rows["rater"] = [
        ("smaller as A" if left == s else "bigger as A") if judge else r
        for left, s, r in zip(rows["left"], rows["small"], rows["rater"])
    ]
    combined = [
        {"prompt_id": p, "small": s, "big": b, **_combine(g, judge)}
        for (p, s, b), g in rows.groupby(["prompt_id", "small", "big"], sort=False)
    ]
    return pd.DataFrame(combined, columns=columns)


def tallies(table: pd.DataFrame, order: list[str]) -> list[Tally]:
    out = []
    for (small, big), g in table.groupby(["small", "big"], sort=False):
        labels = g["label"].value_counts()
        count = lambda name: int(labels.get(name, 0))  # noqa: E731, B023 (used within this iteration)
        out.append(
            Tally(
                small,
                big,
                count("big"),
                count("small"),
                count("tie"),
                count("bad"),
                count("identical"),
                count("undetermined") + count("one order only"),
            )
        )
    return sorted(out, key=lambda t: (order.index(t.big) - order.index(t.small) > 1, order.index(t.small)))


def decide(
    table: pd.DataFrame,
    order: list[str],
    margin: float,
    tiers: list[list[str]] | None = None,
    baseline: str | None = None,
) -> LadderTest | None:
    """The preference rule against the baseline (default: the largest rung); None when nothing was judged
    against it. tiers: `order` in tiers of equal size (default: every rung its own)."""
    baseline = baseline if baseline in order else order[-1]
    judged = table[table["outcome"].notna()]
    vs_baseline = {}
    for model in order:
        below = judged[(judged["small"] == model) & (judged["big"] == baseline)]["outcome"]
        above = -judged[(judged["small"] == baseline) & (judged["big"] == model)]["outcome"]
        signs = pd.concat([below, above])  # +1: the baseline's answer preferred
        if model != baseline and len(signs):
            vs_baseline[model] = paired.compare((signs > 0).astype(int), (signs < 0).astype(int))
    if not vs_baseline:
        return None
    return fixed_sequence.test(tiers or [[m] for m in order], baseline, vs_baseline, margin)


def bradley_terry(table: pd.DataFrame, order: list[str], rounds: int = BOOTSTRAP) -> list[Strength]:
    """Log-strengths (the largest at 0) by logistic regression on the judged outcomes, ties half a win
    each, with percentile intervals from resampling those outcomes."""
    judged = table[table["outcome"].notna()]
    models = [m for m in order if m in set(judged["small"]) | set(judged["big"])]
    if len(models) < 3:
        return []
    index = {m: i for i, m in enumerate(models)}
    small, big = judged["small"].map(index).to_numpy(), judged["big"].map(index).to_numpy()
    value = judged["outcome"].to_numpy(dtype=float)
    point = _fit(small, big, value, len(models))
    if point is None:
        return []
    rng = np.random.default_rng(SEED)
    draws = []
    for _ in range(rounds):
        pick = rng.integers(0, len(value), len(value))
        fit = _fit(small[pick], big[pick], value[pick], len(models))
        if fit is not None:
            draws.append(fit)
    low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    return [Strength(m, float(point[i]), float(low[i]), float(high[i])) for i, m in enumerate(models)]


def _fit(small: np.ndarray, big: np.ndarray, value: np.ndarray, k: int) -> np.ndarray | None:
    """One row per outcome and side: x = +1 for the bigger model, -1 for the smaller; y = the bigger won."""

    from sklearn.linear_model import LogisticRegression

    rows = np.arange(len(value))
    x = np.zeros((len(value), k))
    x[rows, big], x[rows, small] = 1.0, -1.0
    half = np.where(value == 0, 0.5, 0.0)
    weights = np.concatenate([np.where(value > 0, 1.0, half), np.where(value < 0, 1.0, half)])
    y = np.concatenate([np.ones(len(value)), np.zeros(len(value))])
    keep = weights > 0
    if len(set(y[keep])) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(fit_intercept=False, C=RIDGE_C, max_iter=1000)
        model.fit(np.vstack([x, x])[keep], y[keep], sample_weight=weights[keep])
    coef = model.coef_[0]
    return coef - coef[k - 1]


def consistency(votes: pd.DataFrame, order: list[str]) -> Consistency | None:
    """Both orders of each prompt and pair: the same answer preferred (or tie twice)?"""
    from scipy.stats import binomtest

    rows = _oriented(votes[~votes["identical"].astype(bool)], order) if len(votes) else votes
    if rows.empty:
        return None
    choices = rows["choice"]
    frequencies = {c: float((choices == c).mean()) for c in ("A", "B", "tie")}
    chance = 2 * frequencies["A"] * frequencies["B"] + frequencies["tie"] ** 2
    groups = [g for _, g in rows.groupby(["prompt_id", "small", "big"], sort=False) if len(g) >= 2]
    agreeing = sum(g["outcome"].nunique() == 1 for g in groups)
    decided = choices[choices != "tie"]
    first = float((decided == "A").mean()) if len(decided) else float("nan")
    if not groups:
        return Consistency(0, 0, chance, 1.0, first)
    p = float(binomtest(agreeing, len(groups), min(max(chance, 0.0), 1.0), alternative="greater").pvalue)
    return Consistency(len(groups), agreeing, chance, p, first)


def kappa(a: pd.Series, b: pd.Series, labels: list) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(a) < 2 or (a.nunique() == 1 and b.nunique() == 1 and a.iloc[0] == b.iloc[0]):
        return float("nan")  # no variation: agreement by chance is total, kappa undefined
    return float(cohen_kappa_score(a, b, labels=labels))


def agreement(one: pd.DataFrame, other: pd.DataFrame) -> Agreement:
    """Cohen's kappa of two sources' outcomes (+1 / 0 / -1) on the prompts and pairs both determined, the
    identical-answer ones left out (every source records those as ties without judging them), with
    statsmodels' 95% interval."""
    from statsmodels.stats.inter_rater import cohens_kappa

    keys = ["prompt_id", "small", "big"]
    told = lambda t: t[t["outcome"].notna() & (t["label"] != "identical")]  # noqa: E731
    both = told(one).merge(told(other), on=keys)
    value = kappa(both["outcome_x"], both["outcome_y"], [-1.0, 0.0, 1.0]) if len(both) else float("nan")
    if np.isnan(value):
        return Agreement(value, float("nan"), len(both))
    counts = pd.crosstab(both["outcome_x"], both["outcome_y"]).reindex(
        index=[-1.0, 0.0, 1.0], columns=[-1.0, 0.0, 1.0], fill_value=0
    )
    with warnings.catch_warnings():  # its z test of kappa = 0 divides by zero at perfect agreement; unused here
        warnings.simplefilter("ignore", RuntimeWarning)
        result = cohens_kappa(counts.to_numpy())
    return Agreement(value, float(result.kappa_low), len(both))


def human_agreement(fr, order: list[str]) -> list[tuple[str, str, float, int]]:
    """Per two raters: Cohen's kappa of their choices (bigger, smaller, tie, both bad) on the prompts and
    pairs both voted on, and how many."""
    votes = current_votes(fr)
    if votes.empty:
        return []
    rows = _oriented(votes[(votes["model"] == HUMAN) & ~votes["identical"].astype(bool)], order)
    if rows.empty:
        return []
    rows["label"] = [{1: "big", -1: "small"}.get(o) or c for o, c in zip(rows["outcome"], rows["choice"])]
    raters = sorted(set(rows["rater"]))
    out = []
    for i, first in enumerate(raters):
        for second in raters[i + 1 :]:
            both = rows[rows["rater"] == first].merge(rows[rows["rater"] == second], on=["prompt_id", "small", "big"])
            if len(both):
                out.append(
                    (first, second, kappa(both["label_x"], both["label_y"], ["big", "small", "tie", "bad"]), len(both))
                )
    return out


def analyse(fr, order: list[str], margin: float, baseline: str | None = None) -> list[Preference]:
    """One Preference per source of votes: people first, then each LLM judge by name."""
    votes = current_votes(fr)
    if votes.empty or len(order) < 2:
        return []
    tiers = sizes.axis(fr).tiers(order)
    sources = sorted(set(votes["model"]), key=lambda s: (s != HUMAN, s))
    results = []
    human_table = None
    for source in sources:
        mine = votes[votes["model"] == source]
        judge = source.startswith(JUDGE_PREFIX)
        table = outcomes(mine, order, judge)
        if table.empty:
            continue
        if source == HUMAN:
            human_table = table
        results.append(
            Preference(
                source,
                table,
                tallies(table, order),
                decide(table, order, margin, tiers, baseline),
                bradley_terry(table, order),
                consistency(mine, order) if judge else None,
                agreement(table, human_table) if judge and human_table is not None else None,
            )
        )
    return results
