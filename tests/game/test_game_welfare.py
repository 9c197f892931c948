"""Welfare rules: hand-computed values, origins of the products, validation, registry lookup."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtalign._registry import REGISTRY, RegistryError
from gtalign.game import (
    PayoffError,
    PayoffMatrix,
    WelfareRule,
    cobb_douglas,
    egalitarian,
    linear,
    nash,
    product,
    sum_rule,
    welfare_rule,
)

# Cells of the `signed` fixture, in order: DQ_DA DQ_CQ DQ_AQ VQ_DA VQ_CQ VQ_AQ
# user: 2 -1 3 -3 1 0      LLM: 4 3 1 -4 1 2


def test_sum(signed: PayoffMatrix) -> None:
    assert sum_rule().values(signed) == (6.0, 2.0, 4.0, -7.0, 2.0, 2.0)


def test_product_is_raw_so_two_costs_make_a_gain(signed: PayoffMatrix) -> None:
    assert product().values(signed) == (8.0, -3.0, 3.0, 12.0, 1.0, 0.0)


def test_cobb_douglas_shift_moves_the_minimum_to_zero(signed: PayoffMatrix) -> None:
    # minimum payoff is -4, so every payoff moves by +4
    expected = (math.sqrt(6 * 8), math.sqrt(3 * 7), math.sqrt(7 * 5), 0.0, 5.0, math.sqrt(4 * 6))
    assert cobb_douglas().values(signed) == pytest.approx(expected)


def test_cobb_douglas_clip_counts_costs_as_zero(signed: PayoffMatrix) -> None:
    expected = (math.sqrt(8), 0.0, math.sqrt(3), 0.0, 1.0, 0.0)
    assert cobb_douglas(origin="clip").values(signed) == pytest.approx(expected)


def test_weighted_cobb_douglas(signed: PayoffMatrix) -> None:
    values = cobb_douglas(weight=0.8).values(signed)
    assert values[0] == pytest.approx(6**0.8 * 8**0.2)
    assert values[2] == pytest.approx(7**0.8 * 5**0.2)
    assert values[2] > values[0]  # the user-heavy weight prefers DQ_AQ (user 3) to DQ_DA (user 2)


def test_cobb_douglas_at_the_weight_ends_is_one_party(signed: PayoffMatrix) -> None:
    assert cobb_douglas(weight=1.0).values(signed) == (6.0, 3.0, 7.0, 1.0, 5.0, 4.0)
    assert cobb_douglas(weight=0.0).values(signed) == (8.0, 7.0, 5.0, 0.0, 5.0, 6.0)


def test_positive_matrix_is_not_shifted(positive: PayoffMatrix) -> None:
    """On positive payoffs the paper's sqrt(U*L) is computed exactly as written."""
    assert cobb_douglas().values(positive) == tuple(math.sqrt(c.user * c.llm) for c in positive.cells)


def test_nash_gains_over_each_partys_worst(signed: PayoffMatrix) -> None:
    # disagreement point: user -3, LLM -4
    assert nash().values(signed) == (40.0, 14.0, 30.0, 0.0, 20.0, 18.0)


def test_egalitarian(signed: PayoffMatrix) -> None:
    assert egalitarian().values(signed) == (2.0, -1.0, 1.0, -4.0, 1.0, 0.0)


def test_linear(signed: PayoffMatrix) -> None:
    assert linear(0.9).values(signed) == pytest.approx((2.2, -0.6, 2.8, -3.1, 1.0, 0.2))
    assert linear().values(signed) == tuple(v / 2 for v in sum_rule().values(signed))


@given(st.floats(1e-4, 1.0), st.floats(1e-4, 1.0))
def test_value_is_the_papers_geometric_mean(u: float, l_: float) -> None:
    assert cobb_douglas().value(u, l_) == math.sqrt(u * l_)


def test_value_of_one_pair_counts_negatives_as_zero() -> None:
    assert cobb_douglas().value(-1.0, 4.0) == 0.0
    assert nash().value(-1.0, 4.0) == 0.0 and nash().value(2.0, 4.0) == 8.0
    assert product().value(-2.0, -3.0) == 6.0
    assert sum_rule().value(-2.0, -3.0) == -5.0


def test_undefined_welfare_names_the_cell() -> None:
    m = PayoffMatrix.from_arrays([[0, 0, 0], [0, 1e308, 0]], [[0, 0, 0], [0, -1e308, 0]])
    with pytest.raises(PayoffError, match="VQ_CQ is undefined") as err:
        cobb_douglas().values(m)
    assert err.value.key == "VQ_CQ"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "max"}, "unknown welfare kind 'max'"),
        ({"kind": "linear", "weight": 1.5}, r"in \[0, 1\]"),
        ({"kind": "linear", "weight": math.nan}, r"in \[0, 1\]"),
        ({"kind": "linear", "weight": "0.3"}, r"in \[0, 1\]"),
        ({"kind": "linear", "weight": True}, r"in \[0, 1\]"),
        ({"kind": "sum", "weight": 0.3}, "takes no weight"),
        ({"kind": "nash", "origin": "shift"}, "origin applies to cobb_douglas only"),
        ({"kind": "product", "origin": "clip"}, "origin applies to cobb_douglas only"),
        ({"kind": "cobb_douglas", "origin": "raw"}, "the rule 'product'"),
    ],
)
def test_rule_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(PayoffError, match=message):
        WelfareRule(**kwargs)


def test_defaults_and_names() -> None:
    assert WelfareRule("cobb_douglas") == cobb_douglas() and cobb_douglas().origin == "shift"
    assert sum_rule().origin is None and product().name == "product"
    assert cobb_douglas(0.3, "clip").name == "cobb_douglas(weight=0.3, origin=clip)"
    assert linear(0.25).name == "linear(weight=0.25)"
    assert WelfareRule("sum", name="utilitarian") == sum_rule()  # the label is not part of the rule


def test_every_registered_name_builds_a_rule(signed: PayoffMatrix) -> None:
    names = REGISTRY.names("welfare")
    assert {"sum", "product", "cobb_douglas", "nash", "egalitarian", "linear"} <= set(names)
    for name in names:
        rule = welfare_rule(name)
        assert isinstance(rule, WelfareRule) and len(rule.values(signed)) == 6
    assert welfare_rule("utilitarian") == sum_rule()


def test_lookup_passes_parameters_through() -> None:
    assert welfare_rule("cobb_douglas", weight=0.7, origin="clip") == cobb_douglas(0.7, "clip")
    assert welfare_rule("linear", weight=0.2) == linear(0.2)
    with pytest.raises(PayoffError, match=r"'sum' does not accept \['weight'\]"):
        welfare_rule("sum", weight=0.2)
    rule = nash()
    assert welfare_rule(rule) is rule
    with pytest.raises(PayoffError, match="ready WelfareRule"):
        welfare_rule(rule, weight=0.2)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(RegistryError, match="unknown welfare 'geometric'; valid: .*cobb_douglas.*sum"):
        welfare_rule("geometric")


def test_dotted_path_and_user_registration() -> None:
    assert welfare_rule("gtalign.game._welfare:egalitarian") == egalitarian()
    REGISTRY.register("welfare", "user_heavy", lambda: linear(0.9))
    try:
        assert welfare_rule("user_heavy") == linear(0.9)
    finally:
        REGISTRY.unregister("welfare", "user_heavy")
    REGISTRY.register("welfare", "not_a_rule", lambda: 42)
    try:
        with pytest.raises(PayoffError, match="gave a int, not a WelfareRule"):
            welfare_rule("not_a_rule")
    finally:
        REGISTRY.unregister("welfare", "not_a_rule")


def test_imports_stay_lazy() -> None:
    """The registry must not import the game (no cycle), and the game must not need nashpy."""
    code = (
        "import sys, gtalign._registry\n"
        "assert 'gtalign.game' not in sys.modules\n"
        "import gtalign.game\n"
        "assert 'nashpy' not in sys.modules and 'numpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
