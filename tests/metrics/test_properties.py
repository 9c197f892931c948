"""Property tests of the Pareto views against brute-force definitions (SPEC §5)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.metrics import compare, frontier, hypervolume, research_hypervolume

from tests.metrics._records import record

# Coordinates on a coarse grid, so ties, duplicates and equal ranges occur often.
coordinate = st.integers(0, 20).map(lambda k: k / 20)
point = st.tuples(coordinate, coordinate)
points = st.lists(point, min_size=1, max_size=12)


def _run(pts: list[tuple[float, float]]) -> list:
    return [record(f"p{i}", u=u, l=l) for i, (u, l) in enumerate(pts)]


def _brute_frontier(pts: list[tuple[float, float]]) -> set[tuple[float, float]]:
    def dominated(p: tuple[float, float]) -> bool:
        return any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in pts)
    return {p for p in pts if not dominated(p)}


def _brute(a: list[tuple[float, float]], b: list[tuple[float, float]], eps: float) -> tuple[float, float]:
    both = a + b
    r_u = (max(p[0] for p in both) - min(p[0] for p in both)) or 1.0
    r_l = (max(p[1] for p in both) - min(p[1] for p in both)) or 1.0
    front = _brute_frontier(both)
    covered = sum(1 for p in a if any((f[0] - p[0]) / r_u <= eps and (f[1] - p[1]) / r_l <= eps for f in front))
    regret = sum(min(max(max(f[0] - p[0], 0) / r_u, max(f[1] - p[1], 0) / r_l) for f in front) for p in a)
    return covered / len(a), regret / len(a)


def _brute_hypervolume(pts: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area of the union of boxes [ref, p], by summing grid cells (coordinates are multiples of 1/20)."""
    cells = 0
    for i in range(20):
        for j in range(20):
            cu, cl = (i + 0.5) / 20, (j + 0.5) / 20
            if cu > ref[0] and cl > ref[1] and any(p[0] >= cu and p[1] >= cl for p in pts):
                cells += 1
    return cells / 400


@settings(max_examples=150, deadline=None)
@given(a=points, data=st.data(), eps=st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0]))
def test_coverage_and_regret_match_the_definition(a, data, eps) -> None:
    b = data.draw(st.lists(point, min_size=len(a), max_size=len(a)))
    pair = compare(_run(a), _run(b), epsilon=eps, resamples=0).overall
    assert 0.0 <= pair.a.coverage <= 1.0 and 0.0 <= pair.b.coverage <= 1.0
    assert 0.0 <= pair.a.regret <= 1.0 and 0.0 <= pair.b.regret <= 1.0
    coverage_a, regret_a = _brute(a, b, eps)
    coverage_b, regret_b = _brute(b, a, eps)
    assert abs(pair.a.coverage - coverage_a) < 1e-12 and abs(pair.a.regret - regret_a) < 1e-12
    assert abs(pair.b.coverage - coverage_b) < 1e-12 and abs(pair.b.regret - regret_b) < 1e-12
    assert set(pair.frontier) == _brute_frontier(a + b)
    if eps >= 1.0:
        assert pair.a.coverage == 1.0


@settings(max_examples=100, deadline=None)
@given(a=points)
def test_a_run_against_itself_is_symmetric_and_its_frontier_has_no_regret(a) -> None:
    pair = compare(_run(a), _run(a), resamples=0).overall
    assert pair.a == pair.b
    assert (pair.welfare.wins, pair.welfare.losses) == (0, 0)
    # Coverage 1 and regret 0 hold exactly when no point is dominated by another.
    front = _brute_frontier(a)
    if all(p in front for p in a):
        assert pair.a.coverage == 1.0 and pair.a.regret == 0.0
    else:
        assert pair.a.regret > 0.0


@settings(max_examples=100, deadline=None)
@given(a=st.lists(st.integers(0, 20), min_size=1, max_size=10, unique=True))
def test_mutually_non_dominated_points_against_themselves(a) -> None:
    us = sorted(k / 20 for k in a)
    pts = list(zip(us, reversed(us), strict=True))  # u up, l down: a staircase
    pair = compare(_run(pts), _run(pts), resamples=0).overall
    assert pair.a.coverage == 1.0 and pair.a.regret == 0.0


@settings(max_examples=150, deadline=None)
@given(pts=points, ref=point)
def test_hypervolume_matches_the_union_of_boxes(pts, ref) -> None:
    array = np.array(pts)
    true = hypervolume(array, ref)
    assert abs(true - _brute_hypervolume(pts, ref)) < 1e-9
    # The research formula keeps one box of the sweep, so it never exceeds the true area.
    assert research_hypervolume(array, ref) <= true + 1e-12


@settings(max_examples=150, deadline=None)
@given(pts=points, extra=point, lift=st.tuples(st.integers(1, 5), st.integers(1, 5)))
def test_hypervolume_is_monotone_under_a_dominating_point(pts, extra, lift) -> None:
    ref = (0.0, 0.0)
    array = np.array(pts)
    before = hypervolume(array, ref)
    # A point weakly dominating a point of the set never removes area...
    weak = np.maximum(array[len(array) // 2], extra)
    assert hypervolume(np.vstack([array, weak]), ref) >= before - 1e-12
    # ...and one strictly dominating a frontier point adds some.
    strict = frontier(array)[0] + np.array(lift) / 20
    assert hypervolume(np.vstack([array, strict]), ref) > before


@settings(max_examples=100, deadline=None)
@given(pts=points)
def test_frontier_is_the_set_of_non_dominated_points(pts) -> None:
    front = frontier(np.array(pts))
    assert {tuple(p) for p in front.tolist()} == _brute_frontier(pts)
    assert list(front[:, 0]) == sorted(front[:, 0], reverse=True)
