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
    assert estimate.to_json() == {"mean": None, "low": None, "high": None, "n": 0, "prompts": 0, "epoch_means": [], "epoch_sd": None}
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


# Two-level bootstrap (prompts, then epochs within each drawn prompt) against the one-level cluster one.


def test_two_level_weights_keep_the_prompt_draws_and_fill_each_prompts_epochs() -> None:
    from gtalign.metrics._bootstrap import _multiplicities, _row_weights

    # Rows of prompt 0 and 1 interleaved: a0, b0, a1, b1 (two epochs each).
    clusters = np.array([0, 1, 0, 1])
    rng = group_rng(3, "w")
    weights = _row_weights(clusters, 2, 500, rng, rng.spawn(1)[0])
    prompt_draws = _multiplicities(2, 500, group_rng(3, "w"))
    # Each drawn prompt fills its 2 slots with its own rows: per prompt, twice its draw count.
    assert np.array_equal(weights[:, [0, 2]].sum(axis=1), 2 * prompt_draws[:, 0])
    assert np.array_equal(weights[:, [1, 3]].sum(axis=1), 2 * prompt_draws[:, 1])
    assert np.all(weights.sum(axis=1) == 4)
    # Where a was drawn once, its two slots are drawn among its rows: every split (2, 0), (1, 1),
    # (0, 2) occurs, where the cluster bootstrap would always give (1, 1).
    once = prompt_draws[:, 0] == 1
    assert {(int(x), int(y)) for x, y in weights[once][:, [0, 2]]} == {(2, 0), (1, 1), (0, 2)}


def test_two_prompts_two_epochs_by_hand() -> None:
    """Prompt a scores (1, 0) over its epochs, prompt b (1, 1): the pooled mean is 3/4.

    Cluster: a resample is aa, ab or bb (1/4, 1/2, 1/4) with means 1/2, 3/4, 1: interval [1/2, 1].
    Two-level: a drawn a contributes 0, 1 or 2 (1/4, 1/2, 1/4) over its two slots, a drawn b 2,
    so one draw gives 0, 1, 2 with 1/8, 1/4, 5/8; two draws sum to 0..4 with 1/64, 4/64, 14/64,
    20/64, 25/64. The 2.5% point falls in the 5/64 below 1/2, at 1/4; the 97.5% point at 1."""
    values = [1.0, 1.0, 0.0, 1.0]
    clusters = ["a", "b", "a", "b"]
    epochs = [0, 0, 1, 1]
    cluster = bootstrap_mean(values, clusters, epochs=epochs, resamples=4000, seed=5, bootstrap="cluster")
    two = bootstrap_mean(values, clusters, epochs=epochs, resamples=4000, seed=5, bootstrap="two-level")
    for estimate in (cluster, two):
        assert estimate.mean == pytest.approx(0.75)
        assert (estimate.n, estimate.prompts) == (4, 2)
        # Epoch 0: (1 + 1) / 2; epoch 1: (0 + 1) / 2; sd of (1, 0.5) = 0.5 / sqrt(2).
        assert estimate.epoch_means == (1.0, 0.5)
        assert estimate.epoch_sd == pytest.approx(0.5 / math.sqrt(2))
    assert (cluster.low, cluster.high) == pytest.approx((0.5, 1.0))
    assert (two.low, two.high) == pytest.approx((0.25, 1.0))
    assert _width(two) >= _width(cluster)


def test_without_within_prompt_variance_both_give_the_same_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """The epochs of each prompt agree: drawing among them changes nothing, and the two methods
    draw the same prompts, so their intervals are equal (not only in distribution), also when the
    resamples are drawn in several chunks."""
    monkeypatch.setattr("gtalign.metrics._bootstrap._CHUNK", 5000)
    per_prompt = np.random.default_rng(6).random(60)
    values = [v for v in per_prompt for _ in range(3)]
    clusters = [i for i in range(60) for _ in range(3)]
    cluster = bootstrap_mean(values, clusters, seed=2, bootstrap="cluster")
    two = bootstrap_mean(values, clusters, seed=2, bootstrap="two-level")
    assert (two.low, two.high) == pytest.approx((cluster.low, cluster.high), abs=1e-12)


def test_two_level_is_wider_with_within_prompt_variance() -> None:
    rng = np.random.default_rng(9)
    values = [m + e for m in rng.random(80) for e in rng.normal(0, 0.5, 4)]
    clusters = [i for i in range(80) for _ in range(4)]
    cluster = bootstrap_mean(values, clusters, resamples=3000, seed=1, bootstrap="cluster")
    two = bootstrap_mean(values, clusters, resamples=3000, seed=1, bootstrap="two-level")
    assert _width(two) > _width(cluster)


def test_one_epoch_per_prompt_both_are_the_plain_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gtalign.metrics._bootstrap._CHUNK", 5000)  # several chunks of resamples
    values = np.random.default_rng(4).random(200)
    resamples, seed = 1000, 11
    # The ordinary bootstrap, written out: draw 200 indices with replacement per resample.
    draws = np.random.default_rng(seed).integers(0, 200, size=(resamples, 200))
    low, high = np.percentile(values[draws].mean(axis=1), [2.5, 97.5])
    for method in ("cluster", "two-level"):
        estimate = bootstrap_mean(values.tolist(), resamples=resamples, seed=seed, bootstrap=method)  # type: ignore[arg-type]
        assert (estimate.low, estimate.high) == pytest.approx((low, high), abs=1e-12)
        assert estimate.epoch_means == () and estimate.epoch_sd is None


def test_epoch_means_skip_an_epoch_without_values() -> None:
    estimate = bootstrap_mean([0.2, None, 0.6, 1.0], ["a", "a", "b", "b"], epochs=[0, 1, 2, 2], resamples=0)
    # Epoch 0: 0.2; epoch 1: no value; epoch 2: (0.6 + 1.0) / 2 = 0.8.
    assert estimate.epoch_means == pytest.approx((0.2, 0.8))
    assert estimate.epoch_sd == pytest.approx(0.6 / math.sqrt(2))
    assert estimate.to_json()["epoch_sd"] == pytest.approx(0.6 / math.sqrt(2))
    assert estimate.format(2, spread=True) == "0.60 sd 0.42"


def test_unknown_bootstrap_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="two-level, cluster"):
        bootstrap_mean([1.0], bootstrap="nested")  # type: ignore[arg-type]
