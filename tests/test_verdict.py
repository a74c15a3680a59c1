"""Paired statistics and the verdict on synthetic per-item outcomes whose answer is known."""

import io
from pathlib import Path
import json

import numpy as np
import pandas as pd
import pytest

from sizebench.analysis import cost, paired, scaling, verdict
from sizebench.runstore import frames
from sizebench import report
from sizebench.runstore.records import EnergyRecord, ItemsRecord, ItemTextRecord, LoadRecord, PromptRecord, StageRecord
from sizebench.runstore.store import RunStore
from sizebench.analysis.verdict import Outcomes

from conftest import records, rendered_apart, sizebench


def outcomes(columns: dict, name="t") -> Outcomes:
    return Outcomes(name, "acc", pd.DataFrame(columns))


def test_identical_models_differ_by_zero_with_p_one():
    rng = np.random.default_rng(3)
    a = (rng.random(200) < 0.6).astype(int)
    result = paired.compare(a, a.copy())
    assert result.diff == 0 and result.low < 0 < result.high and result.p == 1  # no zero-width certainty
    assert result.a_only == result.b_only == 0


@pytest.mark.parametrize("k", [1, 7, 30])
def test_better_on_exactly_k_items_gives_the_exact_binomial_p(k):
    from scipy.stats import binom
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(k)
    b = (rng.random(400) < 0.5).astype(int)
    a = b.copy()
    a[np.flatnonzero(b == 0)[:k]] = 1  # a right on k more items, never the other way
    result = paired.compare(a, b)
    assert (result.a_only, result.b_only) == (k, 0)
    assert result.diff == pytest.approx(k / 400)
    # two-sided exact McNemar computed independently: twice the binomial tail of the rarer discordance
    assert result.p == pytest.approx(min(1.0, 2 * binom.cdf(0, k, 0.5)))
    assert result.p == pytest.approx(mcnemar([[100, k], [0, 100]], exact=True).pvalue)
    assert result.low <= result.diff <= result.high


def test_mixed_discordance_matches_statsmodels_mcnemar_and_the_interval_is_deterministic():
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(5)
    a, b = (rng.random(300) < 0.6).astype(int), (rng.random(300) < 0.5).astype(int)
    result = paired.compare(a, b)
    both = int(((a == 1) & (b == 1)).sum())
    neither = int(((a == 0) & (b == 0)).sum())
    table = [[both, result.a_only], [result.b_only, neither]]
    assert result.p == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert paired.compare(a, b) == result  # same interval every time
    assert result.low < result.diff < result.high


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    ps = [0.01, 0.04, 0.03, 0.5]
    assert paired.holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]))


def test_margin_rule_picks_the_smallest_model_within_the_margin():
    n = 2000
    big = np.ones(n, dtype=int)
    big[:400] = 0  # 0.80
    medium = big.copy()
    medium[400:420] = 0  # 0.79: 20 items behind, none ahead
    small = big.copy()
    small[400:800] = 0  # 0.60
    v = verdict.decide(outcomes({"small": small, "medium": medium, "big": big}), 0.05)
    assert v.baseline == "big" and v.recommended == "medium" and v.undecided == []
    assert v.status("small") == "worse by the margin or more"
    assert v.vs_baseline["medium"].high < 0.05 and v.vs_baseline["small"].low >= 0.05
    assert [(s.small, s.big) for s in v.steps] == [("small", "medium"), ("medium", "big")]


def test_too_few_items_cannot_decide_and_say_how_many_would():
    big = np.array([1] * 30 + [0] * 10)
    small = big.copy()
    small[:2] = 0  # 0.05 behind on 40 items
    v = verdict.decide(outcomes({"small": small, "big": big}), 0.05)
    assert v.recommended == "big" and v.undecided == ["small"]
    assert v.needed["small"] is None  # the observed gap sits on the margin: no count settles it
    small[0] = 1  # 0.025 behind
    v = verdict.decide(outcomes({"small": small, "big": big}), 0.05)
    assert v.undecided == ["small"] and v.needed["small"] > 40


def test_no_discordant_items_on_a_tiny_set_is_not_a_certainty():
    same = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1])
    v = verdict.decide(outcomes({"small": same, "big": same.copy()}), 0.05)
    assert v.best == "small"  # a tie goes to the smaller model
    # ... but against the fixed baseline, 10 items without one discordant pair cannot show a 0.05 margin
    assert v.recommended == "big" and v.undecided == ["small"]
    v = verdict.decide(outcomes({"small": same, "big": np.r_[same[:-1], 0]}), 0.05)
    assert v.best == "small"


def test_pareto_front():
    points = {"a": (100, 0.5), "b": (200, 0.7), "c": (300, 0.6), "d": (400, 0.9)}
    assert cost.pareto(points) == ["a", "b", "d"]


# --- a stored run, no model needed --------------------------------------------------------------


def load(model, params, family="fam", dtype="float32"):
    return LoadRecord(
        model,
        "a",
        family,
        "hub",
        params,
        100.0,
        params * 4 / 2**20,
        None,
        None,
        0.5,
        "cached",
        dtype,
        "cpu",
        1,
        2,
        "dolly",
        params / 1e6,
        None,
    )


def prompt(model, pid, answer, correct, latency=1.0):
    return PromptRecord(model, "a", pid, f"Question {pid}?", ["Paris"], answer, correct, 10, 8, 0.1, latency, 20.0)


def make_run(tmp_path, accuracies, family_of=lambda m: "fam", with_items=True, n=300):
    names = list(accuracies)
    store = RunStore.create(
        tmp_path,
        {
            "command": "sizebench bench",
            "environment": {"started": "2026-11-23T10:00"},
            "plan": {
                "models": [
                    {"name": m, "params": (i + 1) * 10**8, "location": m, "source": "hub"} for i, m in enumerate(names)
                ]
            },
        },
    )
    rng = np.random.default_rng(0)
    base = rng.random(n)
    for i, m in enumerate(names):
        store.append(load(m, 10 ** (8 + i), family_of(m)))
        right = (base < accuracies[m]).astype(int).tolist()
        for pid in range(4):
            store.append(prompt(m, f"p{pid}", "Paris" if pid <= i else "Lyon", pid <= i, latency=1.0 + i))
        store.append(StageRecord(m, "a", "prompts", 1.0, 100.0, None))
        if with_items:
            if i == 0:
                store.append(
                    ItemTextRecord(
                        m,
                        "a",
                        "geo",
                        list(range(n)),
                        [f"Capital of country {d}?" for d in range(n)],
                        [["Paris", "Lyon"]] * n,
                        ["Paris"] * n,
                    )
                )
            store.append(
                ItemsRecord(
                    m,
                    "a",
                    "geo",
                    list(range(n)),
                    [0] * n,
                    [[-1.0, -2.0]] * n,
                    [0 if r else 1 for r in right],
                    [0 if r else 1 for r in right],
                    {"acc": right, "acc_norm": right},
                )
            )
        store.append(StageRecord(m, "a", "tasks", 1.0, 100.0, None))
    return store


@pytest.mark.long
def test_report_opens_with_the_verdict_and_shows_evidence_flips_and_cost(tmp_path):
    from rich.console import Console

    store = make_run(tmp_path, {"s": 0.5, "m": 0.7, "l": 0.71})
    store.append(EnergyRecord("s", "a", "prompts", 8.0, 16, "RAPL, 1 CPU package(s), whole package"))
    path = report.publish([store.dir], tmp_path, Console(file=io.StringIO()), price_per_hour=2.0)
    text = path.read_text()
    assert text.startswith("# sizebench report\n\n## Verdict\n\n**geo** (300 items, acc): **m** is enough")
    assert "**The rule.**" in text and "--margin 0.05" in text
    for heading in ("## Paired comparisons", "## Flips up the ladder", "## Cost frontier", "### geo: s -> m"):
        assert heading in text
    assert "Capital of country" in text and "cost per 1M tokens" in text
    assert "| 0.5 J (RAPL, 1 CPU package(s), whole package) |" in text and text.count("| not measured |") == 2
    fr = frames.load([store.dir])
    measured = [fr["items"].set_index("model").loc[m, "scores"]["acc"] for m in ("s", "m", "l")]
    slope = np.polyfit([8, 9, 10], [np.mean(a) for a in measured], 1)[0]  # independent least squares
    assert "## Scaling fit" in text and f"{slope:+.3f} ± " in text
    assert (tmp_path / "plot_cost_frontier.png").exists() and (tmp_path / "plot_scaling_fit.png").exists()
    # the same runs give the same report and plots, byte for byte, in any process (string hashing included)
    first, second = rendered_apart(store.dir, tmp_path / "again", "--price-per-hour", "2")
    assert first.keys() == second.keys() and [n for n in first if first[n] != second[n]] == []
    assert first["report.md"] == path.read_bytes()


def test_two_rungs_claim_no_fit_and_old_runs_render(tmp_path):
    store = make_run(tmp_path, {"s": 0.5, "l": 0.7}, with_items=False)
    text = report.render(frames.load([store.dir]), [])
    assert "no fit is claimed" in text and "plot_scaling_fit" not in text
    assert "**prompt suite** (4 items" in text  # the prompt suite's stored correctness still gets a verdict


def test_mixed_precisions_order_the_verdict_as_the_summary(tmp_path):
    """A real run's records (tiny GPT-NeoX @fp32 and @int8, and a same-shape model at fp32): the worker writes
    the run dtype (float32) for every row, so only the variant's precision tells int8 apart."""
    import shutil

    from sizebench.analysis.per_model import summary

    run = shutil.copytree(Path(__file__).parent / "data" / "run-before-issue-19", tmp_path / "run")
    fr = frames.load([run])
    in_summary = list(summary(fr)["model"])
    assert in_summary[0] == "tiny-neox@int8"
    for v in verdict.verdicts(fr):
        assert list(v.outcomes.table.columns) == in_summary
        # equal accuracy everywhere, but 2 to 24 items cannot show a rung within 0.05 of the baseline (the largest,
        # first in the plan among equals); the old rule took the observed best, the smallest of the tied, instead
        assert v.baseline == v.recommended == "tiny-neox@fp32" and v.same_size == ["tiny-ender"]
        assert v.status("tiny-neox@int8") == "not reached"


def test_scaling_fit_recovers_a_known_slope(tmp_path):
    store = make_run(tmp_path, {"a": 0.4, "b": 0.5, "c": 0.6}, n=1000)
    fr = frames.load([store.dir])
    sets = verdict.outcome_sets(fr, verdict.size_order(fr)[0])
    fits, too_few = scaling.fits(fr, sets[0])
    assert too_few == {} and fits[0].per_decade == pytest.approx(0.1, abs=0.02)


@pytest.mark.long
def test_bad_margin_and_price_are_one_line_errors(tmp_path):
    for args in (["--margin", "2"], ["--margin", "0"], ["--price-per-hour", "-1"]):
        done = sizebench("report", "--results", str(tmp_path), *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "error:" in done.stderr


@pytest.mark.long
def test_eval_on_a_ladder_stores_items_once_and_renders_the_verdict(fake_ladder, tmp_path):
    done = sizebench(
        "eval", "--models", fake_ladder, "--tasks", "sizebench_geo", "--limit", "8", "--results", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    rows = records(tmp_path)
    items = [r for r in rows if r["kind"] == "items"]
    texts = [r for r in rows if r["kind"] == "item_text"]
    assert len(items) == 6 and len(texts) == 3  # per model and task; texts once per task
    for r in items:
        assert len(r["doc_ids"]) == len(r["lls"]) == len(r["chosen"]) == len(r["scores"]["acc"]) == 8
        assert all(len(ll) == 4 for ll in r["lls"])
        assert [int(c == g) for c, g in zip(r["chosen"], r["gold"])] == r["scores"]["acc"]
    assert not any("prompt" in json.dumps(r) for r in items)
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# sizebench report\n\n## Verdict\n\n**all tasks** (24 items")
    assert "## Paired comparisons" in text and "## Flips up the ladder" in text


# --- issue 32: the verdict's error rate holds across the whole ladder -----------------------------


def _ladder(n=1000, **behind) -> dict:
    """The largest right on 70% of n items; each other rung right where it is except the first k of its
    right items (k = its entry in `behind`, as a share of n), smallest first in the order given."""
    big = np.zeros(n, dtype=int)
    big[: int(0.7 * n)] = 1
    out = {}
    for name, share in behind.items():
        rung = big.copy()
        rung[: int(share * n)] = 0
        out[name] = rung
    return {**out, "big": big}


def test_a_smaller_rung_is_not_recommended_past_a_larger_one_not_shown_within_the_margin():
    # mid is 0.08 behind (shown worse); small is identical to the largest. Each-on-its-own (the old rule)
    # recommended small; the fixed sequence stops at mid and never reaches small.
    v = verdict.decide(outcomes(_ladder(small=0.0, mid=0.08)), 0.05)
    assert v.baseline == "big" and v.recommended == "big"
    assert v.status("mid") == "worse by the margin or more" and v.test.stopped_at == ["mid"]
    assert v.status("small") == "not reached" and v.vs_baseline["small"].high < 0.05
    assert "small" not in v.test.adjusted and v.undecided == ["small"]


def test_the_baseline_is_fixed_in_advance_and_the_observed_best_is_only_shown():
    table = _ladder(small=0.0, mid=0.0)
    table["mid"] = table["big"].copy()
    table["mid"][700:750] = 1  # mid is the observed best, 0.05 ahead of the largest
    v = verdict.decide(outcomes(table), 0.05)
    assert v.best == "mid" and v.baseline == "big"  # the old rule compared with mid, and small was 0.05 behind it
    assert v.recommended == "small" and set(v.test.within) == {"mid", "small"}
    chosen = verdict.decide(outcomes(table), 0.05, baseline="mid")
    assert chosen.baseline == "mid" and chosen.status("big") == "larger than the baseline"
    assert chosen.recommended == "mid" and chosen.status("small") == "undecided"  # 0.05 behind it


def test_the_margin_column_is_the_score_test_at_the_margin_adjusted_for_the_sequence():
    from sizebench.report.verdict_section import _pv, evidence_section

    v = verdict.decide(outcomes(_ladder(small=0.03, mid=0.01)), 0.05)
    assert v.recommended == "small"
    mid, small = v.vs_baseline["mid"], v.vs_baseline["small"]
    p_mid = paired.noninferiority_p(mid.a_only, mid.b_only, mid.n, 0.05)
    p_small = paired.noninferiority_p(small.a_only, small.b_only, small.n, 0.05)
    assert v.test.adjusted == {"mid": p_mid, "small": max(p_mid, p_small)}
    row = next(line for line in evidence_section([v]).splitlines() if line.startswith("| vs baseline | big | small"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2] == _pv(max(p_mid, p_small)) and cells[-3] == _pv(small.p)  # McNemar apart, not the margin


def test_rungs_of_equal_size_are_tested_together_with_holm():
    from sizebench.analysis import fixed_sequence
    from sizebench.analysis.paired import Paired

    def versus(a_only, b_only, n=400):
        low, high = paired.tango_interval(a_only, b_only, n)
        return Paired(n, (a_only - b_only) / n, float(low), float(high), a_only, b_only, 1.0, 0.0)

    one = next(k for k in range(40) if paired.noninferiority_p(k, 0, 400, 0.05) > paired.ALPHA / 2)
    assert paired.noninferiority_p(one, 0, 400, 0.05) < paired.ALPHA  # each shown within on its own
    vs = {"int8": versus(one, 0), "q8": versus(one, 0), "small": versus(0, 0)}
    test = fixed_sequence.test([["small"], ["int8", "q8"], ["fp32"]], "fp32", vs, 0.05)
    assert test.within == [] and test.stopped_at == ["int8", "q8"] and test.status("small") == "not reached"
    alone = fixed_sequence.test([["small"], ["int8"], ["fp32"]], "fp32", {**vs, "int8": vs["int8"]}, 0.05)
    assert alone.within == ["int8", "small"] and alone.recommended == "small"


def test_the_default_baseline_is_the_largest_with_the_most_bits_per_weight():
    from sizebench.analysis.sizes import SizeAxis

    size_axis = SizeAxis(
        "weights_mem_mb",
        "weight memory",
        {"a@int8": 100.0, "b@fp32": 400.0, "c@fp32": 400.0},
        ["a@int8", "b@fp32", "c@fp32"],
        {"a@int8": 8.0, "b@fp32": 16.0, "c@fp32": 32.0},
    )
    assert size_axis.tiers(["a@int8", "b@fp32", "c@fp32"]) == [["a@int8"], ["b@fp32", "c@fp32"]]
    assert size_axis.baseline(["a@int8", "b@fp32", "c@fp32"]) == "c@fp32"


def test_the_rule_states_the_ladder_wide_guarantee():
    from sizebench.report.verdict_section import rule

    text = rule(0.05, "total parameters")
    assert "fixed sequence" in text and "Holm" in text and "at most 2.5% per benchmark" in text
    assert "however many rungs" in text and "the largest rung" in text
    assert "`--baseline tiny`" in rule(0.05, "total parameters", "tiny")


@pytest.mark.long
def test_an_unknown_baseline_is_a_one_line_error(tmp_path):
    store = make_run(tmp_path, {"s": 0.5, "l": 0.7}, n=50)
    done = sizebench("report", store.run_id, "--results", str(tmp_path), "--baseline", "nope")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--baseline nope" in done.stderr
    done = sizebench("report", store.run_id, "--results", str(tmp_path), "--baseline", "s")
    assert done.returncode == 0, done.stderr
    assert "`--baseline s`" in (tmp_path / "report.md").read_text()
    for command in ("compare", "eval", "bench"):  # refused before any model loads
        done = sizebench(
            command, "--models", "smollm2-135m,gemma3-270m", "--baseline", "nope", "--results", str(tmp_path / "new")
        )
        assert (
            done.returncode == 2
            and done.stderr.count("\n") == 1
            and "--baseline nope: not one of --models" in done.stderr
        ), done.stderr
