"""The cluster bootstrap behind every interval: contains the mean, shrinks with n, is seeded,
and treats the epochs of one prompt as one cluster."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gtalign.metrics import Estimate, bootstrap_mean
from gtalign.metrics._bootstrap import group_rng, ratio_estimates


def _width(estimate: Estimate) -> float:
    return estimate.high - estimate.low


def test_interval_contains_the_mean_and_is_reproducible() -> None:
    values = np.random.default_rng(3).random(200).tolist()
    first = bootstrap_mean(values, seed=7)
    assert first.low <= first.mean <= first.high
    assert first.mean == pytest.approx(float(np.mean(values)))
    assert (first.n, first.prompts) == (200, 200)
    assert bootstrap_mean(values, seed=7) == first
    assert bootstrap_mean(values, seed=8) != first


def test_interval_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_mean(rng.random(50).tolist())
    large = bootstrap_mean(rng.random(2000).tolist())
    assert _width(large) < _width(small) / 3  # sqrt(40) ~ 6.3 in expectation


def test_interval_width_matches_the_normal_approximation() -> None:
    values = np.random.default_rng(1).normal(0.0, 1.0, 400)
    estimate = bootstrap_mean(values.tolist(), resamples=4000)
    expected = 2 * 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert _width(estimate) == pytest.approx(expected, rel=0.15)


def test_epochs_of_one_prompt_are_one_cluster() -> None:
    """K identical epochs per prompt carry no more information than one: same interval."""
    values = np.random.default_rng(2).random(100).tolist()
    one = bootstrap_mean(values, list(range(100)), seed=4)
    four = bootstrap_mean([v for v in values for _ in range(4)], [i for i in range(100) for _ in range(4)], seed=4)
    assert (four.n, four.prompts) == (400, 100)
    assert four.mean == pytest.approx(one.mean)
    assert (four.low, four.high) == pytest.approx((one.low, one.high))
    # Treated as 400 independent prompts, the interval would be about half as wide: wrong.
    naive = bootstrap_mean([v for v in values for _ in range(4)], seed=4)
    assert _width(naive) < 0.7 * _width(four)


def test_missing_values_are_left_out_and_none_is_not_zero() -> None:
    estimate = bootstrap_mean([1.0, None, 0.0, math.nan, 1.0], resamples=50)
    assert estimate.mean == pytest.approx(2 / 3)
    assert estimate.n == 3


def test_no_values_is_undefined_and_json_has_no_nan() -> None:
    estimate = bootstrap_mean([None, None])
    assert not estimate.defined
    assert estimate.format() == "n/a"
    assert estimate.to_json() == {"mean": None, "low": None, "high": None, "n": 0, "prompts": 0}
    json.dumps(estimate.to_json(), allow_nan=False)


def test_zero_resamples_gives_the_mean_without_an_interval() -> None:
    estimate = bootstrap_mean([0.0, 1.0], resamples=0)
    assert estimate.mean == 0.5 and math.isnan(estimate.low) and math.isnan(estimate.high)
    assert estimate.format() == "0.500"


def test_constant_values_give_a_point_interval() -> None:
    estimate = bootstrap_mean([0.1] * 30)
    assert estimate.low <= estimate.mean <= estimate.high
    assert _width(estimate) == pytest.approx(0.0, abs=1e-12)


def test_ratio_of_sums_by_hand() -> None:
    # Two prompts: quality sums 1 and 0 over 100 and 200 tokens -> 1/300 per token.
    num = np.array([[1.0], [0.0]])
    den = np.array([[100.0], [200.0]])
    rows = np.array([[1], [1]])
    (estimate,) = ratio_estimates(num, den, rows, resamples=200, rng=group_rng(0, "x"))
    assert estimate.mean == pytest.approx(1 / 300)
    # Resamples: both prompts 1/300, prompt 0 twice 1/100, prompt 1 twice 0: the interval spans [0, 1/100].
    assert estimate.low == pytest.approx(0.0) and estimate.high == pytest.approx(0.01)


def test_group_seeds_are_independent_of_other_groups() -> None:
    assert group_rng(0, "wildguard").random() == group_rng(0, "wildguard").random()
    assert group_rng(0, "wildguard").random() != group_rng(0, "ambig_qa").random()


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="one shape"):
        ratio_estimates(np.zeros((2, 1)), np.zeros((3, 1)), np.zeros((2, 1)), resamples=1, rng=group_rng(0, ""))
    with pytest.raises(ValueError, match="cluster keys"):
        bootstrap_mean([1.0, 2.0], ["a"])
