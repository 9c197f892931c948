"""The reward's building blocks (SPEC section 3), as plain functions on numbers and strings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "clamp",
    "len_window",
    "payoff_asymmetry_reward",
    "reason_decay",
    "sigmoid",
    "window",
    "word_count",
]


def clamp(value: float, low: float = 0.0, high: float = 1.0) -> float:
    """``max(low, min(high, value))`` as the research code writes it (NaN maps to ``low``)."""
    return max(low, min(high, value))


def sigmoid(x: float) -> float:
    """``1 / (1 + exp(-x))`` without overflow for large ``|x|``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _logistic_left(n: int, lo: float, k: float) -> float:
    # The research code's exact expression ``1 / (1 + exp(k*(lo - n)))``; it overflows for very
    # long texts, where the limit 0 is the answer.
    exponent = k * (lo - n)
    return 0.0 if exponent > 709.0 else 1.0 / (1.0 + math.exp(exponent))


def _logistic_right(n: int, hi: float, k: float) -> float:
    exponent = k * (n - hi)
    return 0.0 if exponent > 709.0 else 1.0 / (1.0 + math.exp(exponent))


def window(n: int, lo: float, hi: float, k: float = 0.005) -> float:
    """Soft length window on a count ``n``: ``sigmoid(k*(n-lo)) * sigmoid(k*(hi-n))``, computed
    with the research code's exact floating-point expression."""
    return _logistic_left(n, lo, k) * _logistic_right(n, hi, k)


def word_count(text: str) -> int:
    """Number of whitespace-separated words (Python's ``str.split()``)."""
    return len(text.split())


def len_window(text: str, lo: float, hi: float, k: float = 0.005) -> float:
    """`window` over the number of whitespace-separated words of ``text``."""
    return window(word_count(text), lo, hi, k)


def reason_decay(text: str, scale: float = 500.0) -> float:
    """``exp(-len(text)/scale)``: 1 for no reasoning, decaying with its length in characters."""
    return math.exp(-len(text) / scale)


def payoff_asymmetry_reward(payoff: Mapping[str, Mapping[str, Any]] | Iterable[tuple[float, float]]) -> float:
    """The paper's ``payoff_reward``: per cell ``1/12`` if ``user != LLM`` plus ``1/12`` if
    ``|user - LLM| / max(|user|, |LLM|, 1e-8) > 0.1``, summed in the matrix's own order.

    Accepts the parsed JSON dict (``{"DQ_AQ": {"LLM": .., "user": ..}}``) or (user, LLM) pairs.
    """
    pairs = ((v["user"], v["LLM"]) for v in payoff.values()) if isinstance(payoff, Mapping) else payoff
    total = 0
    for user, llm in pairs:
        if user != llm:
            total += 1 / 12
        denom = max(abs(user), abs(llm), 1e-8)
        if abs(user - llm) / denom > 0.1:
            total += 1 / 12
    return total
