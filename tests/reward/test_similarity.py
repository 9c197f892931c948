"""Word-level similarity for writing: unrelated articles low, shared content high, fast."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.reward._similarity import content_words, word_similarity

CRYPTO = (
    "There is a lot of expectation in the crypto space for next year. This year brought NFTs, web3, the "
    "metaverse, DeFi adoption and GameFi into the spotlight. The big expectation for next year is web3, "
    "DeFi 2.0, the metaverse, GameFi and layer-2 networks, although these sectors still have a lot of "
    "improvement to do. Nobody knows the true shape of the metaverse, and some companies championing "
    "these sectors might not survive the next five to ten years. As an investor, your most important "
    "assignment is protecting your capital: do your own research and follow fundamental analysis to see "
    "where the smart money goes. Never put money into a project you do not understand, and keep learning."
)
CRYPTO_REWRITE = (
    "Crypto in 2022: what to expect. NFTs, DeFi adoption, GameFi and the metaverse dominated this year, "
    "and next year investors expect web3, DeFi 2.0, the metaverse, GameFi and layer-2 networks to lead. "
    "These sectors are young and have real drawbacks; nobody knows what the metaverse will look like, and "
    "some companies building it may not last ten years. Protecting your capital comes first, so research "
    "every project and rely on fundamental analysis to follow the smart money. Do not invest in what you "
    "do not understand."
)
GARDEN = (
    "Spring is the best season to plant tomatoes in a home garden. Choose a sunny spot that gets at least "
    "six hours of light, enrich the soil with compost, and water deeply twice a week rather than a little "
    "every day. Stake the plants early so the stems stay upright as the fruit grows, pinch off suckers, "
    "and mulch around the base to keep moisture in and weeds out. Harvest when the fruit is firm and "
    "fully coloured."
)


def test_identical_texts_score_one() -> None:
    assert word_similarity(CRYPTO, CRYPTO) == 1.0
    assert word_similarity("the of and", "the of and") == 1.0  # only function words: all words count


def test_empty_or_wordless_texts_score_zero() -> None:
    assert word_similarity("", CRYPTO) == 0.0
    assert word_similarity(CRYPTO, "") == 0.0
    assert word_similarity("", "") == 0.0
    assert word_similarity("?!...", "---") == 0.0


def test_unrelated_articles_score_low_and_a_rewrite_scores_high() -> None:
    unrelated = word_similarity(GARDEN, CRYPTO)
    rewrite = word_similarity(CRYPTO_REWRITE, CRYPTO)
    assert unrelated < 0.1
    assert rewrite > 0.35
    assert rewrite > 4 * max(unrelated, 0.02)


def test_short_on_topic_answer_scores_below_a_full_rewrite() -> None:
    one_line = "Web3 and the metaverse will lead crypto next year."
    assert 0.0 < word_similarity(one_line, CRYPTO) < word_similarity(CRYPTO_REWRITE, CRYPTO)


def test_normalisation() -> None:
    words = content_words("The company's Companies don\u2019t STUDIES, glass")
    assert words == {"company": 2, "study": 1, "glass": 1}


def test_unrelated_medium_articles_score_low(paper_table: Callable[..., Any]) -> None:
    frame = paper_table("train_test/medium/test.parquet", columns=["reward_model"])
    articles = list(dict.fromkeys(str(row["ground_truth"]) for row in frame["reward_model"]))[:80]
    scores = sorted(word_similarity(a, b) for a, b in itertools.combinations(articles, 2))
    assert scores[int(0.95 * len(scores))] < 0.1
    assert sum(scores) / len(scores) < 0.06
    own = articles[0]
    assert word_similarity(own[: len(own) // 2], own) > 0.5


@pytest.mark.timeout(120)  # a hang guard; the speed itself is a benchmark's business
def test_a_test_set_of_long_articles_is_answered() -> None:
    article = " ".join(f"word{i % 700} topic{i % 13}" for i in range(500))
    other = " ".join(f"term{i % 600} topic{i % 11}" for i in range(500))
    scores = {word_similarity(article, other) for _ in range(248)}
    assert len(scores) == 1 and 0.0 < scores.pop() < 1.0  # deterministic, partial overlap (topic words)


@pytest.mark.timeout(120)  # a hang guard, not a timing assertion
def test_five_megabytes_is_answered() -> None:
    text = ("you? a'b ’s " * 500_000)[:5_000_000]
    assert 0.0 <= word_similarity(text, CRYPTO) <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
def test_bounded_and_symmetric(a: str, b: str) -> None:
    score = word_similarity(a, b)
    assert 0.0 <= score <= 1.0
    assert score == word_similarity(b, a)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1).filter(str.strip))
def test_any_text_with_a_word_matches_itself(text: str) -> None:
    assert word_similarity(text, text) == 1.0
