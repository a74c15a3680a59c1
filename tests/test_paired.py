"""The paired interval (Tango 1998 score interval) against published values, and honest at small counts."""

import numpy as np
import pytest

from sizebench.analysis import paired

# (both right, only a right, only b right, both wrong) -> 95% interval of accuracy(a) - accuracy(b).
# Cavo et al. (2012) and Bentur et al. (2009), the worked examples of Fagerland, Lydersen & Laake,
# "Recommended tests and confidence intervals for paired binomial proportions", Statistics in Medicine
# 33:2850-2875 (2014) and their book's chapter 8: Cavo to 4 decimals as tested in ocbe-uio/contingencytables
# (tests/testthat/test-ch8.R), Bentur to 3 as tested in PeteLaud/ratesci (tests/testthat/test3.R). Then
# the example ratesci's tests give for Tango's own method, and contingencytables' case of 3 items all
# right for a alone (the upper end truncated at 1).
PUBLISHED = [
    ((59, 6, 16, 80), (-0.1240, -0.0054), 4),
    ((1, 1, 7, 12), (-0.517, -0.026), 3),
    ((4, 9, 3, 16), (-0.027, 0.390), 3),
    ((0, 3, 0, 0), (-0.1230, 1.0), 4),
]


def outcomes(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither)
    return a, b


@pytest.mark.parametrize("cells, expected, places", PUBLISHED)
def test_compare_reproduces_the_published_intervals(cells, expected, places):
    result = paired.compare(*outcomes(*cells))
    assert (round(result.low, places), round(result.high, places)) == expected
    assert (result.a_only, result.b_only, result.n) == (cells[1], cells[2], sum(cells))


def test_the_published_90_percent_interval():
    # ratesci's test of Tango's method at 90%: 44 pairs, one discordant, right for b alone: -0.096 to 0.037
    low, high = paired.tango_interval(0, 1, 44, confidence=0.90)
    assert (round(float(low), 3), round(float(high), 3)) == (-0.096, 0.037)


def test_the_vectorised_interval_is_compare_s_interval():
    _, a_only, b_only, _ = np.array([cells for cells, _, _ in PUBLISHED]).T
    n = np.array([sum(cells) for cells, _, _ in PUBLISHED])
    low, high = paired.tango_interval(a_only, b_only, n)
    for (cells, _, _), lo, hi in zip(PUBLISHED, low, high):
        result = paired.compare(*outcomes(*cells))
        assert (result.low, result.high) == pytest.approx((lo, hi), abs=1e-12)


def test_the_interval_depends_only_on_the_discordant_items():
    split = [paired.compare(*outcomes(both, 3, 1, 36 - both)) for both in (0, 18, 36)]
    assert len({(r.low, r.high) for r in split}) == 1


def test_one_discordant_item_out_of_40_leaves_either_model_possibly_better():
    # the case: the prompt suite's 40 items, 28 right for the better model, 1 vs 0 discordant
    one = paired.compare(*outcomes(27, 1, 0, 12))
    none = paired.compare(*outcomes(28, 0, 0, 12))
    assert one.low < 0 < one.high
    assert none.low < 0 < none.high
    assert one.high >= none.high  # one more disagreement is not more certainty


def test_each_further_one_sided_disagreement_raises_the_upper_end():
    highs = [paired.compare(*outcomes(28 - k, k, 0, 12)).high for k in range(6)]
    assert highs == sorted(highs) and len(set(highs)) == len(highs)


@pytest.mark.parametrize("n", [20, 40, 100, 200, 565])
def test_one_disagreement_is_never_more_certain_than_none_and_fewer_items_are_less_certain(n):
    right = int(0.7 * n)
    none, one = (paired.compare(*outcomes(right - k, k, 0, n - right)) for k in (0, 1))
    assert one.low < 0 and one.high >= none.high
    fewer = paired.compare(*outcomes(right // 2 - 1, 1, 0, n // 2 - right // 2))  # half the items
    assert fewer.high - fewer.low > one.high - one.low


def test_items_needed_with_no_discordant_item_is_where_the_interval_falls_below_the_gap():
    gap = 0.03
    needed = paired.items_needed(0, 0, 40, gap)
    assert paired.tango_interval(0, 0, needed)[1] < gap <= paired.tango_interval(0, 0, needed - 1)[1]
    half = needed // 2
    assert paired.compare(*outcomes(half, 0, 0, needed - half)).high < gap


def test_the_margin_test_rejects_exactly_when_the_interval_ends_below_the_margin():
    a_only, b_only = np.meshgrid(np.arange(0, 40), np.arange(0, 25))
    a_only, b_only = a_only.ravel(), b_only.ravel()
    high = paired.tango_interval(a_only, b_only, 300)[1]
    p = np.array([paired.noninferiority_p(a, b, 300, 0.05) for a, b in zip(a_only, b_only)])
    assert ((p < paired.ALPHA) == (high < 0.05)).all()
    assert ((p < paired.ALPHA) == (high < 0.05)).any() and (p >= paired.ALPHA).any()


def test_items_needed_uses_the_score_test_s_variance_at_the_margin():
    # the case: right for the better model only on 3% of items, for the other only on 1%, margin 0.05:
    # a paired t-test with the observed spread said 348, with which Tango's interval clears the margin in
    # about two runs of three; the score test's variance at the margin asks for about 450
    needed = paired.items_needed(30, 10, 1000, 0.05)
    assert 430 <= needed <= 490
    rng = np.random.default_rng(0)
    counts = rng.multinomial(needed, [0.03, 0.01, 0.96], size=4000)
    power = (paired.tango_interval(counts[:, 0], counts[:, 1], needed)[1] < 0.05).mean()
    assert 0.77 <= power <= 0.84
    assert paired.items_needed(50, 0, 1000, 0.05) is None  # the observed difference on the margin


def test_the_verdict_s_rule_names_the_interval_it_uses():
    from sizebench.report.verdict_section import rule

    text = rule(0.05, "total parameters")
    assert "Tango's score interval" in text and "Tango 1998" in text
    assert "bootstrap" not in text and "Newcombe" not in text
