"""The preference analysis on votes made by the code's own record class: Bradley-Terry against a
simulation, position consistency against chance, undetermined never a tie, raters combined."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import pandas as pd

from sizebench.analysis import preference
from sizebench.judging import pairs
from sizebench.judging.pairs import Item
from sizebench.runstore.records import VoteRecord

ORDER = ["s", "m", "l", "xl"]


def _votes(records: list[VoteRecord]) -> pd.DataFrame:
    return pd.DataFrame([{"kind": r.kind, **asdict(r)} for r in records])


def _vote(source, prompt, left, right, choice, rater="r"):
    return VoteRecord(
        source, pairs.VOTES, f"{source}|{prompt}|{left}|{right}|{rater}", prompt, left, right, choice, rater
    )


def _judge(prompt, small, big, first: str, second: str) -> list[VoteRecord]:
    """A judge's two orders: `first` with the smaller model's answer as A, `second` with it as B."""
    return [_vote("judge:j", prompt, small, big, first, "j"), _vote("judge:j", prompt, big, small, second, "j")]


@pytest.mark.long
def test_bradley_terry_recovers_simulated_strengths_within_its_intervals():
    truth = {"s": -1.5, "m": -0.8, "l": -0.3, "xl": 0.0}
    rng = np.random.default_rng(1)
    records = []
    for small, big in pairs.ladder_pairs(ORDER):
        p_big = 1 / (1 + math.exp(truth[small] - truth[big]))
        for i in range(150):
            left, right = (small, big) if i % 2 else (big, small)
            big_won = rng.random() < p_big
            records.append(_vote("human", f"p{i}", left, right, "A" if (left == big) == big_won else "B"))
    table = preference.outcomes(_votes(records), ORDER, judge=False)
    strengths = {s.model: s for s in preference.bradley_terry(table, ORDER, rounds=100)}
    for model, value in truth.items():
        s = strengths[model]
        assert abs(s.value - value) < 0.4 and s.low <= value <= s.high, (model, s)
    assert strengths["xl"].value == 0.0


def test_a_judge_that_always_says_a_decides_nothing_and_its_prompts_are_undetermined_not_ties():
    records = [r for i in range(20) for r in _judge(f"p{i}", "s", "xl", "A", "A")]
    votes = _votes(records)
    c = preference.consistency(votes, ORDER)
    assert (c.pairs, c.consistent, c.chance, c.first_shown) == (20, 0, 0.0, 1.0) and not c.above_chance
    table = preference.outcomes(votes, ORDER, judge=True)
    assert table["outcome"].isna().all() and set(table["label"]) == {"undetermined"}
    assert preference.decide(table, ORDER, 0.05) is None
    tally = preference.tallies(table, ORDER)[0]
    assert (tally.undetermined, tally.ties, tally.n) == (20, 0, 0)


def test_a_judge_that_always_says_tie_is_consistent_only_by_chance():
    votes = _votes([r for i in range(20) for r in _judge(f"p{i}", "s", "xl", "tie", "tie")])
    c = preference.consistency(votes, ORDER)
    assert c.consistent == 20 and c.chance == 1.0 and not c.above_chance


def test_a_judge_that_follows_content_is_above_chance_and_gets_a_verdict():
    records = [r for i in range(12) for r in _judge(f"p{i}", "s", "xl", "B", "A")]  # xl better in both orders
    records += _judge("p99", "s", "xl", "A", "A")  # one order-inconsistent prompt: excluded
    votes = _votes(records)
    c = preference.consistency(votes, ORDER)
    assert (c.pairs, c.consistent) == (13, 12) and c.above_chance
    table = preference.outcomes(votes, ORDER, judge=True)
    v = preference.decide(table, ORDER, 0.05)
    r = v.vs_baseline["s"]
    assert (r.n, r.a_only, r.b_only, v.status("s"), v.recommended) == (12, 12, 0, "worse by the margin or more", "xl")


def test_raters_on_one_prompt_count_once_and_their_agreement_is_measured():
    records = [
        _vote("human", "p1", "s", "xl", "A", "ann"),
        _vote("human", "p1", "xl", "s", "A", "bo"),  # s vs xl
        _vote("human", "p2", "s", "xl", "B", "ann"),
        _vote("human", "p2", "s", "xl", "B", "bo"),
        _vote("human", "p3", "s", "xl", "bad", "ann"),
        _vote("human", "p3", "s", "xl", "bad", "bo"),
    ]
    table = preference.outcomes(_votes(records), ORDER, judge=False).set_index("prompt_id")
    assert table.loc["p1", "outcome"] == 0 and table.loc["p1", "label"] == "tie"  # one each way: a tie
    assert table.loc["p2", "label"] == "big" and table.loc["p3", "label"] == "bad"
    tally = preference.tallies(table.reset_index(), ORDER)[0]
    rate, low, high = tally.win_rate()
    assert (tally.big_wins, tally.ties, tally.bad) == (1, 1, 1) and math.isclose(rate, 0.5 + 1 / 6)
    assert low < rate < high


def test_pairs_cover_each_step_and_the_largest_and_the_schedule_interleaves_them():
    assert pairs.ladder_pairs(ORDER) == [("s", "m"), ("m", "l"), ("l", "xl"), ("s", "xl"), ("m", "xl")]
    per_pair = [[Item(f"p{i}", "q", None, a, b, "x", "y") for i in range(8)] for a, b in pairs.ladder_pairs(ORDER)]
    order = pairs.schedule(per_pair)
    assert len(order) == 40 and len({i.key for i in order}) == 40
    first_round = order[:5]
    assert len({(i.small, i.big) for i in first_round}) == 5 and len({i.prompt_id for i in first_round}) == 5
    assert Item("p", "q", None, "s", "m", " same  answer", "same answer").identical


# --- issue 32: kappa without identical pairs, the judge gate, the ladder-wide rule -------------------


def _human(prompt, small, big, choice, identical=False):
    return {**asdict(_vote("human", prompt, small, big, choice, "ann")), "kind": "vote", "identical": identical}


def _table(rows: list[dict], judge: bool) -> pd.DataFrame:
    return preference.outcomes(pd.DataFrame(rows), ORDER, judge=judge)


def test_kappa_and_its_count_leave_out_identical_answers():
    rng = np.random.default_rng(4)
    people, judge = [], []
    for i in range(100):  # independent sources, the judge consistent in both orders: kappa near 0
        people.append(_human(f"p{i}", "s", "xl", ["A", "B", "tie"][rng.integers(3)]))
        orders = [("B", "A"), ("A", "B"), ("tie", "tie")][rng.integers(3)]
        judge += [{**asdict(v), "kind": "vote", "identical": False} for v in _judge(f"p{i}", "s", "xl", *orders)]
    alone = preference.agreement(_table(judge, True), _table(people, False))
    for i in range(100, 130):  # identical answers: a tie for both without anyone judging
        people.append(_human(f"p{i}", "s", "xl", "tie", identical=True))
        judge += [{**asdict(v), "kind": "vote", "identical": True} for v in _judge(f"p{i}", "s", "xl", "tie", "tie")]
    with_identical = preference.agreement(_table(judge, True), _table(people, False))
    assert with_identical == alone and alone.pairs == 100 and abs(alone.kappa) < 0.2


def _gated(judge_pick: str, human_pick: str | None, prompts: int = 40, tie_share: float = 0.0):
    """A judge consistent in both orders choosing `judge_pick` ("big", "small" or "tie") for s vs xl, and people
    choosing `human_pick` on the same prompts."""
    rows, people = [], []
    for i in range(prompts):
        pick = "tie" if i < tie_share * prompts else judge_pick
        first, second = {"big": ("B", "A"), "small": ("A", "B"), "tie": ("tie", "tie")}[pick]
        rows += [{**asdict(v), "kind": "vote", "identical": False} for v in _judge(f"p{i}", "s", "xl", first, second)]
        if human_pick:
            people.append(
                _human(f"p{i}", "s", "xl", "tie" if pick == "tie" else {"big": "B", "small": "A"}[human_pick])
            )
    votes = pd.DataFrame(rows)
    table = preference.outcomes(votes, ORDER, judge=True)
    k = preference.agreement(table, _table(people, False)) if human_pick else None
    return preference.Preference(
        "judge:j",
        table,
        [],
        preference.decide(table, ORDER, 0.05),
        consistency=preference.consistency(votes, ORDER),
        kappa_vs_human=k,
    )


def test_the_judge_gate_needs_it_to_tell_answers_apart_and_to_agree_with_people():
    mixed = _gated("big", "big", tie_share=0.3)  # 70% non-tie, agreeing with people
    assert mixed.consistency.above_chance and mixed.non_tie == 0.7 and mixed.kappa_vs_human.passes and mixed.decides
    contrary = _gated("small", "big", tie_share=0.3)  # consistent, but always for the smaller model
    assert contrary.consistency.above_chance and contrary.kappa_vs_human.kappa < 0.4 and not contrary.decides
    ties = _gated("big", None, tie_share=0.6)  # consistent, but a tie on most prompts
    assert ties.consistency.above_chance and ties.non_tie == 0.4 and not ties.decides
    few = _gated("small", "big", prompts=20, tie_share=0.3)  # fewer than 30 pairs with people: kappa does not gate
    assert not few.kappa_vs_human.gates and few.decides


def test_the_preference_verdict_is_the_fixed_sequence():
    records = []
    for i in range(100):  # l loses to xl on every prompt; m ties xl on every one
        records += [_vote("human", f"p{i}", "l", "xl", "B"), _vote("human", f"p{i}", "m", "xl", "tie")]
    table = preference.outcomes(_votes(records), ORDER, judge=False)
    v = preference.decide(table, ORDER, 0.05)
    assert v.baseline == "xl" and v.recommended == "xl" and v.stopped_at == ["l"]
    assert v.status("m") == "not reached" and v.vs_baseline["m"].high < 0.05  # the old rule recommended m
