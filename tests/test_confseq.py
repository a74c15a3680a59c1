"""The anytime-valid confidence sequence of `--until-decided` (sizebench.analysis.confseq): pure numpy, seconds."""

from __future__ import annotations

import numpy as np
import pytest

from sizebench.analysis import confseq
from sizebench.analysis.paired import ALPHA


def _population(rng, n, a_only, b_only):
    return rng.permutation(rng.choice([1, -1, 0], p=[a_only, b_only, 1 - a_only - b_only], size=n))


# confseq 0.0.11's hedged_cs((d + 1) / 2, alpha=0.05, N=N, breaks=1000, running_intersection=True) on these draws
# (run by benchmarks/sequential.py --check-confseq against that package's own source), mapped back to differences.
CONFSEQ_0_0_11 = [
    ((196, 0.3, 0.05, 64), (0.048, 0.36)),
    ((500, 0.1, 0.1, 200), (-0.092, 0.102)),
    ((1000, 0.4, 0.02, 300), (0.344, 0.54)),
    ((None, 0.2, 0.1, 150), (-0.024, 0.238)),
]


def test_equals_the_confseq_package_on_its_own_construction():
    rng = np.random.default_rng(1)
    for (population, a_only, b_only, n), expected in CONFSEQ_0_0_11:
        draws = rng.choice([1, -1, 0], p=[a_only, b_only, 1 - a_only - b_only], size=population or n)[:n]
        s = confseq.sequence(draws, 0.05, population)
        assert (s.low, s.high) == pytest.approx(expected, abs=1e-9)


def test_covers_the_population_difference_at_every_look():
    """Seeded: 300 tasks of 400 items; the sequence must hold the full-run difference at every chunk boundary
    in at least 95% of them (the guarantee is for all looks together)."""
    rng = np.random.default_rng(7)
    missed = 0
    for _ in range(300):
        items = _population(rng, 400, 0.15, 0.08)
        truth = (items.mean() + 1) / 2
        up, down = confseq.max_log_capital((items + 1) / 2, [truth], 400, 0.05)  # the largest over every look
        missed += bool(max(up[0], down[0]) >= np.log(2 / 0.05))
    assert missed / 300 <= 0.05
    s = confseq.sequence(items, 0.05, 400)
    assert s.low <= items.mean() <= s.high


def test_all_items_pin_the_difference_down():
    """Without replacement, the last item leaves only the population's own difference (up to the grid)."""
    items = _population(np.random.default_rng(3), 196, 0.25, 0.01)
    s = confseq.sequence(items, 0.05, 196)
    assert s.low <= items.mean() <= s.high
    assert s.low == s.high == pytest.approx(items.mean())
    with_replacement = confseq.sequence(items, 0.05)
    assert with_replacement.high - with_replacement.low > 0.1  # the finite population is what tightens it


def test_the_margin_p_value_agrees_with_the_interval():
    rng = np.random.default_rng(11)
    for _ in range(40):
        n = int(rng.integers(20, 300))
        items = _population(rng, 300, rng.uniform(0, 0.3), rng.uniform(0, 0.1))[:n]
        s = confseq.sequence(items, 0.05, 300)
        if s.high < 0.05 - 1e-9:
            assert s.p_within < ALPHA
        if s.p_within < ALPHA:
            assert s.high <= 0.05 + confseq.GRID_STEP


def test_bad_input_is_refused():
    for bad in ([], [0.5, 1], [[1, 0]]):
        with pytest.raises(ValueError):
            confseq.sequence(bad, 0.05)
    with pytest.raises(ValueError):
        confseq.sequence([1, 0, 1], 0.05, population=2)


def test_the_truth_is_not_ruled_out_by_rounding_at_the_last_items():
    """0.55 * 200 is 110.00000000000001 in floating point: the last item's mean left must not leave [0, 1] by that."""
    d = np.zeros(200, dtype=int)
    d[:40], d[40:60] = 1, -1
    for seed in range(20):
        items = np.random.default_rng(seed).permutation(d)
        up, down = confseq.max_log_capital((items + 1) / 2, [(items.mean() + 1) / 2], 200, 0.05)
        assert np.isfinite(up[0]) and np.isfinite(down[0])
