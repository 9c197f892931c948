"""Pareto dominance and frontiers: hand cases and properties."""

from __future__ import annotations

import pytest
from tests.game._game_strategies import grid_matrices, matrices
from hypothesis import given
from hypothesis import strategies as st

from gtalign.game import Payoff, PayoffMatrix, dominates, pareto_frontier


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (Payoff(2, 1), Payoff(1, 1), True),
        (Payoff(2, 2), Payoff(1, 1), True),
        (Payoff(1, 1), Payoff(1, 1), False),
        (Payoff(2, 0), Payoff(1, 1), False),
        (Payoff(1, 1), Payoff(2, 1), False),
        (Payoff(-1, -1), Payoff(-1, -2), True),
    ],
)
def test_dominates(a: Payoff, b: Payoff, expected: bool) -> None:
    assert dominates(a, b) is expected


def test_dominates_with_tolerance() -> None:
    assert not dominates(Payoff(1.05, 1), Payoff(1, 1), eps=0.1)  # not better by more than eps
    assert dominates(Payoff(1.5, 0.95), Payoff(1, 1), eps=0.1)  # slightly worse within eps, clearly better
    assert not dominates(Payoff(1.5, 0.8), Payoff(1, 1), eps=0.1)


def test_frontier_by_hand(signed: PayoffMatrix) -> None:
    # DQ_DA (2, 4) dominates every cell but DQ_AQ (3, 1), which has the best user payoff
    assert pareto_frontier(signed) == ("DQ_DA", "DQ_AQ")
    assert pareto_frontier(signed, signed.row("VQ")) == ("VQ_CQ", "VQ_AQ")


def test_equal_cells_are_both_on_the_frontier() -> None:
    m = PayoffMatrix.from_arrays([[1, 1, 0], [0, 0, 0]], [[1, 1, 0], [0, 0, 0]])
    assert pareto_frontier(m) == ("DQ_DA", "DQ_CQ")


@given(matrices())
def test_frontier_is_non_empty_and_covers_every_dominated_cell(m: PayoffMatrix) -> None:
    frontier = pareto_frontier(m)
    assert frontier
    for key in m.keys:
        if key not in frontier:
            assert any(dominates(m[f], m[key]) for f in frontier), key
    assert not any(dominates(m[a], m[b]) for a in frontier for b in frontier)
    assert list(frontier) == [k for k in m.keys if k in frontier]  # cell order


@given(grid_matrices(), st.sampled_from([0.05, 0.25, 0.55, 1.05]))
def test_frontier_with_tolerance_is_non_empty(m: PayoffMatrix, eps: float) -> None:
    """A tolerance ignores small advantages both ways, so it can grow or shrink the frontier, never empty it."""
    assert pareto_frontier(m, eps=eps)


@given(matrices(), st.data())
def test_frontier_of_a_subset_is_computed_among_the_subset(m: PayoffMatrix, data: st.DataObject) -> None:
    subset = tuple(data.draw(st.lists(st.sampled_from(m.keys), min_size=1, unique=True)))
    frontier = pareto_frontier(m, subset)
    assert frontier and set(frontier) <= set(subset)
    assert set(pareto_frontier(m)) & set(subset) <= set(frontier)
