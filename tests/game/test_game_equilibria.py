"""Equilibria: nashpy's support enumeration against a brute-force mutual-best-response check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from tests.game._game_strategies import grid_matrices, matrices, spaces
from hypothesis import given, settings

from gtalign.game import Equilibrium, PayoffMatrix, StrategySpace, best_responses, equilibria, pure_equilibria

TWO_BY_TWO = StrategySpace(question_types=("A", "B"), actions=("X", "Y"))


def _brute_force_pure(m: PayoffMatrix) -> set[str]:
    user, llm = np.array(m.user_array()), np.array(m.llm_array())
    return {
        m.space.key(t, a)
        for i, t in enumerate(m.space.question_types)
        for j, a in enumerate(m.space.actions)
        if user[i, j] == user[:, j].max() and llm[i, j] == llm[i, :].max()
    }


def _is_mutual_best_response(m: PayoffMatrix, eq: Equilibrium, tol: float = 1e-7) -> bool:
    user, llm = np.array(m.user_array()), np.array(m.llm_array())
    x, y = np.array(eq.user_strategy), np.array(eq.llm_strategy)
    scale = 1.0 + max(np.abs(user).max(), np.abs(llm).max())
    return bool(x @ user @ y >= (user @ y).max() - tol * scale and x @ llm @ y >= (x @ llm).max() - tol * scale)


def test_matching_pennies_has_one_mixed_equilibrium() -> None:
    m = PayoffMatrix.from_arrays([[1, -1], [-1, 1]], [[-1, 1], [1, -1]], TWO_BY_TWO)
    (eq,) = equilibria(m)
    assert eq.pure_key is None
    assert eq.user_strategy == pytest.approx((0.5, 0.5)) and eq.llm_strategy == pytest.approx((0.5, 0.5))
    assert pure_equilibria(m) == ()


def test_coordination_game_by_hand() -> None:
    # two pure equilibria and one mixed: the user plays A with 2/3 (LLM indifferent: p*1 = (1-p)*2)
    m = PayoffMatrix.from_arrays([[2, 0], [0, 1]], [[1, 0], [0, 2]], TWO_BY_TWO)
    found = equilibria(m)
    assert [e.pure_key for e in found if e.pure_key] == ["A_X", "B_Y"] and len(found) == 3
    (mixed,) = [e for e in found if e.pure_key is None]
    assert mixed.user_strategy == pytest.approx((2 / 3, 1 / 3))
    assert mixed.llm_strategy == pytest.approx((1 / 3, 2 / 3))
    assert pure_equilibria(m) == ("A_X", "B_Y")


def test_default_space_by_hand(positive: PayoffMatrix) -> None:
    # user best per column: DA -> DQ (3), CQ -> VQ (2.5), AQ -> DQ (2.7)
    # LLM best per row: DQ -> DA (3), VQ -> CQ and AQ (2)
    assert pure_equilibria(positive) == ("DQ_DA", "VQ_CQ")
    assert {e.pure_key for e in equilibria(positive)} >= {"DQ_DA", "VQ_CQ"}


def test_best_responses_break_ties_by_earlier_action(positive: PayoffMatrix) -> None:
    assert best_responses(positive) == {"DQ": "DA", "VQ": "CQ"}


def test_degenerate_game_raises_no_warning_and_has_an_even_count() -> None:
    m = PayoffMatrix.from_arrays([[1, 1, 1], [1, 1, 1]], [[1, 1, 1], [1, 1, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = equilibria(m)
    assert len(found) % 2 == 0
    assert {e.pure_key for e in found if e.pure_key} == set(m.keys)


# nashpy (and numpy under it) warn with RuntimeWarning. Not every warning: a socket another test left
# to the garbage collector would then fail whichever of these tests the collection happens in.
_NO_NASHPY_WARNING = pytest.mark.filterwarnings("error::RuntimeWarning")


@settings(max_examples=60, deadline=None)
@given(grid_matrices(spaces()))
@_NO_NASHPY_WARNING
def test_nashpy_pure_equilibria_match_brute_force_on_tied_payoffs(m: PayoffMatrix) -> None:
    found = equilibria(m)
    pure = [e.pure_key for e in found if e.pure_key is not None]
    assert len(pure) == len(set(pure))
    assert set(pure) == _brute_force_pure(m) == set(pure_equilibria(m))
    assert all(_is_mutual_best_response(m, e) for e in found)


@settings(max_examples=60, deadline=None)
@given(matrices(spaces()))
@_NO_NASHPY_WARNING
def test_nashpy_equilibria_are_mutual_best_responses(m: PayoffMatrix) -> None:
    found = equilibria(m)
    assert {e.pure_key for e in found if e.pure_key is not None} == _brute_force_pure(m)
    for eq in found:
        assert len(eq.user_strategy) == len(m.space.question_types) and len(eq.llm_strategy) == len(m.space.actions)
        assert sum(eq.user_strategy) == pytest.approx(1.0) and sum(eq.llm_strategy) == pytest.approx(1.0)
        assert _is_mutual_best_response(m, eq)


@given(matrices(spaces()))
def test_best_responses_are_row_maxima_of_the_llm(m: PayoffMatrix) -> None:
    responses = best_responses(m)
    assert set(responses) == set(m.space.question_types)
    for question_type, action in responses.items():
        row = [m[question_type, a].llm for a in m.space.actions]
        assert m[question_type, action].llm == max(row)
        assert m.space.actions.index(action) == row.index(max(row))
