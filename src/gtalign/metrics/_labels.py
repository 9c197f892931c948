"""Labels for verl dumps: join each unlabelled dump row to the benchmark row it was asked from.

A verl validation dump keeps the chat-templated prompt (``input``) but often no ground truth. Its
benchmark row is the one whose last user message is contained in that input, on the same data
source. Finding it must stay linear in the size of the dump and the benchmark, so each benchmark
question is indexed by its rarest run of `_GRAM` words (the one fewest other questions share: a
long instruction that every prompt of the paper's data starts with is never the key); a dump
row looks up each run of words of its input, and only those candidates are checked for
containment (whitespace and case normalised). When several questions are contained, the longest
wins (a short question can sit inside a longer one); if the longest ones disagree on the label or
ground truth, the row is ambiguous. Unmatched and ambiguous rows are counted, never fatal.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gtalign.eval._log import SampleRecord

__all__ = ["LabelJoin", "join_labels"]

_GRAM = 4
_WORD = re.compile(r"\w+")
_SHOWN = 5


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.casefold()))


def _grams(words: Sequence[str], size: int) -> Iterable[tuple[str, ...]]:
    return (tuple(words[i:i + size]) for i in range(len(words) - size + 1))


@dataclass(frozen=True, slots=True)
class LabelJoin:
    """How a dump's rows got their labels from ``benchmark``: ``matched`` rows took a benchmark
    row's label and ground truth; ``kept`` already had a ground truth of their own; ``unmatched``
    rows contain no benchmark question of their data source; ``ambiguous`` ones contain several
    that disagree. The ``*_ids`` name the first few."""

    benchmark: str
    matched: int
    kept: int
    unmatched: int
    ambiguous: int
    unmatched_ids: tuple[str, ...] = ()
    ambiguous_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for a warning or a report's problems."""
        def ids(values: tuple[str, ...], total: int) -> str:
            return f" (rows {', '.join(values)}{', ...' if total > len(values) else ''})" if values else ""

        return (f"labels from {self.benchmark}: {self.matched} row(s) matched, {self.kept} had a ground truth already, "
                f"{self.unmatched} unmatched{ids(self.unmatched_ids, self.unmatched)}, "
                f"{self.ambiguous} ambiguous{ids(self.ambiguous_ids, self.ambiguous)}")

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "matched": self.matched, "kept": self.kept, "unmatched": self.unmatched,
                "ambiguous": self.ambiguous, "unmatched_ids": list(self.unmatched_ids),
                "ambiguous_ids": list(self.ambiguous_ids)}


@dataclass(frozen=True, slots=True)
class _Question:
    data_source: str
    text: str  # normalised
    label: str
    ground_truth: str


class _Index:
    """Benchmark questions by their rarest word run (or all their words, when fewer than `_GRAM`)."""

    def __init__(self, questions: Sequence[_Question]) -> None:
        words = [_words(q.text) for q in questions]
        frequency = Counter(gram for w in words for gram in set(_grams(w, _GRAM)))
        self.questions = questions
        self.keys: dict[tuple[str, ...], list[int]] = {}
        self.sizes: set[int] = set()
        for i, w in enumerate(words):
            if not w:
                continue
            key = w if len(w) < _GRAM else min(_grams(w, _GRAM), key=lambda g: frequency[g])
            self.keys.setdefault(key, []).append(i)
            self.sizes.add(len(key))

    def find(self, data_source: str, text: str) -> list[_Question]:
        """The longest questions of ``data_source`` contained in ``text``."""
        words, normal = _words(text), _normal(text)
        candidates = {i for size in self.sizes for gram in _grams(words, size) for i in self.keys.get(gram, ())}
        found = [self.questions[i] for i in candidates
                 if self.questions[i].data_source == data_source and self.questions[i].text in normal]
        longest = max((len(q.text) for q in found), default=0)
        return [q for q in found if len(q.text) == longest]


def join_labels(records: Sequence[SampleRecord], rows: Iterable[Any], benchmark: str) -> tuple[list[SampleRecord], LabelJoin]:
    """``records`` with the label and ground truth of their benchmark row (`BenchmarkRow`s in
    ``rows``), matched on the prompt text (see the module's docstring), and how the join went.
    A record that has a ground truth already, or no prompt text, keeps what it has."""
    questions = [_Question(r.data_source, _normal(r.question), r.label, r.ground_truth) for r in rows if r.question.strip()]
    index = _Index(questions)
    out: list[SampleRecord] = []
    matched = kept = 0
    unmatched: list[str] = []
    ambiguous: list[str] = []
    for record in records:
        text = " ".join(m.get("content", "") for m in record.prompt if isinstance(m.get("content"), str))
        if record.ground_truth:
            kept += 1
            out.append(record)
            continue
        found = index.find(record.data_source, text) if text else []
        answers = {(q.label, q.ground_truth) for q in found}
        if len(answers) == 1:
            label, ground_truth = answers.pop()
            matched += 1
            out.append(replace(record, label=label, ground_truth=ground_truth))
            continue
        (ambiguous if answers else unmatched).append(record.id)
        out.append(record)
    join = LabelJoin(benchmark, matched, kept, len(unmatched), len(ambiguous),
                     tuple(unmatched[:_SHOWN]), tuple(ambiguous[:_SHOWN]))
    return out, join
