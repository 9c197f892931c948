"""Decisions: hand-computed choices per rule, the tie-break chain, row restriction, and properties."""

from __future__ import annotations

import random

import pytest
from tests.game._game_strategies import grid_matrices, matrices, spaces
from hypothesis import given
from hypothesis import strategies as st

from gtalign.game import (
    Decision,
    PayoffError,
    PayoffMatrix,
    StrategySpace,
    cobb_douglas,
    decide,
    egalitarian,
    linear,
    nash,
    pareto_frontier,
    sum_rule,
    welfare_rule,
)


def test_sum_and_product_by_hand(positive: PayoffMatrix) -> None:
    by_sum = decide(positive)
    assert (by_sum.key, by_sum.question_type, by_sum.action, by_sum.welfare, by_sum.rule) == (
        "DQ_DA", "DQ", "DA", 6.0, "sum")
    assert decide(positive, "product").key == "DQ_DA" and decide(positive, "product").welfare == 9.0


def test_row_restriction(positive: PayoffMatrix) -> None:
    d = decide(positive, "sum", question_type="VQ")
    assert d.key == "VQ_CQ" and d.welfare == 4.5
    assert d.candidates == ("VQ_DA", "VQ_CQ", "VQ_AQ")
    assert d.welfare_by_key == (("VQ_DA", 2.0), ("VQ_CQ", 4.5), ("VQ_AQ", 4.0))
    assert d.frontier == ("VQ_CQ",)
    with pytest.raises(PayoffError, match="unknown question type 'XQ'"):
        decide(positive, question_type="XQ")


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("sum", "DQ_DA"),  # 6
        ("product", "VQ_DA"),  # (-3) * (-4) = 12: the research code's quirk
        ("cobb_douglas", "DQ_DA"),  # sqrt(48)
        (cobb_douglas(origin="clip"), "DQ_DA"),  # sqrt(8)
        (cobb_douglas(weight=0.8), "DQ_AQ"),  # 7**.8 * 5**.2 > 6**.8 * 8**.2
        ("nash", "DQ_DA"),  # 40
        ("egalitarian", "DQ_DA"),  # 2
        (linear(0.9), "DQ_AQ"),  # 2.8
        (linear(0.1), "DQ_DA"),  # 3.8
    ],
)
def test_each_rule_on_a_signed_matrix(signed: PayoffMatrix, rule: object, expected: str) -> None:
    assert decide(signed, rule).key == expected  # type: ignore[arg-type]


def test_ties_go_to_the_user_then_the_llm_then_cell_order() -> None:
    # sum 6 for DQ_DA (3, 3) and DQ_AQ (3.5, 2.5): the larger user payoff wins
    m = PayoffMatrix.from_arrays([[3, 0, 3.5], [0, 0, 0]], [[3, 0, 2.5], [0, 0, 0]])
    d = decide(m, "sum")
    assert d.key == "DQ_AQ" and d.tied == ("DQ_DA", "DQ_AQ")
    # egalitarian 1 for (1, 5) and (1, 3): same user payoff, the larger LLM payoff wins
    m = PayoffMatrix.from_arrays([[1, 1, 0], [0, 0, 0]], [[3, 5, 0], [0, 0, 0]])
    assert decide(m, "egalitarian").key == "DQ_CQ"
    # identical cells: the earlier one in the space's order (DQ before VQ, DA before CQ before AQ)
    m = PayoffMatrix.from_arrays([[0, 2, 2], [2, 0, 0]], [[0, 2, 2], [2, 0, 0]])
    d = decide(m, "sum")
    assert d.key == "DQ_CQ" and d.tied == ("DQ_CQ", "DQ_AQ", "VQ_DA")


def test_explain_lists_candidates_and_the_tie_break() -> None:
    m = PayoffMatrix.from_arrays([[3, 0, 3.5], [3, 0, 0]], [[3, 0, 2.5], [3, 0, 0]])
    text = decide(m, "sum").explain()
    lines = text.splitlines()
    assert lines[0] == "sum over DQ_DA, DQ_CQ, DQ_AQ, VQ_DA, VQ_CQ, VQ_AQ -> DQ_AQ (welfare 6)"
    assert lines[3] == "* DQ_AQ  user 3.5  LLM 2.5  welfare 6  frontier"
    assert lines[-1] == "tied on welfare with DQ_DA (lower user payoff), VQ_DA (lower user payoff)"
    m = PayoffMatrix.from_arrays([[1, 1, 1], [0, 0, 0]], [[1, 1, 1], [0, 0, 0]])
    assert decide(m, "sum", "DQ").explain().endswith(
        "tied on welfare with DQ_CQ (same payoffs, later cell), DQ_AQ (same payoffs, later cell)")


def test_custom_space_with_refuse() -> None:
    space = StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE"))
    m = PayoffMatrix.from_arrays([[-2, 0, 0.5, 1], [0, 1, 1, 0.5]], [[3, 0, 1, 1], [0, 1, 1, 0.5]], space)
    d = decide(m, "cobb_douglas", question_type="DQ")
    assert (d.key, d.action) == ("DQ_REFUSE", "REFUSE")


# A rule is monotone when a Pareto improvement never lowers welfare; with the user-then-LLM
# tie-break the choice is then never dominated. The raw product is not monotone on costs.
MONOTONE = [sum_rule(), cobb_douglas(), cobb_douglas(origin="clip"), nash(), egalitarian(), linear(0.3),
            linear(0.9)]


@given(matrices(), st.sampled_from(MONOTONE))
def test_monotone_rules_choose_on_the_frontier(m: PayoffMatrix, rule: object) -> None:
    d = decide(m, rule)  # type: ignore[arg-type]
    assert d.on_frontier and d.key in pareto_frontier(m)


@given(grid_matrices(), st.floats(0.01, 0.99), st.sampled_from(["shift", "clip"]))
def test_weighted_cobb_douglas_chooses_on_the_frontier(m: PayoffMatrix, weight: float, origin: str) -> None:
    assert decide(m, cobb_douglas(weight, origin)).on_frontier  # type: ignore[arg-type]


@given(matrices(), st.sampled_from(MONOTONE), st.data())
def test_row_choice_is_on_the_rows_frontier(m: PayoffMatrix, rule: object, data: st.DataObject) -> None:
    question_type = data.draw(st.sampled_from(m.space.question_types))
    d = decide(m, rule, question_type)  # type: ignore[arg-type]
    assert d.question_type == question_type and d.key in pareto_frontier(m, m.row(question_type))


@given(matrices(st.just(StrategySpace())), st.randoms(use_true_random=False),
       st.sampled_from(["sum", "product", "cobb_douglas", "nash", "egalitarian", "linear"]))
def test_dict_key_order_does_not_matter(m: PayoffMatrix, rng: random.Random, rule: str) -> None:
    items = list(m.to_dict().items())
    rng.shuffle(items)
    shuffled = {k: dict(rng.sample(list(v.items()), 2)) for k, v in items}
    assert decide(PayoffMatrix.from_dict(shuffled), rule) == decide(m, rule)


@given(grid_matrices(spaces()), st.sampled_from(["sum", "product", "cobb_douglas", "nash", "egalitarian", "linear"]))
def test_tie_break_is_the_documented_lexicographic_order(m: PayoffMatrix, name: str) -> None:
    """Checked against a sort, not a max, on one-decimal payoffs where ties are common."""
    rule = welfare_rule(name)
    welfare = dict(zip(m.keys, rule.values(m)))
    ranked = sorted(m.keys, key=lambda k: (-welfare[k], -m[k].user, -m[k].llm, m.keys.index(k)))
    d = decide(m, rule)
    assert d.key == ranked[0] and d == decide(m, rule)
    assert d.tied == tuple(k for k in m.keys if welfare[k] == welfare[ranked[0]])
    assert d.welfare == max(welfare.values())


def test_decision_is_a_frozen_value(positive: PayoffMatrix) -> None:
    d = decide(positive)
    assert isinstance(d, Decision) and hash(d) == hash(decide(positive))
    with pytest.raises(AttributeError):
        d.key = "VQ_DA"  # type: ignore[misc]
