"""Prompt building: the instruction, chat messages, paper rows, and rendered answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gtalign._registry import REGISTRY
from gtalign.game import DEFAULT_SPACE, PayoffMatrix, StrategySpace, cobb_douglas, decide, linear
from gtalign.protocol import (
    DEFAULT_SYSTEM,
    build_instruction,
    build_messages,
    describe_rule,
    messages_from_row,
    parse_answer,
    render_answer,
)

AMBIG_QA = "train_test/ambig_qa/test.parquet"
REFUSE_SPACE = StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE"))


def test_instruction_covers_the_four_blocks_and_the_space() -> None:
    text = build_instruction()
    first = text.split("\n")[0]
    positions = [first.index(f"<{name}></{name}>") for name in ("thinking", "payoff", "analyze", "response")]
    assert positions == sorted(positions)
    assert ", ".join(DEFAULT_SPACE.keys) in text
    for word in ("2 to 5 sentences", "no numbers", "strict JSON", '"LLM"', '"user"', "one digit", "-5.0 and 5.0",
                 "Pareto frontier", "Chosen key: DQ_DA", "no markdown", "nothing before, between or after"):
        assert word in text, word
    for name in ("DQ", "VQ", "DA", "CQ", "AQ"):
        assert f"- {name} = " in text


def test_instruction_follows_other_spaces() -> None:
    text = build_instruction(REFUSE_SPACE)
    assert "exactly these 8 keys" in text and "DQ_REFUSE" in text and "VQ_REFUSE" in text
    assert "- REFUSE = decline the request" in text


def test_unknown_names_need_descriptions() -> None:
    space = StrategySpace(actions=("DA", "JOKE"))
    with pytest.raises(ValueError, match="no description for action 'JOKE'"):
        build_instruction(space)
    text = build_instruction(space, descriptions={"JOKE": "reply with a joke"})
    assert "- JOKE = reply with a joke" in text and "DQ_JOKE" in text


def test_default_rule_states_the_user_then_llm_tie_breaks() -> None:
    text = describe_rule("sum")
    assert "largest total LLM + user" in text
    assert text.index("larger user payoff") < text.index("larger LLM payoff") < text.index("listed first")
    assert describe_rule() in build_instruction()


@pytest.mark.parametrize("name", REGISTRY.names("welfare"))
def test_every_named_rule_can_be_described(name: str) -> None:
    text = describe_rule(name)
    assert "larger user payoff" in text
    assert describe_rule(name) in build_instruction(rule=name)


def test_rule_descriptions_differ_and_show_weights() -> None:
    assert "0.3 × user + 0.7 × LLM" in describe_rule(linear(0.3))
    assert "user^0.5 × LLM^0.5" in describe_rule("cobb_douglas")
    assert "counting negative payoffs as 0" in describe_rule(cobb_douglas(0.7, origin="clip"))
    assert len({describe_rule(n) for n in ("sum", "product", "cobb_douglas", "nash", "egalitarian", "linear")}) == 6


def test_unknown_rule_lists_the_valid_ones() -> None:
    with pytest.raises(LookupError, match="cobb_douglas"):
        build_instruction(rule="median")


def test_wording_is_not_copied_from_the_data(paper_table: Callable[..., Any]) -> None:
    prompt = paper_table(AMBIG_QA).prompt.iloc[0]
    for ours, theirs in ((build_instruction(), prompt[1]["content"]), (DEFAULT_SYSTEM, prompt[0]["content"])):
        shared = [ours[i:i + 40] for i in range(len(ours) - 40) if ours[i:i + 40] in theirs]
        assert not shared, shared[:3]


# --- messages -----------------------------------------------------------------------------------


def test_question_string_becomes_system_plus_user() -> None:
    messages = build_messages("What is the capital of France?")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == DEFAULT_SYSTEM
    content = messages[1]["content"]
    assert content.startswith(build_instruction())
    assert content.endswith("\n\nQuestion: What is the capital of France?")


def test_no_system_message_and_custom_space() -> None:
    messages = build_messages("Hi", system=None, space=REFUSE_SPACE, rule="cobb_douglas")
    assert [m["role"] for m in messages] == ["user"]
    assert "DQ_REFUSE" in messages[0]["content"] and describe_rule("cobb_douglas") in messages[0]["content"]


def test_conversation_keeps_earlier_turns_and_instructs_the_last() -> None:
    conversation = [
        {"role": "user", "content": "Help me with a geometry problem."},
        {"role": "assistant", "content": "Sure, what is the exact question?"},
        {"role": "user", "content": "Find the circumradius of a unit equilateral triangle."},
    ]
    original = [dict(m) for m in conversation]
    messages = build_messages(conversation)
    assert conversation == original
    assert messages[1:3] == conversation[:2]
    assert messages[3]["content"].endswith("Question: Find the circumradius of a unit equilateral triangle.")
    assert build_instruction() not in messages[1]["content"]


def test_conversation_with_its_own_system_message() -> None:
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    with pytest.raises(ValueError, match="message 0: .*system=None"):
        build_messages(conversation)
    messages = build_messages(conversation, system=None)
    assert messages[0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize(
    ("conversation", "error"),
    [
        ([], "empty"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "message 1: .*end with a user"),
        ([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}], "message 1: role must be one of"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": 3}], "message 1: content must be a string"),
        ([{"role": "user"}], "message 0: missing 'content'"),
        (["hello"], "message 0: expected a mapping"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}],
         "message 1: a system message may only come first"),
        ([{"role": "user", "content": "  "}], "message 0: the user's question is empty"),
    ],
)
def test_conversation_errors_name_the_message(conversation: list, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        build_messages(conversation, system=None)


def test_wrong_input_type() -> None:
    with pytest.raises(TypeError, match="question string or a list"):
        build_messages(42)  # type: ignore[arg-type]


# --- paper rows ----------------------------------------------------------------------------------


def test_messages_from_row_accepts_numpy_arrays() -> None:
    np = pytest.importorskip("numpy")
    prompt = np.array([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], dtype=object)
    messages = messages_from_row({"prompt": prompt, "data_source": "x"})
    assert messages == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert type(messages) is list and all(type(m) is dict for m in messages)


def test_messages_from_row_errors() -> None:
    with pytest.raises(ValueError, match="no 'prompt' column; it has \\['question'\\]"):
        messages_from_row({"question": "x"})
    with pytest.raises(ValueError, match="must be a list of messages"):
        messages_from_row({"prompt": "just text"})
    with pytest.raises(ValueError, match="message 1: role must be one of"):
        messages_from_row({"prompt": [{"role": "system", "content": "s"}, {"role": "bot", "content": "u"}]})


def test_messages_from_a_real_paper_row(paper_table: Callable[..., Any]) -> None:
    row = paper_table(AMBIG_QA).iloc[0]
    messages = messages_from_row(row)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"] == row["prompt"][1]["content"]
    assert "Question:" in messages[1]["content"]


# --- rendered answers ----------------------------------------------------------------------------

MATRIX = PayoffMatrix.from_arrays([[4.3, 3.5, 1.9], [1.8, 1.2, 2.1]], [[4.2, 3.1, 2.2], [2.0, 1.3, 2.0]])


def test_render_answer_parses_back_and_agrees_with_decide() -> None:
    decision = decide(MATRIX, "sum")
    text = render_answer("Clear question, so DQ.", MATRIX, f"Chosen key: {decision.key}.", "Paris.")
    parsed = parse_answer(text)
    assert parsed.ok, parsed.problems
    assert parsed.payoff == MATRIX and parsed.chosen_key == decision.key == "DQ_DA"


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        (("", "Chosen key: DQ_DA", "r"), "thinking is empty"),
        (("t", "Chosen key: DQ_DA", "a <response>b"), "response contains the tag <response>"),
        (("t", "see </payoff>", "r"), "analyze contains the tag <payoff>"),
    ],
)
def test_render_answer_refuses_parts_that_would_not_round_trip(parts: tuple[str, str, str], error: str) -> None:
    thinking, analyze, response = parts
    with pytest.raises(ValueError, match=error):
        render_answer(thinking, MATRIX, analyze, response)


def test_render_answer_needs_a_matrix() -> None:
    with pytest.raises(TypeError, match="PayoffMatrix"):
        render_answer("t", MATRIX.to_dict(), "a", "r")  # type: ignore[arg-type]
