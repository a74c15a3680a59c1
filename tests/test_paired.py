"""The paired interval (Newcombe 1998, method 10) against published values, and honest at small counts."""

import numpy as np
import pytest

from sizebench import paired

# (both right, only a right, only b right, both wrong) -> 95% interval of accuracy(a) - accuracy(b), to 4
# decimals. The first seven: Newcombe's examples, method 10 column, as transcribed from Newcombe (1998),
# Statistics in Medicine 17:2635-2650, in breakoutwithai/jevnotjev docs/decision/newcombe_check.py.
# The last: Cavo et al. (2012), Newcombe square-and-add CI in Fagerland, Lydersen & Laake, "Statistical
# Analysis of Contingency Tables", ch. 8, as tested in ocbe-uio/contingencytables (-0.1186 to -0.0046).
PUBLISHED = [((36, 12, 2, 0), (0.0569, 0.3404)), ((20, 12, 2, 16), (0.0562, 0.3292)),
             ((18, 12, 2, 18), (0.0562, 0.3290)), ((36, 14, 0, 0), (0.1528, 0.4167)),
             ((35, 14, 0, 1), (0.1461, 0.4175)), ((18, 14, 0, 18), (0.1441, 0.3963)),
             ((2, 97, 1, 0), (0.8721, 0.9854)), ((59, 6, 16, 80), (-0.1186, -0.0046))]


def outcomes(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither)
    return a, b


@pytest.mark.parametrize("cells, expected", PUBLISHED)
def test_compare_reproduces_the_published_intervals(cells, expected):
    result = paired.compare(*outcomes(*cells))
    assert (round(result.low, 4), round(result.high, 4)) == expected
    assert (result.both, result.a_only, result.b_only) == cells[:3]


def test_the_vectorised_interval_is_compare_s_interval():
    both, a_only, b_only, neither = np.array([cells for cells, _ in PUBLISHED]).T
    low, high = paired.newcombe_interval(a_only, b_only, both, neither)
    for (cells, _), lo, hi in zip(PUBLISHED, low, high):
        result = paired.compare(*outcomes(*cells))
        assert (result.low, result.high) == pytest.approx((lo, hi), abs=1e-12)


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
    needed = paired.items_needed(gap, 0.0, 40)  # two tied models that each get half the items right
    assert paired.newcombe_interval(0, 0, needed / 2, needed / 2)[1] < gap
    assert paired.newcombe_interval(0, 0, (needed - 1) / 2, (needed - 1) / 2)[1] >= gap
    half = (needed + 1) // 2
    assert paired.compare(*outcomes(half, 0, 0, half)).high < gap


def test_the_verdict_s_rule_names_the_interval_it_uses():
    from sizebench.report.verdict import rule

    text = rule(0.05, "total parameters")
    assert "Newcombe 1998, method 10" in text and "bootstrap" not in text
