"""Frontier, epsilon-coverage, regret and hypervolume on hand-drawn points."""

from __future__ import annotations

import numpy as np
import pytest

from gtalign.metrics import compare, frontier, hypervolume, point_regret, research_hypervolume
from gtalign.metrics._pareto import safe_range

from tests.metrics._records import record

STAIRS = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])


def test_the_issue_example_hypervolume_is_a_quarter_where_the_research_formula_gives_zero() -> None:
    assert hypervolume(STAIRS, (0.0, 0.0)) == pytest.approx(0.25)
    assert research_hypervolume(STAIRS, (0.0, 0.0)) == 0.0


def test_hypervolume_by_hand() -> None:
    # Boxes above (0, 0): (2, 1) gives 2; (1, 3) adds 1 x (3 - 1) = 2.
    points = np.array([[2.0, 1.0], [1.0, 3.0], [0.5, 0.5]])
    assert hypervolume(points, (0.0, 0.0)) == pytest.approx(4.0)
    # The research formula keeps only the last box of the sweep by u: (2 - 1) x (1 - 0) = 1.
    assert research_hypervolume(points, (0.0, 0.0)) == pytest.approx(1.0)
    # A point level with the reference in one coordinate adds no area.
    assert hypervolume(points, (1.0, 1.0)) == 0.0
    assert hypervolume(np.array([[2.0, 2.0]]), (1.0, 1.0)) == pytest.approx(1.0)
    assert hypervolume(np.empty((0, 2)), (0.0, 0.0)) == 0.0


def test_frontier_keeps_non_dominated_unique_points() -> None:
    points = np.array([[1, 0], [0.5, 0.5], [0.5, 0.5], [0.4, 0.5], [0.2, 0.2], [0, 1], [0, 0.9]])
    assert frontier(points).tolist() == [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert frontier(np.empty((0, 2))).shape == (0, 2)


def test_regret_by_hand() -> None:
    front = STAIRS
    # (0.4, 0.4): against (0.5, 0.5) the gaps are 0.1 and 0.1 -> 0.1; against (1, 0): 0.6; (0, 1): 0.6.
    # (0.9, 0.0): against (1, 0) the gap is 0.1; (0.5, 0.5): 0.5. (0, 1) is on the frontier: 0.
    regret = point_regret(np.array([[0.4, 0.4], [0.9, 0.0], [0.0, 1.0]]), front, 1.0, 1.0)
    assert regret.tolist() == pytest.approx([0.1, 0.1, 0.0])
    # Ranges scale the gaps: with R_u = 2 the first point's u-gap is 0.05, its l-gap stays 0.1.
    assert point_regret(np.array([[0.4, 0.4]]), front, 2.0, 1.0).tolist() == pytest.approx([0.1])


def test_zero_range_counts_as_one() -> None:
    assert safe_range(np.array([0.3, 0.3])) == 1.0
    assert safe_range(np.array([])) == 1.0
    assert safe_range(np.array([0.0, 0.25])) == 0.25


def _run(points: list[tuple[float, float]], **kwargs) -> list:
    return [record(f"p{i}", u=u, l=l, **kwargs) for i, (u, l) in enumerate(points)]


def test_coverage_and_regret_on_a_hand_drawn_pair() -> None:
    # Run A: (1, 0), (0.2, 0.2), (0.6, 0.6), (0, 1).  Run B: (0.95, 0.05), (0.5, 0.5), (0.58, 0.58), (0.3, 0.9).
    a = _run([(1.0, 0.0), (0.2, 0.2), (0.6, 0.6), (0.0, 1.0)])
    b = _run([(0.95, 0.05), (0.5, 0.5), (0.58, 0.58), (0.3, 0.9)])
    pair = compare(a, b, epsilon=0.1, resamples=0).overall
    # Ranges from both runs: u in [0, 1], l in [0, 1]; reference (0, 0).
    assert (pair.range_u, pair.range_l, pair.reference) == (1.0, 1.0, (0.0, 0.0))
    # Joint frontier: (1, 0), (0.95, 0.05), (0.6, 0.6), (0.3, 0.9), (0, 1).
    assert pair.frontier == ((1.0, 0.0), (0.95, 0.05), (0.6, 0.6), (0.3, 0.9), (0.0, 1.0))
    # A: three frontier points (regret 0); (0.2, 0.2) is 0.4 below (0.6, 0.6) in both -> regret 0.4
    # (every other frontier point is worse for it). Coverage 3/4, regret 0.4 / 4 = 0.1.
    assert pair.a.coverage == pytest.approx(0.75)
    assert pair.a.regret == pytest.approx(0.1)
    # B: (0.95, 0.05) and (0.3, 0.9) on the frontier; (0.5, 0.5) -> 0.1 from (0.6, 0.6): covered at eps 0.1;
    # (0.58, 0.58) -> 0.02. Coverage 1, regret (0.1 + 0.02) / 4 = 0.03.
    assert pair.b.coverage == pytest.approx(1.0)
    assert pair.b.regret == pytest.approx(0.03)
    # Own hypervolumes above (0, 0): A = 0.6 x 0.6 + 0 (the axis points add nothing) = 0.36.
    assert pair.a.hypervolume == pytest.approx(0.36)
    # B: (0.95, 0.05) 0.0475 + (0.58, 0.58) adds 0.58 x 0.53 = 0.3074 + (0.3, 0.9) adds 0.3 x 0.32 = 0.096.
    assert pair.b.hypervolume == pytest.approx(0.0475 + 0.3074 + 0.096)
    assert pair.a.on_joint_frontier == 3 and pair.b.on_joint_frontier == 2
    # Welfare sqrt(u*l): A 0, 0.2, 0.6, 0; B 0.218, 0.5, 0.58, 0.520: B wins rows 1, 2 and 4, loses row 3.
    welfare = pair.welfare
    assert (welfare.wins, welfare.ties, welfare.losses) == (3, 0, 1)


def test_coverage_grows_with_epsilon_and_is_one_at_one() -> None:
    a = _run([(1.0, 0.0), (0.2, 0.2), (0.6, 0.6), (0.0, 1.0)])
    b = _run([(0.95, 0.05), (0.5, 0.5), (0.58, 0.58), (0.3, 0.9)])
    assert compare(a, b, epsilon=0.39, resamples=0).overall.a.coverage == pytest.approx(0.75)
    assert compare(a, b, epsilon=0.4, resamples=0).overall.a.coverage == pytest.approx(1.0)
    assert compare(a, b, epsilon=1.0, resamples=0).overall.a.coverage == 1.0


def test_all_points_equal_do_not_divide_by_zero() -> None:
    a = _run([(0.3, 0.3)] * 3)
    pair = compare(a, a, resamples=10).overall
    assert (pair.range_u, pair.range_l) == (1.0, 1.0)
    assert pair.a.coverage == 1.0 and pair.a.regret == 0.0
    assert pair.a.hypervolume == 0.0  # no point is strictly above the reference (0.3, 0.3)
    assert (pair.welfare.wins, pair.welfare.ties, pair.welfare.losses) == (0, 3, 0)
    assert pair.welfare.difference.mean == 0.0


def test_a_joined_row_with_another_data_source_is_an_error_naming_both() -> None:
    a = [record("0", source="wildguard"), record("1", source="math-hard"), record("1", source="math-hard", epoch=1)]
    b = [record("0", source="wildguard"), record("1", source="ambig_qa"), record("1", source="math-hard", epoch=1)]
    with pytest.raises(ValueError, match=r"1 of 3 rows .*id '1' epoch 0: 'math-hard' in a, 'ambig_qa' in b"):
        compare(a, b, resamples=0)
    # The same rows on the same sources compare; a row only in one run is not a clash.
    assert compare(a, [*a[:1], record("9", source="medium")], resamples=0).joined == 1


def test_paired_welfare_takes_the_bootstrap_and_epoch_means() -> None:
    # Differences b - a: prompt p0 +0.2 (epoch 0) and 0.0 (epoch 1), prompt p1 +0.4 and +0.2.
    a = [record(p, epoch=e, u=0.2, l=0.2) for p in ("p0", "p1") for e in (0, 1)]
    b = [record("p0", epoch=0, u=0.4, l=0.4), record("p0", epoch=1, u=0.2, l=0.2),
         record("p1", epoch=0, u=0.6, l=0.6), record("p1", epoch=1, u=0.4, l=0.4)]
    result = compare(a, b, resamples=50, bootstrap="cluster")
    assert result.bootstrap == "cluster" and result.to_json()["bootstrap"] == "cluster"
    difference = result.overall.welfare.difference
    assert difference.mean == pytest.approx(0.2)
    # Epoch 0: (0.2 + 0.4) / 2 = 0.3; epoch 1: (0.0 + 0.2) / 2 = 0.1.
    assert difference.epoch_means == pytest.approx((0.3, 0.1))
    assert compare(a, b, resamples=0).bootstrap == "two-level"
