"""PayoffMatrix: validation that names the cell, round trips, and other strategy spaces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tests.game._game_strategies import matrices, spaces
from hypothesis import given
from hypothesis import strategies as st

from gtalign.game import DEFAULT_SPACE, Payoff, PayoffError, PayoffMatrix, StrategySpace

REFUSE_SPACE = StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE"))
THREE_TYPES = StrategySpace(question_types=("DQ", "VQ", "HQ"))


def _valid(space: StrategySpace = DEFAULT_SPACE) -> dict:
    return {k: {"LLM": float(i), "user": float(-i)} for i, k in enumerate(space.keys)}


def test_from_dict_reads_the_papers_shape(positive: PayoffMatrix) -> None:
    assert positive["DQ_AQ"] == Payoff(user=2.7, llm=2.5)
    assert positive["VQ", "CQ"] == Payoff(user=2.5, llm=2.0)
    assert positive.keys == ("DQ_DA", "DQ_CQ", "DQ_AQ", "VQ_DA", "VQ_CQ", "VQ_AQ")
    assert positive.row("VQ") == ("VQ_DA", "VQ_CQ", "VQ_AQ")
    assert positive.minimum() == 1.0


def test_from_arrays_takes_rows_as_question_types() -> None:
    m = PayoffMatrix.from_arrays(user=[[1, 2, 3], [4, 5, 6]], llm=[[6, 5, 4], [3, 2, 1]])
    assert m["DQ_AQ"] == Payoff(user=3.0, llm=4.0)
    assert m["VQ_DA"] == Payoff(user=4.0, llm=3.0)
    assert m.user_array() == [[1, 2, 3], [4, 5, 6]]
    assert m.llm_array() == [[6, 5, 4], [3, 2, 1]]


def test_numpy_inputs_become_plain_floats() -> None:
    m = PayoffMatrix.from_arrays(np.arange(6).reshape(2, 3), np.ones((2, 3), dtype=np.float32))
    assert all(type(c.user) is float and type(c.llm) is float for c in m.cells)
    assert m["VQ_AQ"] == Payoff(5.0, 1.0)


def test_direct_cells_are_validated_and_normalised() -> None:
    m = PayoffMatrix(tuple(Payoff(i, 1) for i in range(6)))
    assert all(type(c.user) is float for c in m.cells)
    assert m == PayoffMatrix.from_arrays([[0, 1, 2], [3, 4, 5]], [[1] * 3] * 2)
    with pytest.raises(PayoffError, match=r"VQ_CQ\.LLM must be finite") as err:
        PayoffMatrix(tuple(Payoff(0, math.nan if i == 4 else 0) for i in range(6)))
    assert err.value.key == "VQ_CQ"
    with pytest.raises(PayoffError, match="expected 6 cells"):
        PayoffMatrix((Payoff(0, 0),))
    with pytest.raises(PayoffError, match="cell DQ_CQ must be a Payoff"):
        PayoffMatrix((Payoff(0, 0), (0, 0), *[Payoff(0, 0)] * 4))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, False, "3", None, [1.0], {"x": 1}])
@pytest.mark.parametrize("side", ["user", "LLM"])
def test_bad_value_error_names_the_cell_and_side(bad: object, side: str) -> None:
    data = _valid()
    data["VQ_CQ"][side] = bad
    with pytest.raises(PayoffError, match=rf"VQ_CQ\.{side}") as err:
        PayoffMatrix.from_dict(data)
    assert err.value.key == "VQ_CQ"


@given(st.sampled_from(DEFAULT_SPACE.keys), st.sampled_from(["user", "LLM"]),
       st.sampled_from([math.nan, math.inf, -math.inf, True, False, "1.0", None]))
def test_bad_value_anywhere_names_that_cell(key: str, side: str, bad: object) -> None:
    data = _valid()
    data[key][side] = bad
    with pytest.raises(PayoffError) as err:
        PayoffMatrix.from_dict(data)
    assert err.value.key == key and f"{key}.{side}" in str(err.value)


@given(st.sampled_from(DEFAULT_SPACE.keys))
def test_missing_key_is_named(key: str) -> None:
    data = _valid()
    del data[key]
    with pytest.raises(PayoffError, match=rf"missing \['{key}'\]") as err:
        PayoffMatrix.from_dict(data)
    assert err.value.key == key


@given(st.sampled_from(["DQ_REFUSE", "XQ_DA", "dq_da", "DQDA", ""]))
def test_extra_key_is_named(extra: str) -> None:
    data = _valid()
    data[extra] = {"LLM": 1.0, "user": 1.0}
    with pytest.raises(PayoffError, match=r"unexpected") as err:
        PayoffMatrix.from_dict(data)
    assert err.value.key == extra and repr(extra) in str(err.value)


def test_missing_and_extra_are_both_reported() -> None:
    data = _valid()
    data["DQ_REFUSE"] = data.pop("DQ_CQ")
    with pytest.raises(PayoffError, match=r"missing \['DQ_CQ'\]; unexpected \['DQ_REFUSE'\]") as err:
        PayoffMatrix.from_dict(data)
    assert err.value.key == "DQ_CQ"


def test_non_string_key_is_reported() -> None:
    data: dict = _valid()
    data[1] = {"LLM": 1.0, "user": 1.0}
    with pytest.raises(PayoffError, match="unexpected"):
        PayoffMatrix.from_dict(data)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ({"LLM": 1.0}, "exactly the keys LLM and user"),
        ({"LLM": 1.0, "user": 1.0, "note": 0}, "exactly the keys LLM and user"),
        ({"llm": 1.0, "user": 1.0}, "exactly the keys LLM and user"),
        ([1.0, 2.0], "must be an object"),
        (3.0, "must be an object"),
    ],
)
def test_bad_cell_shape_is_named(cell: object, message: str) -> None:
    data = _valid()
    data["DQ_AQ"] = cell
    with pytest.raises(PayoffError, match=message) as err:
        PayoffMatrix.from_dict(data)
    assert err.value.key == "DQ_AQ" and "DQ_AQ" in str(err.value)


def test_payoff_must_be_an_object() -> None:
    with pytest.raises(PayoffError, match="must be an object, got list"):
        PayoffMatrix.from_dict([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user", "llm"),
    [([[1, 2, 3]], [[1, 2, 3], [1, 2, 3]]), ([[1, 2], [1, 2]], [[1, 2], [1, 2]]), (3, [[1, 2, 3], [1, 2, 3]])],
)
def test_from_arrays_checks_the_shape(user: object, llm: object) -> None:
    with pytest.raises(PayoffError, match=r"must be 2x3"):
        PayoffMatrix.from_arrays(user, llm)  # type: ignore[arg-type]


def test_from_arrays_names_the_bad_cell() -> None:
    with pytest.raises(PayoffError, match=r"VQ_DA\.LLM must be finite") as err:
        PayoffMatrix.from_arrays([[0] * 3] * 2, [[0, 0, 0], [math.inf, 0, 0]])
    assert err.value.key == "VQ_DA"


@given(matrices())
def test_dict_and_array_round_trips(m: PayoffMatrix) -> None:
    assert PayoffMatrix.from_dict(m.to_dict(), m.space) == m
    assert PayoffMatrix.from_dict(json.loads(json.dumps(m.to_dict())), m.space) == m
    assert PayoffMatrix.from_arrays(m.user_array(), m.llm_array(), m.space) == m
    assert hash(PayoffMatrix.from_dict(m.to_dict(), m.space)) == hash(m)
    assert list(m.to_dict()) == list(m.space.keys)


@given(matrices())
def test_repr_evaluates_back_to_the_matrix(m: PayoffMatrix) -> None:
    namespace = {"PayoffMatrix": PayoffMatrix, "StrategySpace": StrategySpace}
    assert eval(repr(m), namespace) == m  # noqa: S307 - our own repr


def test_table_is_a_grid_of_user_slash_llm(positive: PayoffMatrix) -> None:
    assert str(positive) == positive.table() == (
        "user / LLM  DA     CQ       AQ\n"
        "DQ          3 / 3  1.5 / 1  2.7 / 2.5\n"
        "VQ          1 / 1  2.5 / 2  2 / 2"
    )


def test_mapping_helpers(positive: PayoffMatrix) -> None:
    assert "DQ_DA" in positive and "DQ_REFUSE" not in positive and 3 not in positive
    assert list(positive) == list(positive.keys) and len(positive) == 6
    assert dict(positive.items())["VQ_AQ"] == Payoff(2.0, 2.0)
    changed = positive.replace({"VQ_AQ": Payoff(9, 9)})
    assert changed["VQ_AQ"] == Payoff(9.0, 9.0) and positive["VQ_AQ"] == Payoff(2.0, 2.0)
    with pytest.raises(PayoffError, match="unknown cell 'DQ_XX'") as err:
        positive["DQ_XX"]
    assert err.value.key == "DQ_XX"
    with pytest.raises(PayoffError, match="unknown question type 'XQ'"):
        positive.row("XQ")
    with pytest.raises(PayoffError, match="unknown action 'REFUSE'"):
        positive["DQ", "REFUSE"]


def test_a_refuse_action_is_just_another_column() -> None:
    data = _valid(REFUSE_SPACE)
    m = PayoffMatrix.from_dict(data, REFUSE_SPACE)
    assert len(m) == 8 and m.keys[3] == "DQ_REFUSE" and m["VQ_REFUSE"] == Payoff(-7.0, 7.0)
    assert m.row("DQ") == ("DQ_DA", "DQ_CQ", "DQ_AQ", "DQ_REFUSE")
    with pytest.raises(PayoffError, match=r"missing \['DQ_REFUSE', 'VQ_REFUSE'\]"):
        PayoffMatrix.from_dict(_valid(), REFUSE_SPACE)
    with pytest.raises(PayoffError, match=r"unexpected \['DQ_REFUSE', 'VQ_REFUSE'\]"):
        PayoffMatrix.from_dict(data)


def test_three_question_types() -> None:
    m = PayoffMatrix.from_arrays([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[0] * 3] * 3, THREE_TYPES)
    assert m["HQ_CQ"] == Payoff(8.0, 0.0) and THREE_TYPES.index("HQ_DA") == 6
    with pytest.raises(PayoffError, match="must be 3x3"):
        PayoffMatrix.from_arrays([[1, 2, 3]] * 2, [[0] * 3] * 2, THREE_TYPES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"actions": ()}, "at least one action"),
        ({"question_types": ()}, "at least one question type"),
        ({"actions": ("DA", "DA")}, "duplicate action"),
        ({"actions": ("DIRECT_ANSWER",)}, "without '_'"),
        ({"actions": ("",)}, "non-empty identifier"),
        ({"actions": ("a b",)}, "identifier"),
        ({"actions": (1,)}, "identifier"),
        ({"actions": "DA"}, "sequence of names"),
    ],
)
def test_strategy_space_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(PayoffError, match=message):
        StrategySpace(**kwargs)


def test_strategy_space_normalises_lists_and_splits_keys() -> None:
    space = StrategySpace(["A"], ["X", "Y"])  # type: ignore[arg-type]
    assert space == StrategySpace(("A",), ("X", "Y")) and hash(space) == hash(StrategySpace(("A",), ("X", "Y")))
    assert space.keys == ("A_X", "A_Y") and space.split("A_Y") == ("A", "Y") and space.index("A_Y") == 1
    for bad in ("A", "A_Z", "B_X", "A_X_Y"):
        with pytest.raises(PayoffError, match="unknown cell"):
            space.split(bad)


@given(spaces())
def test_space_index_matches_key_order(space: StrategySpace) -> None:
    assert [space.index(k) for k in space.keys] == list(range(len(space.keys)))
    assert all(space.key(*space.split(k)) == k for k in space.keys)
