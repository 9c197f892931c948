"""Reward building blocks: exact word counts, stable windows, the paper's asymmetry credit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.reward._components import (
    batch_word_counts,
    len_window,
    payoff_asymmetry_reward,
    reason_decay,
    sigmoid,
    window,
    word_count,
    word_counts,
)

SPACES = list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000")
mixed = st.text(alphabet=st.sampled_from(SPACES + list("ab\u00e9\u4e2d\ud800")), max_size=40)


@settings(max_examples=800)
@given(st.one_of(st.text(), mixed))
def test_word_count_equals_str_split(text):
    assert word_count(text) == len(text.split())


@settings(max_examples=500)
@given(mixed, st.integers(0, 40), st.integers(0, 40))
def test_word_counts_of_a_span(text, a, b):
    start, end = min(a, b), max(a, b)
    assert word_counts(text, start, end) == (len(text.split()), len(text[start:end].split()))


@settings(max_examples=300)
@given(st.integers(-10**7, 10**7))
def test_window_matches_the_research_expression_and_never_overflows(n):
    value = window(n, 20, 500)
    assert 0.0 <= value <= 1.0
    try:
        reference = 1 / (1 + math.exp(0.005 * (20 - n))) * (1 / (1 + math.exp(0.005 * (n - 500))))
    except OverflowError:
        reference = 0.0
    assert value == pytest.approx(reference, abs=1e-300)


def test_len_window_counts_words_not_characters():
    # Three words (13 characters): sig(0.005 * (3 - 20)) * sig(0.005 * (500 - 3)), by hand.
    three_words = 1 / (1 + math.exp(0.085)) * (1 / (1 + math.exp(-2.485)))
    assert three_words == pytest.approx(0.4419, abs=1e-4)
    assert len_window("one two three", 20, 500) == pytest.approx(three_words, rel=1e-12)
    assert len_window(" one\ttwo\n\u3000three  ", 20, 500) == pytest.approx(three_words, rel=1e-12)
    assert len_window("", 20, 500) == pytest.approx(1 / (1 + math.exp(0.1)) * (1 / (1 + math.exp(-2.5))), rel=1e-12)


def test_sigmoid_is_stable():
    assert sigmoid(1e6) == 1.0 and sigmoid(-1e6) == 0.0 and sigmoid(0) == 0.5


def test_reason_decay():
    assert reason_decay("") == 1.0
    assert reason_decay("x" * 500) == pytest.approx(math.exp(-1))


def test_payoff_asymmetry_by_hand():
    # (1, 1): equal -> 0; (1, 1.05): differs (+1/12) but 0.05/1.05 < .1 -> 1/12;
    # (0, 0): 0; (-2, 2): differs and 4/2 > .1 -> 2/12.
    pairs = [(1, 1), (1, 1.05), (0, 0), (-2, 2)]
    assert payoff_asymmetry_reward(pairs) == pytest.approx(3 / 12)
    as_dict = {f"K{i}": {"user": u, "LLM": l} for i, (u, l) in enumerate(pairs)}
    assert payoff_asymmetry_reward(as_dict) == payoff_asymmetry_reward(pairs)


@pytest.mark.parametrize(("user", "llm", "credits"), [
    (5, 4.5, 1),  # |5 - 4.5| / 5 is exactly 0.1: differs (+1), but not > 0.1
    (4.5, 5, 1),
    (-5, -4.5, 1),
    (10, 9, 1),  # 1 / 10 == 0.1 exactly as well
    (5, 4.49, 2),  # just past the boundary
    (0.05, 0, 2),  # 0.05 / 0.05 = 1 > 0.1
])
def test_payoff_asymmetry_at_the_strict_boundary(user, llm, credits):
    assert abs(user - llm) / max(abs(user), abs(llm)) <= 0.1 or credits == 2  # the case is what it claims
    assert payoff_asymmetry_reward([(user, llm)]) == credits / 12
    assert payoff_asymmetry_reward({"DQ_DA": {"user": user, "LLM": llm}}) == credits / 12


# --- batch word counts and the asymmetry credit, against their plain definitions ------------------

ascii_words = st.text(alphabet=st.sampled_from(list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x00\x08\x1b\x7fab!<")), max_size=60)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(ascii_words, mixed), st.integers(0, 70), st.integers(0, 70)), max_size=20),
    st.sampled_from([1, 7, 64, 96 * 1024]),
)
def test_batch_word_counts_equal_word_counts(rows, chunk):
    import gtalign.reward._components as components

    texts = [text for text, _, _ in rows]
    # Mostly valid spans, some reversed or past the end (counted one by one, like word_counts).
    spans = [(min(a, b, len(t)), min(max(a, b), len(t))) if a % 3 else (a, b) for t, a, b in rows]
    saved = components._CHUNK_CHARS, components._MIN_BATCH
    # Chunk boundaries anywhere (one text per chunk included), and numpy even for one text.
    components._CHUNK_CHARS, components._MIN_BATCH = chunk, 0
    try:
        totals, inside = batch_word_counts(texts, spans)
    finally:
        components._CHUNK_CHARS, components._MIN_BATCH = saved
    assert [(t, i) for t, i in zip(totals, inside)] == [word_counts(t, a, b) for t, (a, b) in zip(texts, spans)]
    for text, (a, b), total, words in zip(texts, spans, totals, inside):
        assert total == len(text.split())
        if 0 <= a <= b <= len(text):
            assert words == len(text[a:b].split())


@pytest.mark.parametrize("length", [131_068, 131_069, 131_070, 131_071, 140_000])
def test_batch_word_counts_of_texts_at_the_uint16_limit(length):
    dense = ("a " * length)[:length]  # as many words as a text of this length can hold
    shifted = (" a" * length)[:length]
    texts, spans = [dense, shifted] + ["x y"] * 8, [(0, length), (1, length)] + [(0, 3)] * 8
    totals, inside = batch_word_counts(texts, spans)
    assert totals == [len(dense.split()), len(shifted.split())] + [2] * 8
    assert inside == [len(dense.split()), len(shifted[1:].split())] + [2] * 8


def reference_asymmetry(pairs):
    """The research code's loop, verbatim."""
    total = 0
    for user, llm in pairs:
        if user != llm:
            total += 1 / 12
        if abs(user - llm) / max(abs(user), abs(llm), 1e-8) > 0.1:
            total += 1 / 12
    return total


payoff_number = st.one_of(
    st.floats(), st.integers(-10**6, 10**6), st.booleans(),
    st.sampled_from([0.0, -0.0, 1e-9, -1e-9, 0.1, 1.0, 1.1, 2.0, float("nan")]),
)


@settings(max_examples=600)
@given(st.lists(st.tuples(payoff_number, payoff_number), max_size=8))
def test_payoff_asymmetry_is_the_research_loop_bit_for_bit(pairs):
    expected = reference_asymmetry(pairs)
    as_dict = {f"K{i}": {"LLM": llm, "user": user} for i, (user, llm) in enumerate(pairs)}
    for got in (payoff_asymmetry_reward(pairs), payoff_asymmetry_reward(as_dict)):
        assert type(got) is type(expected) and got == expected
