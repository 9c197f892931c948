"""The structural parser: every problem code with its position, hostile input, and round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtalign.game import DEFAULT_SPACE, PayoffMatrix, StrategySpace
from gtalign.protocol import BLOCK_NAMES, ParsedAnswer, parse_answer, render_answer
from gtalign.protocol._parser import MAX_CHOICE_TOKENS, MAX_JSON_DEPTH, MAX_PROBLEMS_PER_CODE

MATRIX = PayoffMatrix.from_dict(
    {
        "DQ_AQ": {"LLM": 2.2, "user": 1.9},
        "DQ_CQ": {"LLM": 3.1, "user": 3.5},
        "DQ_DA": {"LLM": 4.2, "user": 4.3},
        "VQ_AQ": {"LLM": 2.0, "user": 2.1},
        "VQ_CQ": {"LLM": 1.3, "user": 1.2},
        "VQ_DA": {"LLM": 2.0, "user": 1.8},
    }
)
PAYOFF = json.dumps(MATRIX.to_dict())
THINKING = "The question is clear, so it is DQ. A direct answer saves the user time."
ANALYZE = "Frontier: DQ_DA. It has the largest sum. Chosen key: DQ_DA."
RESPONSE = "Paris is the capital of France."


def answer(
    thinking: str = THINKING, payoff: str = PAYOFF, analyze: str = ANALYZE, response: str = RESPONSE
) -> str:
    return (
        f"<thinking>{thinking}</thinking>\n<payoff>{payoff}</payoff>\n"
        f"<analyze>{analyze}</analyze>\n<response>{response}</response>"
    )


def codes(parsed: ParsedAnswer) -> list[str]:
    return [p.code for p in parsed.problems]


def only(parsed: ParsedAnswer, code: str):
    found = [p for p in parsed.problems if p.code == code]
    assert len(found) == 1, parsed.problems
    return found[0]


def with_cell(cell: str, value: str) -> str:
    """The reference payoff JSON with one cell's text replaced."""
    data = {k: json.dumps(v) for k, v in MATRIX.to_dict().items()}
    data[cell] = value
    return "{" + ", ".join(f'"{k}": {v}' for k, v in data.items()) + "}"


# --- a good answer ------------------------------------------------------------------------------


def test_valid_answer_parses_cleanly() -> None:
    text = answer()
    parsed = parse_answer(text)
    assert parsed.ok and parsed.well_formed
    assert parsed.problems == ()
    assert parsed.thinking == THINKING and parsed.analyze == ANALYZE and parsed.response == RESPONSE
    assert parsed.payoff == MATRIX
    assert parsed.chosen_key == "DQ_DA" and parsed.question_type == "DQ" and parsed.action == "DA"
    for name in BLOCK_NAMES:
        block = parsed.blocks[name]
        assert text[block.start:].startswith(f"<{name}>")
        assert text[:block.end].endswith(f"</{name}>")


def test_contents_are_stripped_and_whitespace_between_blocks_is_fine() -> None:
    text = "\n  " + answer(thinking="\n  padded  \n").replace("\n<payoff>", "\n\n\t<payoff>") + "\n\n"
    parsed = parse_answer(text)
    assert parsed.ok, parsed.problems
    assert parsed.thinking == "padded"


def test_non_string_input_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expects str"):
        parse_answer(b"<thinking>")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_answer(None)  # type: ignore[arg-type]


# --- structural problems, each with its position ------------------------------------------------


def test_missing_block_points_after_the_previous_block() -> None:
    text = answer().replace(f"<analyze>{ANALYZE}</analyze>", "")
    parsed = parse_answer(text)
    problem = only(parsed, "missing_block")
    assert problem.block == "analyze"
    assert problem.position == parsed.blocks["payoff"].end
    assert parsed.chosen_key is None and "no_chosen_key" not in codes(parsed)


def test_empty_text_misses_all_four_blocks() -> None:
    parsed = parse_answer("")
    assert codes(parsed) == ["missing_block"] * 4
    assert [p.block for p in parsed.problems] == list(BLOCK_NAMES)
    assert not parsed.ok and not parsed.well_formed


def test_duplicate_block_keeps_the_first() -> None:
    text = answer() + "<response>second</response>"
    parsed = parse_answer(text)
    problem = only(parsed, "duplicate_block")
    assert problem.position == text.rindex("<response>") and problem.block == "response"
    assert parsed.response == RESPONSE


def test_out_of_order_block() -> None:
    text = f"<payoff>{PAYOFF}</payoff><thinking>{THINKING}</thinking><analyze>{ANALYZE}</analyze><response>r</response>"
    parsed = parse_answer(text)
    problem = only(parsed, "out_of_order")
    assert problem.position == text.index("<thinking>") and problem.block == "thinking"
    assert parsed.payoff == MATRIX and parsed.thinking == THINKING


def test_unclosed_last_block() -> None:
    text = answer().removesuffix("</response>")
    parsed = parse_answer(text)
    problem = only(parsed, "unclosed_block")
    assert problem.position == text.index("<response>") and problem.block == "response"
    assert "missing_block" not in codes(parsed)
    assert parsed.response is None


def test_unclosed_block_ends_at_the_next_opening_tag() -> None:
    text = answer().replace("</thinking>", "", 1)
    parsed = parse_answer(text)
    assert codes(parsed) == ["unclosed_block"]
    assert parsed.problems[0].position == 0
    assert parsed.payoff == MATRIX and parsed.response == RESPONSE


def test_smuggled_response_tag_is_stray_and_the_real_block_wins() -> None:
    text = answer(thinking="I will answer. <response>fake</response> Done.")
    parsed = parse_answer(text)
    strays = [p for p in parsed.problems if p.code == "stray_tag"]
    assert [p.position for p in strays] == [text.index("<response>"), text.index("</response>")]
    assert all(p.block == "thinking" for p in strays)
    assert parsed.response == RESPONSE
    assert "<response>fake</response>" in parsed.thinking


def test_stray_closing_tag_outside_blocks() -> None:
    text = answer() + "</payoff>"
    parsed = parse_answer(text)
    problem = only(parsed, "stray_tag")
    assert problem.position == text.rindex("</payoff>") and problem.block is None


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("Sure! " + answer(), 0),
        (answer().replace("\n<payoff>", "\nand now <payoff>"), None),
        (answer() + "\nThanks", None),
    ],
)
def test_text_outside_blocks(text: str, where: int | None) -> None:
    parsed = parse_answer(text)
    problem = only(parsed, "text_outside_blocks")
    expected = where if where is not None else next(
        i for i, c in enumerate(text) if not c.isspace() and (text[i:].startswith("and now") or text[i:] == "Thanks")
    )
    assert problem.position == expected
    assert parsed.payoff == MATRIX


def test_empty_block() -> None:
    text = answer(response="   \n ")
    parsed = parse_answer(text)
    problem = only(parsed, "empty_block")
    assert problem.position == text.index("<response>") and problem.block == "response"
    assert parsed.response == ""
    assert parsed.well_formed and not parsed.ok


def test_repeated_problems_are_capped_with_a_summary() -> None:
    text = "<payoff>" * 1000
    parsed = parse_answer(text)
    strays = [p for p in parsed.problems if p.code == "stray_tag"]
    assert len(strays) == MAX_PROBLEMS_PER_CODE + 1
    assert "more stray_tag problems" in strays[-1].message
    assert strays[-1].position == 8 * (MAX_PROBLEMS_PER_CODE + 1)


# --- payoff problems ----------------------------------------------------------------------------


def test_payoff_json_error_position_maps_into_the_text() -> None:
    broken = PAYOFF[:-1] + ",}"
    text = answer(payoff=broken)
    parsed = parse_answer(text)
    problem = only(parsed, "payoff_json")
    assert text[problem.position] == "}" and text[problem.position - 1] == ","
    assert parsed.payoff is None


def test_payoff_position_skips_leading_whitespace_in_the_block() -> None:
    text = answer(payoff="\n   {'DQ_DA': 1}")
    problem = only(parse_answer(text), "payoff_json")
    assert text[problem.position:].startswith("'DQ_DA'")


@pytest.mark.parametrize(
    "payoff",
    [
        PAYOFF.replace('"', "'"),
        "```json\n" + PAYOFF + "\n```",
        PAYOFF + " // done",
        "[" + PAYOFF + "]",
        "6",
    ],
)
def test_payoff_must_be_one_strict_json_object(payoff: str) -> None:
    parsed = parse_answer(answer(payoff=payoff))
    assert codes(parsed) == ["payoff_json"]
    assert parsed.payoff is None


@pytest.mark.timeout(60)  # a hang guard: a recursive parse of these would not come back
def test_payoff_nested_ten_thousand_deep_is_refused() -> None:
    for deep in ("[" * 10_000 + "]" * 10_000, '{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 10_000):
        text = answer(payoff=deep)
        parsed = parse_answer(text)
        problem = only(parsed, "payoff_too_deep")
        assert problem.position == text.index("<payoff>") + len("<payoff>")


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    payoff = with_cell("DQ_DA", '{"LLM": 1.0, "user": 2.0, "note": "' + "[" * (MAX_JSON_DEPTH * 3) + '"}')
    parsed = parse_answer(answer(payoff=payoff))
    assert "payoff_too_deep" not in codes(parsed)
    assert only(parsed, "payoff_keys").key == "DQ_DA.note"


def test_missing_and_extra_keys_are_named() -> None:
    data = MATRIX.to_dict()
    del data["VQ_CQ"]
    data["VQ_XX"] = {"LLM": 1.0, "user": 1.0}
    text = answer(payoff=json.dumps(data))
    parsed = parse_answer(text)
    problems = {p.key: p for p in parsed.problems if p.code == "payoff_keys"}
    assert set(problems) == {"VQ_CQ", "VQ_XX"}
    assert text[problems["VQ_XX"].position:].startswith('"VQ_XX"')
    assert problems["VQ_CQ"].position == text.index("<payoff>") + len("<payoff>")
    assert "missing" in problems["VQ_CQ"].message and "unexpected" in problems["VQ_XX"].message
    assert parsed.payoff is None


def test_an_object_with_absurdly_many_keys_gets_one_problem() -> None:
    payoff = "{" + ", ".join(f'"k{i}": 1' for i in range(100)) + "}"
    parsed = parse_answer(answer(payoff=payoff))
    assert codes(parsed) == ["payoff_keys"] and "has 100 keys" in parsed.problems[0].message
    cell = with_cell("DQ_DA", "{" + ", ".join(f'"s{i}": 1' for i in range(20)) + "}")
    problem = only(parse_answer(answer(payoff=cell)), "payoff_keys")
    assert problem.key == "DQ_DA" and "DQ_DA has 20 keys" in problem.message


def test_duplicate_key_is_a_problem() -> None:
    payoff = PAYOFF[:-1] + ', "DQ_DA": {"LLM": 0.0, "user": 0.0}}'
    text = answer(payoff=payoff)
    problem = only(parse_answer(text), "payoff_keys")
    assert problem.key == "DQ_DA" and "duplicate" in problem.message
    assert problem.position == text.rindex('"DQ_DA"')


def test_bad_sub_keys_are_named_with_a_hint() -> None:
    text = answer(payoff=with_cell("DQ_CQ", '{"llm": 1.0, "user": 2.0}'))
    parsed = parse_answer(text)
    problems = {p.key: p for p in parsed.problems if p.code == "payoff_keys"}
    assert set(problems) == {"DQ_CQ.llm", "DQ_CQ.LLM"}
    assert "did you mean 'LLM'" in problems["DQ_CQ.llm"].message
    assert text[problems["DQ_CQ.llm"].position:].startswith('"llm"')
    assert text[problems["DQ_CQ.LLM"].position:].startswith('"DQ_CQ"')


def test_duplicate_sub_key_is_a_problem() -> None:
    text = answer(payoff=with_cell("VQ_DA", '{"LLM": 1.0, "user": 2.0, "user": 3.0}'))
    problem = only(parse_answer(text), "payoff_keys")
    assert problem.key == "VQ_DA.user" and "duplicate" in problem.message


@pytest.mark.parametrize(
    ("value", "code", "what"),
    [
        ('"4.2"', "payoff_value", "a string"),
        ("true", "payoff_value", "a boolean"),
        ("null", "payoff_value", "null"),
        ("[4.2]", "payoff_value", "an array"),
        ("NaN", "payoff_not_finite", "NaN"),
        ("-Infinity", "payoff_not_finite", "-Infinity"),
        ("1e999", "payoff_not_finite", "too large"),
        ("1" * 400, "payoff_not_finite", "too large"),
    ],
)
def test_bad_values_name_the_cell(value: str, code: str, what: str) -> None:
    text = answer(payoff=with_cell("DQ_AQ", '{"LLM": 1.0, "user": ' + value + "}"))
    parsed = parse_answer(text)
    problem = only(parsed, code)
    assert problem.key == "DQ_AQ.user" and what in problem.message
    assert text[problem.position:].startswith('"user"')
    assert text.rfind('"DQ_AQ"', 0, problem.position) >= 0
    assert parsed.payoff is None


def test_cell_that_is_not_an_object() -> None:
    text = answer(payoff=with_cell("VQ_AQ", "3.5"))
    problem = only(parse_answer(text), "payoff_value")
    assert problem.key == "VQ_AQ" and text[problem.position:].startswith('"VQ_AQ"')


def test_integers_are_accepted_as_numbers() -> None:
    parsed = parse_answer(answer(payoff=with_cell("DQ_DA", '{"LLM": 4, "user": -2}')))
    assert parsed.ok, parsed.problems
    assert parsed.payoff is not None and parsed.payoff["DQ_DA"].user == -2.0


def test_empty_payoff_is_only_an_empty_block() -> None:
    assert codes(parse_answer(answer(payoff=" "))) == ["empty_block"]


# --- the chosen key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("analyze", "chosen"),
    [
        ("Frontier: DQ_DA, VQ_AQ. Chosen key: DQ_DA.", "DQ_DA"),
        ("I pick DQ_DA over VQ_DA because the sum is larger.", "DQ_DA"),
        ("Among DQ_AQ and DQ_CQ the welfare favours the second. DQ_CQ is chosen.", "DQ_CQ"),
        ("DQ_AQ → (2.2, 1.9), DQ_DA → (4.2, 4.3). The best total is 8.5 → DQ_DA", "DQ_DA"),
        ("We would not choose VQ_CQ; we go with DQ_AQ.", "DQ_AQ"),
        ("The frontier is DQ_DA and VQ_AQ.\nDQ_DA has the highest welfare", "DQ_DA"),
        ("Recommend: VQ_AQ. Final answer: VQ_AQ.", "VQ_AQ"),
        ("Selecting by sum gives DQ_CQ", "DQ_CQ"),
        ("We don't pick VQ_CQ here! The answer is to select DQ_DA", "DQ_DA"),
        ("DQ_DA is not the final choice. VQ_DA is never chosen. VQ_AQ is chosen.", "VQ_AQ"),
    ],
)
def test_chosen_key_heuristic(analyze: str, chosen: str) -> None:
    parsed = parse_answer(answer(analyze=analyze))
    assert parsed.chosen_key == chosen, parsed.problems
    assert parsed.ok


def test_two_different_choices_are_ambiguous() -> None:
    analyze = "I choose DQ_DA. On reflection the final recommendation is VQ_AQ."
    text = answer(analyze=analyze)
    parsed = parse_answer(text)
    problem = only(parsed, "ambiguous_chosen_key")
    assert parsed.chosen_key is None
    assert problem.position == text.index("VQ_AQ", text.index("<analyze>"))
    assert "DQ_DA" in problem.message and "VQ_AQ" in problem.message


def test_too_long_to_tell_with_several_keys_is_ambiguous() -> None:
    analyze = "DQ_DA. " * (MAX_CHOICE_TOKENS + 1) + "VQ_AQ"
    text = answer(analyze=analyze)
    problem = only(parse_answer(text), "ambiguous_chosen_key")
    assert problem.position == text.index("<analyze>") and "more than" in problem.message


def test_a_single_distinct_key_is_chosen_whatever_the_cues() -> None:
    assert parse_answer(answer(analyze="I would not choose VQ_AQ.")).chosen_key == "VQ_AQ"


def test_no_key_named() -> None:
    text = answer(analyze="The direct answer (DA) is best; it is on the frontier. dq_da wins.")
    parsed = parse_answer(text)
    problem = only(parsed, "no_chosen_key")
    assert problem.position == text.index("<analyze>") and parsed.chosen_key is None


def test_other_strategy_spaces() -> None:
    space = StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE"))
    matrix = PayoffMatrix.from_arrays([[1.0, 2.0, 3.0, -1.0], [0.5, 1.5, 2.5, -2.0]], [[3.0, 1.0, 2.0, 0.0]] * 2, space)
    text = render_answer("A harmful request; refusing is safest.", matrix, "Chosen key: DQ_REFUSE.", "I can't help with that.")
    parsed = parse_answer(text, space)
    assert parsed.ok, parsed.problems
    assert parsed.payoff == matrix and parsed.chosen_key == "DQ_REFUSE"
    default = parse_answer(text)
    assert {p.key for p in default.problems if p.code == "payoff_keys"} == {"DQ_REFUSE", "VQ_REFUSE"}


# --- hostile input -------------------------------------------------------------------------------

FIVE_MB = 5_000_000


@pytest.mark.parametrize(
    "text",
    [
        "a" * FIVE_MB,
        "<payoff>" * 100_000,
        "</payoff>" * 100_000,
        "<thinking>" + "</thinking>" * 100_000,
        answer(response="word " * (FIVE_MB // 5)),
        answer(payoff="[]" * (FIVE_MB // 2)),
        answer(payoff='"' + '\\"' * (FIVE_MB // 2)),
        answer(payoff='{"a": 1, ' * (FIVE_MB // 9) + "}"),
        answer(payoff="{" + ", ".join(f'"k{i}": 1' for i in range(FIVE_MB // 12)) + "}"),
        answer(payoff='{"' + "k" * FIVE_MB + '": 1}'),
        answer(payoff="[" * FIVE_MB),
        answer(analyze="pick DQ_DA " * (FIVE_MB // 11)),
        answer(analyze="pick DQ_DA. " * (FIVE_MB // 24) + "pick VQ_AQ. " * (FIVE_MB // 24)),
        answer(analyze="DQ_DA\n. not choose → " * (FIVE_MB // 22) + "VQ_AQ"),
        "<thinking" * (FIVE_MB // 9),
        "\x00\ud800<response>\udfff" * 100_000,
    ],
    ids=[
        "5MB-letters", "100k-payoff-openers", "100k-closers", "100k-thinking-closers", "5MB-response",
        "5MB-shallow-brackets", "5MB-escaped-quotes", "5MB-duplicate-keys", "5MB-many-keys", "5MB-key",
        "5MB-deep", "5MB-cues", "5MB-two-keys", "5MB-stops-and-arrows", "5MB-broken-tags", "surrogates-and-nuls",
    ],
)
@pytest.mark.timeout(60)  # a hang guard, not a timing assertion: a quadratic scan of 5 MB takes hours
def test_hostile_input_is_answered_in_bounded_time(text: str) -> None:
    parsed = parse_answer(text)
    assert all(p.position is None or 0 <= p.position <= len(text) for p in parsed.problems)


# --- properties ----------------------------------------------------------------------------------

FRAGMENTS = [
    "<thinking>", "</thinking>", "<payoff>", "</payoff>", "<analyze>", "</analyze>", "<response>",
    "</response>", "<", ">", "/", "thinking", "payoff", " ", "\n", "x", "{", "}", "[", "]", '"', ":",
    ",", "1.5", "NaN", "DQ_DA", "VQ_AQ", "choose", "→", ".", PAYOFF, "\x00", "\\",
]


def check_invariants(text: str, parsed: ParsedAnswer) -> None:
    positions = [len(text) + 1 if p.position is None else p.position for p in parsed.problems]
    assert positions == sorted(positions)
    assert all(0 <= p <= len(text) + 1 for p in positions)
    assert parsed.ok == (not parsed.problems)
    for name, block in parsed.blocks.items():
        assert text[block.start:block.end].startswith(f"<{name}>")
        assert text[block.start:block.end].endswith(f"</{name}>")
        assert block.content == block.content.strip()
    if parsed.payoff is not None:
        assert "payoff" in parsed.blocks
    if parsed.chosen_key is not None:
        assert parsed.chosen_key in DEFAULT_SPACE.keys


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    check_invariants(text, parse_answer(text))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_never_raises_on_tag_soup(text: str) -> None:
    check_invariants(text, parse_answer(text))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(["\ud800", "\x00"])))
def test_never_raises_with_surrogates_and_nuls(text: str) -> None:
    whole = "<thinking>" + text + "</thinking><payoff>" + text + "</payoff>"
    check_invariants(whole, parse_answer(whole))


def _no_tags(text: str) -> bool:
    return bool(text.strip()) and not any(f"<{n}>" in text or f"</{n}>" in text for n in BLOCK_NAMES)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
free_text = st.text(min_size=1).filter(_no_tags)
plain_text = st.text(alphabet="abcdefghij klmnop,;:!?.\n", max_size=80)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(
    thinking=free_text,
    response=free_text,
    before=plain_text,
    after=plain_text,
    key=st.sampled_from(DEFAULT_SPACE.keys),
    values=st.lists(st.tuples(finite, finite), min_size=6, max_size=6),
)
def test_render_then_parse_round_trips(thinking, response, before, after, key, values) -> None:
    matrix = PayoffMatrix.from_arrays(
        [[u for u, _ in values[:3]], [u for u, _ in values[3:]]],
        [[m for _, m in values[:3]], [m for _, m in values[3:]]],
    )
    analyze = f"{before} Chosen key: {key}. {after}"
    parsed = parse_answer(render_answer(thinking, matrix, analyze, response))
    assert parsed.ok, parsed.problems
    assert parsed.thinking == thinking.strip()
    assert parsed.response == response.strip()
    assert parsed.analyze == analyze.strip()
    assert parsed.payoff == matrix
    assert parsed.chosen_key == key
