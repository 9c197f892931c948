"""Character BLEU equals NLTK's sentence_bleu on raw strings, bit for bit."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.reward import char_bleu
from gtalign.reward._bleu import _clipped_counter, _clipped_sorted

nltk_bleu = pytest.importorskip("nltk.translate.bleu_score").sentence_bleu


def reference_bleu(reference: str, hypothesis: str) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nltk_bleu([reference], hypothesis)


small = st.text(alphabet="ab c\n\u00e9", max_size=14)


@settings(max_examples=400, deadline=None)
@given(small, small)
def test_equals_nltk_on_small_alphabets(reference, hypothesis):
    assert char_bleu(reference, hypothesis) == reference_bleu(reference, hypothesis)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_equals_nltk_on_any_text(reference, hypothesis):
    assert char_bleu(reference, hypothesis) == reference_bleu(reference, hypothesis)


@pytest.mark.parametrize("reference,hypothesis", [
    ("", ""), ("abc", ""), ("", "abc"), ("a", "a"), ("abcd", "abcd"), ("aaaa", "aa"),
    ("hello world", "hello"), ("x" * 50, "y" * 80), ("\ud800ab", "\ud800ab"),
])
def test_edge_cases(reference, hypothesis):
    assert char_bleu(reference, hypothesis) == reference_bleu(reference, hypothesis)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_sorted_and_counter_paths_agree(reference, hypothesis):
    assert _clipped_sorted(reference, hypothesis) == _clipped_counter(reference, hypothesis)


def test_unrelated_articles_score_high_because_bleu_is_over_characters():
    a = "The quarterly earnings report shows revenue growth across all regions. " * 5
    b = "Gardening in spring requires patience, good soil and regular watering. " * 5
    assert char_bleu(a, b) > 0.1  # two unrelated texts share most character n-grams of English
