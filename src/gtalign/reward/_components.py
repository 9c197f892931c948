"""The reward's building blocks (SPEC section 3), as plain functions on numbers and strings."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "clamp",
    "len_window",
    "payoff_asymmetry_reward",
    "reason_decay",
    "sigmoid",
    "window",
    "word_count",
    "word_counts",
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


_ASCII_SPACE = frozenset(b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ")
# Bytes of whitespace become 0, every other byte 1 (UTF-8 continuation bytes included).
_WORD_TABLE = bytes(0 if byte in _ASCII_SPACE else 1 for byte in range(256))
_NON_ASCII_SPACE = re.compile("[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def _word_flags(text: str) -> np.ndarray | None:
    """Per byte of the UTF-8 text: 0 for whitespace, 1 otherwise (None when ``str.split`` is needed)."""
    if not text.isascii() and _NON_ASCII_SPACE.search(text):
        return None
    try:
        return np.frombuffer(text.encode("utf-8").translate(_WORD_TABLE), dtype=np.uint8)
    except UnicodeEncodeError:
        return None


def _count_words(flags: np.ndarray) -> int:
    if len(flags) == 0:
        return 0
    return int(np.count_nonzero(flags[1:] > flags[:-1])) + int(flags[0])


def word_count(text: str) -> int:
    """Number of whitespace-separated words, exactly ``len(text.split())``, without building the list.

    Maps every byte of the UTF-8 text to 0 (space) or 1 and counts the rising edges with numpy;
    text with non-ASCII whitespace (or lone surrogates) falls back to ``str.split``.
    """
    flags = _word_flags(text)
    return len(text.split()) if flags is None else _count_words(flags)


def word_counts(text: str, start: int, end: int) -> tuple[int, int]:
    """``(word_count(text), word_count(text[start:end]))`` with one pass over ``text``."""
    flags = _word_flags(text) if text.isascii() else None
    if flags is None:
        return word_count(text), word_count(text[start:end])
    if len(flags) == 0:
        return 0, 0
    rising = flags[1:] > flags[:-1]  # rising[i]: a word starts at i + 1
    inner = 0
    end = min(end, len(flags))
    if end > start:
        inner = int(np.count_nonzero(rising[start:end - 1])) + int(flags[start])
    return int(np.count_nonzero(rising)) + int(flags[0]), inner


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
    pairs = [(v["user"], v["LLM"]) for v in payoff.values()] if isinstance(payoff, (dict, Mapping)) else payoff
    total = 0
    step = 1 / 12
    for user, llm in pairs:
        if user != llm:
            total += step
        if abs(user - llm) / max(abs(user), abs(llm), 1e-8) > 0.1:
            total += step
    return total
