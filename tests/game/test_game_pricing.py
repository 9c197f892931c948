"""Pricing transforms: the research code's two shifts by hand, the general affine map, and properties."""

from __future__ import annotations

import math

import pytest
from tests.game._game_strategies import grid_matrices, matrices
from hypothesis import given
from hypothesis import strategies as st

from gtalign._registry import REGISTRY
from gtalign.game import (
    AffineTransform,
    Payoff,
    PayoffError,
    PayoffMatrix,
    StrategySpace,
    decide,
    llm_price_shift,
    user_price_shift,
)

_USER_BONUS = {"DA": 0.0, "CQ": 0.5, "AQ": 1.0}  # llm_price_shift
_LLM_BONUS = {"DA": 1.0, "CQ": 0.0, "AQ": 0.5}  # user_price_shift


def test_llm_price_shift_by_hand(positive: PayoffMatrix) -> None:
    shifted = llm_price_shift(1).apply(positive)
    assert shifted.to_dict() == {
        "DQ_DA": {"LLM": 4.0, "user": 3.0},
        "DQ_CQ": {"LLM": 2.0, "user": 2.0},
        "DQ_AQ": {"LLM": 3.5, "user": 3.7},
        "VQ_DA": {"LLM": 2.0, "user": 1.0},
        "VQ_CQ": {"LLM": 3.0, "user": 3.0},
        "VQ_AQ": {"LLM": 3.0, "user": 3.0},
    }


def test_llm_price_shift_flips_da_to_aq_under_sum_and_product(positive: PayoffMatrix) -> None:
    # before: sum DQ_DA 6 > DQ_AQ 5.2; product 9 > 6.75
    assert decide(positive, "sum").action == decide(positive, "product").action == "DA"
    shifted = llm_price_shift(1).apply(positive)
    # after: sum DQ_AQ 7.2 > DQ_DA 7; product 3.7 * 3.5 = 12.95 > 4 * 3 = 12
    by_sum, by_product = decide(shifted, "sum"), decide(shifted, "product")
    assert (by_sum.key, by_sum.welfare) == ("DQ_AQ", pytest.approx(7.2))
    assert (by_product.key, by_product.welfare) == ("DQ_AQ", pytest.approx(12.95))


def test_the_product_depends_on_s_where_the_sum_does_not(positive: PayoffMatrix) -> None:
    # s = -2: LLM DQ_DA 1, DQ_AQ 0.5; product 3 > 3.7 * 0.5 = 1.85, sum 4 < 4.2
    shifted = llm_price_shift(-2).apply(positive)
    assert decide(shifted, "product").key == "DQ_DA"
    assert decide(shifted, "sum").key == "DQ_AQ"


def test_user_price_shift_by_hand(positive: PayoffMatrix) -> None:
    shifted = user_price_shift(-1).apply(positive)
    assert shifted.to_dict() == {
        "DQ_DA": {"LLM": 4.0, "user": 2.0},
        "DQ_CQ": {"LLM": 1.0, "user": 0.5},
        "DQ_AQ": {"LLM": 3.0, "user": 1.7},
        "VQ_DA": {"LLM": 2.0, "user": 0.0},
        "VQ_CQ": {"LLM": 2.0, "user": 1.5},
        "VQ_AQ": {"LLM": 2.5, "user": 1.0},
    }
    assert decide(shifted, "product").key == "DQ_DA"  # 2 * 4 = 8 beats 1.7 * 3 = 5.1


def test_user_price_shift_flips_aq_to_da() -> None:
    m = PayoffMatrix.from_arrays([[2, 0, 2.5], [0, 0, 0]], [[2.2, 0, 2], [0, 0, 0]])
    assert decide(m, "sum").key == "DQ_AQ"  # 4.5 > 4.2
    assert decide(user_price_shift(0).apply(m), "sum").key == "DQ_DA"  # 2 + 3.2 = 5.2 > 2.5 + 2.5 = 5


def test_rounding_is_to_one_decimal_without_negative_zero() -> None:
    m = PayoffMatrix.from_arrays([[0.04, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0]])
    out = user_price_shift(-0.08).apply(m)
    assert out["DQ_DA"].user == 0.0 and math.copysign(1.0, out["DQ_DA"].user) == 1.0
    assert out["DQ_CQ"].user == -0.1 and out["DQ_AQ"].llm == 0.5


def test_every_llm_payoff_moves_also_for_unnamed_actions() -> None:
    space = StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE"))
    m = PayoffMatrix.from_arrays([[0] * 4] * 2, [[0] * 4] * 2, space)
    shifted = llm_price_shift(2).apply(m)
    assert shifted["VQ_REFUSE"] == Payoff(user=0.0, llm=2.0)
    assert shifted["VQ_AQ"] == Payoff(user=1.0, llm=2.0)
    assert user_price_shift(2).apply(m)["DQ_REFUSE"] == Payoff(user=2.0, llm=0.0)


def test_a_preset_needs_the_actions_it_names() -> None:
    space = StrategySpace(actions=("DA", "REFUSE"))
    m = PayoffMatrix.from_arrays([[0, 0]] * 2, [[0, 0]] * 2, space)
    with pytest.raises(PayoffError, match=r"user_offset names unknown actions \['AQ', 'CQ'\]"):
        llm_price_shift(1).apply(m)


def test_general_affine_transform_by_hand(positive: PayoffMatrix) -> None:
    """A per-token price of 0.5 per 100 tokens paid by the user, expected lengths DA 300, CQ 50, AQ 150;
    and an assistant that values direct answers twice as much."""
    charge = AffineTransform(
        user_offset={"DA": -1.5, "CQ": -0.25, "AQ": -0.75}, llm_scale={"DA": 2.0}, name="per_token"
    )
    out = charge.apply(positive)
    assert out["DQ_DA"] == Payoff(user=1.5, llm=6.0)
    assert out["DQ_CQ"] == Payoff(user=1.25, llm=1.0)
    assert out["VQ_AQ"] == Payoff(user=1.25, llm=2.0)
    assert decide(out, "sum").key == "DQ_DA"  # 7.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"user_offset": {"DA": math.nan}}, r"user_offset\['DA'\] must be a finite number"),
        ({"llm_scale": {"AQ": "2"}}, r"llm_scale\['AQ'\] must be a finite number"),
        ({"user_shift": math.inf}, "user_shift must be a finite number"),
        ({"llm_offset": [("DA", 1.0)]}, "llm_offset must map actions to numbers"),
        ({"decimals": -1}, "decimals must be None or an integer >= 0"),
        ({"decimals": 1.0}, "decimals must be None or an integer >= 0"),
    ],
)
def test_transform_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(PayoffError, match=message):
        AffineTransform(**kwargs)


def test_preset_validation_and_typos(positive: PayoffMatrix) -> None:
    with pytest.raises(PayoffError, match="llm_price_shift: s must be a finite number"):
        llm_price_shift(math.nan)
    with pytest.raises(PayoffError, match=r"llm_offset names unknown actions \['Da'\]; valid: \['DA', 'CQ', 'AQ'\]"):
        AffineTransform(llm_offset={"Da": 1.0}).apply(positive)


def test_transforms_are_frozen_hashable_values() -> None:
    t = llm_price_shift(1.5)
    assert t == llm_price_shift(1.5) and hash(t) == hash(llm_price_shift(1.5)) and t != llm_price_shift(1)
    assert t.name == "llm_price_shift(1.5)" and t.llm_shift == 1.5
    with pytest.raises(TypeError):
        t.user_offset["DA"] = 3.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        t.decimals = 2  # type: ignore[misc]


def test_presets_are_in_the_registry() -> None:
    assert REGISTRY.create("pricing", "llm_price_shift", s=1.0) == llm_price_shift(1.0)
    assert REGISTRY.create("pricing", "user_price_shift", s=-0.5) == user_price_shift(-0.5)


@given(matrices())
def test_unit_transform_is_the_identity(m: PayoffMatrix) -> None:
    assert AffineTransform().apply(m) == m
    unit = AffineTransform(user_scale={a: 1.0 for a in m.space.actions}, llm_offset={a: 0.0 for a in m.space.actions})
    assert unit.apply(m) == m


@given(grid_matrices(st.just(StrategySpace())))
def test_rounding_identity_and_zero_shifts_on_one_decimal_payoffs(m: PayoffMatrix) -> None:
    assert AffineTransform(decimals=1).apply(m) == m
    assert llm_price_shift(0).apply(m).llm_array() == m.llm_array()
    assert user_price_shift(0).apply(m).user_array() == m.user_array()


@given(matrices(st.just(StrategySpace())), st.floats(-10, 10))
def test_presets_follow_the_research_formulas(m: PayoffMatrix, s: float) -> None:
    by_llm, by_user = llm_price_shift(s).apply(m), user_price_shift(s).apply(m)
    for key, cell in m.items():
        action = key.split("_")[1]
        assert by_llm[key] == Payoff(round(cell.user + _USER_BONUS[action], 1), round(cell.llm + s, 1))
        assert by_user[key] == Payoff(round(cell.user + s, 1), round(cell.llm + _LLM_BONUS[action], 1))


@given(matrices(st.just(StrategySpace()), st.integers(-5, 5).map(float)), st.integers(-5, 5), st.integers(-5, 5))
def test_under_the_sum_only_the_bonuses_matter(m: PayoffMatrix, s: int, t: int) -> None:
    """Every LLM payoff moves by the same s, so the sum's choice cannot depend on s (exact on integers)."""
    assert decide(llm_price_shift(s).apply(m), "sum").key == decide(llm_price_shift(t).apply(m), "sum").key
    assert decide(user_price_shift(s).apply(m), "sum").key == decide(user_price_shift(t).apply(m), "sum").key
