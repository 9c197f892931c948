"""The reward's building blocks (SPEC section 3), as plain functions on numbers and strings."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "batch_word_counts",
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


def window(n: int, lo: float, hi: float, k: float = 0.005) -> float:
    """Soft length window on a count ``n``: ``sigmoid(k*(n-lo)) * sigmoid(k*(hi-n))``, computed
    with the research code's exact floating-point expression (0 where it would overflow)."""
    # ``1 / (1 + exp(k*(lo - n)))`` overflows for very long texts, where the limit 0 is the answer.
    left, right = k * (lo - n), k * (n - hi)
    rising = 0.0 if left > 709.0 else 1.0 / (1.0 + math.exp(left))
    falling = 0.0 if right > 709.0 else 1.0 / (1.0 + math.exp(right))
    return rising * falling


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


# Texts are counted in chunks of about this many characters: large enough that numpy's per-call
# cost is spread over some 30 texts, small enough that the chunk's buffers stay below malloc's
# default mmap threshold (128 KiB): larger ones were mapped afresh and page-faulted on every call,
# two to four times slower per byte.
_CHUNK_CHARS = 96 * 1024
# Counts are summed as uint16 (twice as fast as int32): a text of n characters has at most
# ceil(n / 2) words, so texts up to this length cannot overflow; longer ones are counted alone.
_MAX_TEXT = 2 * 65_535
_TAB, _FS = np.uint8(9), np.uint8(28)
# Fewer texts are counted one by one: the batch passes cost some 30 us whatever the batch size.
_MIN_BATCH = 8


def batch_word_counts(texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """``word_counts(text, start, end)`` for every text and ``(start, end)``, as two lists: the
    words of each text and of each ``text[start:end]``.

    The ASCII texts of a batch (of `_MIN_BATCH` texts or more) are counted together, a few numpy
    passes per chunk of about `_CHUNK_CHARS` characters (numpy's call overhead, about a
    microsecond, would otherwise be paid several times per text); other texts, or spans outside
    ``0 <= start <= end <= len(text)``, go through `word_counts`.

    The texts are laid out as if joined with a space before, between and after them (" t0 t1 "),
    so that no word spans two texts and character ``j`` of the text at offset ``o`` is byte
    ``o + j``. A word starts at byte ``i + 1`` where ``starts[i]`` (a space, then no space); per
    text, `np.add.reduceat` sums ``starts`` over three consecutive segments: before the span, the
    span's inside (words starting after its first character) and the rest. The words of
    ``text[start:end]`` are the inside ones plus one if ``text[start]`` is no space.
    """
    count = len(texts)
    if count < _MIN_BATCH:
        counted = [word_counts(text, start, end) for text, (start, end) in zip(texts, spans)]
        return [total for total, _ in counted], [inner for _, inner in counted]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=count)
    begin, end = np.array(spans, dtype=np.int64).reshape(count, 2).T
    batched = np.fromiter(map(str.isascii, texts), dtype=bool, count=count)
    batched &= (begin >= 0) & (begin <= end) & (end <= lengths) & (lengths <= _MAX_TEXT)
    rows = np.flatnonzero(batched)
    length, begin, end = lengths[rows], begin[rows], end[rows]
    offsets = np.cumsum(length + 1) - length  # where each text begins in " t0 t1 ... "
    bounds = np.stack([offsets - 1, offsets + begin, offsets + np.maximum(begin, end - 1)], axis=1)
    segments = np.zeros(bounds.shape, dtype=np.int64)
    first_is_space = np.zeros(len(rows), dtype=bool)
    batch = [texts[row] for row in rows.tolist()]
    chunks = np.searchsorted(offsets, np.arange(_CHUNK_CHARS, offsets[-1] if len(rows) else 0, _CHUNK_CHARS))
    for first, stop in zip([0, *chunks.tolist()], [*chunks.tolist(), len(rows)]):
        if first == stop:
            continue
        base = offsets[first] - 1  # the chunk's buffer starts at this byte of " t0 t1 ... "
        codes = np.frombuffer(" ".join(["", *batch[first:stop], "", ""]).encode("ascii"), dtype=np.uint8)
        # The bytes str.split() treats as whitespace: 9-13 and 28-32.
        space = (codes - _TAB) < 5
        space |= (codes - _FS) < 5
        starts = space[:-1] > space[1:]
        # uint16 sums: twice as fast as int32, and no segment holds more words than _MAX_TEXT / 2.
        sums = np.add.reduceat(starts.view(np.uint8), (bounds[first:stop] - base).ravel(), dtype=np.uint16)
        segments[first:stop] = sums.reshape(-1, 3)
        first_is_space[first:stop] = space[offsets[first:stop] - base + begin[first:stop]]
    flat = bounds.ravel()
    segments.ravel()[:-1][flat[1:] == flat[:-1]] = 0  # reduceat gives starts[i], not 0, for an empty segment
    totals = np.zeros(count, dtype=np.int64)
    inside = np.zeros(count, dtype=np.int64)
    totals[rows] = segments.sum(axis=1)
    inside[rows] = segments[:, 1] + ((end > begin) & ~first_is_space)
    for row in np.flatnonzero(~batched).tolist():
        totals[row], inside[row] = word_counts(texts[row], *spans[row])
    return totals.tolist(), inside.tolist()


def len_window(text: str, lo: float, hi: float, k: float = 0.005) -> float:
    """`window` over the number of whitespace-separated words of ``text``."""
    return window(word_count(text), lo, hi, k)


def reason_decay(text: str, scale: float = 500.0) -> float:
    """``exp(-len(text)/scale)``: 1 for no reasoning, decaying with its length in characters."""
    return math.exp(-len(text) / scale)


def _step_sums() -> list[float]:
    # sums[k]: 0 plus k times 1/12, added one at a time as the research code does ("total += 1/12"),
    # so sums[k] is bit for bit its total after k credits (sums[0] is the int 0, as there).
    sums: list[float] = [0]
    for _ in range(12):
        sums.append(sums[-1] + 1 / 12)
    return sums


_STEP_SUMS = _step_sums()


def payoff_asymmetry_reward(payoff: Mapping[str, Mapping[str, Any]] | Iterable[tuple[float, float]]) -> float:
    """The paper's ``payoff_reward``: per cell ``1/12`` if ``user != LLM`` plus ``1/12`` if
    ``|user - LLM| / max(|user|, |LLM|, 1e-8) > 0.1``, summed in the matrix's own order.

    Accepts the parsed JSON dict (``{"DQ_AQ": {"LLM": .., "user": ..}}``) or (user, LLM) pairs.
    Every credit is the same 1/12, so the sum only depends on how many cells earn them.
    """
    if not isinstance(payoff, (dict, Mapping)):
        payoff = {index: {"user": user, "LLM": llm} for index, (user, llm) in enumerate(payoff)}
    credits = 0
    for cell in payoff.values():
        user, llm = cell["user"], cell["LLM"]
        # max(|user|, |LLM|, 1e-8) spelled out: the same comparisons, so the same answer with NaN.
        scale = abs(user)
        other = abs(llm)
        if other > scale:
            scale = other
        if 1e-8 > scale:
            scale = 1e-8
        if user != llm:
            credits += 1
        if abs(user - llm) / scale > 0.1:
            credits += 1
    if credits < len(_STEP_SUMS):
        return _STEP_SUMS[credits]
    total = 0  # more than six cells: add the credits one at a time
    for _ in range(credits):
        total += 1 / 12
    return total
