"""benchmarks/verdict_error.py at a small size: the ladder-wide error of the verdict stays at alpha where
testing each rung on its own does not, and "items needed" has about the power it promises. The full-size
run is recorded in benchmarks/RESULTS.md."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import verdict_error  # noqa: E402


@pytest.mark.long
def test_the_fixed_sequence_holds_alpha_across_the_ladder_and_items_needed_has_its_power():
    reps = 1500
    result = verdict_error.run(reps, 1500, seed=11, grid=[(0.03, 0.01), (0.05, 0.05), (0.1, 0.1)])
    alpha = result["alpha"]
    bound = alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)  # 3 Monte Carlo standard errors
    for ladder in result["ladders"]:
        assert ladder["error"] <= bound, ladder
    eight = next(r for r in result["ladders"] if (r["rungs"], r["tier"], r["as_good"]) == (8, 1, 0))
    assert eight["each_on_its_own"] > 3 * alpha  # what the old rule allowed
    for cell in result["power"]:
        assert 0.75 <= cell["power"] <= 0.85 and 0.79 <= cell["exact"] <= 0.83, cell
    assert 430 <= result["power"][0]["items"] <= 490  # the case: about 450, not 348
