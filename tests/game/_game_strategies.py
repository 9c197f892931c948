"""Hypothesis strategies for the game tests: strategy spaces, payoff values and matrices."""

from __future__ import annotations

from hypothesis import strategies as st

from gtalign.game import DEFAULT_SPACE, Payoff, PayoffMatrix, StrategySpace

__all__ = ["grid_matrices", "grid_values", "matrices", "spaces", "values"]

#: One-decimal payoffs in [-5, 5], as the prompt asks for: ties are frequent, which is the point.
grid_values = st.integers(-50, 50).map(lambda i: i / 10)
#: Any finite payoff a parser might accept, bounded so products and shifts stay finite.
values = st.one_of(grid_values, st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))

_TYPES = ("DQ", "VQ", "MQ")
_ACTIONS = ("DA", "CQ", "AQ", "REFUSE")


@st.composite
def spaces(draw: st.DrawFn) -> StrategySpace:
    """The default space half the time, otherwise 1-3 question types by 1-4 actions in any order."""
    if draw(st.booleans()):
        return DEFAULT_SPACE
    types = draw(st.lists(st.sampled_from(_TYPES), min_size=1, max_size=3, unique=True))
    actions = draw(st.lists(st.sampled_from(_ACTIONS), min_size=1, max_size=4, unique=True))
    return StrategySpace(tuple(types), tuple(actions))


@st.composite
def matrices(draw: st.DrawFn, space: st.SearchStrategy[StrategySpace] | None = None,
             value: st.SearchStrategy[float] = values) -> PayoffMatrix:
    chosen = draw(space if space is not None else spaces())
    cells = draw(st.lists(st.builds(Payoff, value, value), min_size=len(chosen.keys), max_size=len(chosen.keys)))
    return PayoffMatrix(tuple(cells), chosen)


def grid_matrices(space: st.SearchStrategy[StrategySpace] | None = None) -> st.SearchStrategy[PayoffMatrix]:
    return matrices(space, grid_values)
