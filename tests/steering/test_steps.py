"""The pure steps: question type off <thinking>, cutting at closing tags, salvage, payoff reading."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtalign.steering._steps import close_at, read_payoff, read_question_type, salvage
from tests.steering._fixtures import LLM_SHIFT_FLIPS, first_stage


@pytest.mark.parametrize(
    "thinking, expected, evidence",
    [
        ("The question is definite (DQ): one fact is asked.", "DQ", "The question is definite (DQ): one fact is asked."),
        ("This is a VQ because the year is missing.", "VQ", "This is a VQ because the year is missing."),
        # The evidence is the sentence of the code that decided, not the first sentence.
        ("It is not a VQ; the user says exactly what they want. DA fits a DQ.", "DQ", "DA fits a DQ."),
        ("DA suits a DQ, but a CQ helps a VQ. Here the question is a VQ.", "VQ", "Here the question is a VQ."),
        ("Type: DQ. Asking back would cost a DQ user time, unlike a VQ one.", "DQ", "Type: DQ."),
        ("A DQ gets a direct answer and a VQ gets a question.", None,
         "<thinking> names DQ, VQ without saying which one the question is"),
        ("The question is clear and definite.", None, "<thinking> names no question type (DQ, VQ)"),
        ("It isn't really DQ and not VQ either.", None, "<thinking> only names question types it rules out"),
        ("", None, "no <thinking> block"),
        (None, None, "no <thinking> block"),
    ],
)
def test_question_type_heuristic(thinking, expected, evidence):
    assert read_question_type(thinking) == (expected, evidence)


def test_question_type_codes_are_case_sensitive_whole_words():
    assert read_question_type("dq questions and DQS are not codes")[0] is None


@given(st.text(max_size=300))
def test_question_type_never_raises(text):
    found, _ = read_question_type(text)
    assert found in (None, "DQ", "VQ")


def test_close_at_puts_the_stop_string_back():
    assert close_at("<payoff>{}", "</payoff>", "<payoff>", "</payoff>", "stop").text == "<payoff>{}</payoff>"
    unreported = close_at("<payoff>{}", "</payoff>", "<payoff>", None, "stop")
    assert unreported.closed and unreported.text.endswith("</payoff>")
    cut = close_at("<payoff>{}</payoff><analyze>x", "</payoff>", "<payoff>", None, "stop")
    assert cut.text == "<payoff>{}</payoff>" and cut.overshoot == len("<analyze>x")
    assert not close_at("<payoff>{", "</payoff>", "<payoff>", None, "length").closed
    assert not close_at("plain answer", "</payoff>", "<payoff>", None, "stop").closed


def test_close_at_looks_into_the_prefill_for_the_open_block():
    assert close_at("Paris.", "</response>", "<response>", None, "stop", prefill="<response>\n").closed
    assert not close_at("Paris.", "</response>", "<response>", None, "stop", prefill="<analyze>").closed


def test_salvage_keeps_a_stopped_stage_and_a_leading_thinking_block():
    assert salvage("<thinking>t</thinking><payoff>{bad}</payoff>", True) == ("<thinking>t</thinking><payoff>{bad}</payoff>", 0)
    kept, dropped = salvage("  <thinking>t</thinking> The answer is: 4", False)
    assert kept == "<thinking>t</thinking>" and dropped == len("  <thinking>t</thinking> The answer is: 4") - len(kept)
    assert salvage("The answer is: 4", False) == ("", len("The answer is: 4"))
    assert salvage("The answer is: 4</payoff>", True) == ("", len("The answer is: 4</payoff>"))


def test_read_payoff_strict_then_lenient():
    strict = read_payoff(first_stage(LLM_SHIFT_FLIPS) + "</payoff>")
    assert strict.matrix == LLM_SHIFT_FLIPS and strict.how == "strict" and strict.why == ""
    assert strict.thinking == first_stage(LLM_SHIFT_FLIPS).split("<thinking>")[1].split("</thinking>")[0].strip()
    single_quotes = first_stage(LLM_SHIFT_FLIPS).replace('"', "'") + "</payoff>"
    lenient = read_payoff(single_quotes)
    assert lenient.matrix == LLM_SHIFT_FLIPS and lenient.how == "lenient" and "payoff" in lenient.why
    assert read_payoff(single_quotes, lenient=False).matrix is None
    missing = read_payoff("<thinking>t</thinking>")
    assert missing.matrix is None and "payoff" in missing.why
