"""Reward building blocks: exact word counts, stable windows, the paper's asymmetry credit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.reward._components import (
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


def test_len_window_counts_words():
    assert len_window("one two three", 20, 500) == window(3, 20, 500)


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
