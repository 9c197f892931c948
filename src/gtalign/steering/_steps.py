"""The pure steps of steering: reading the first stage, the question type, and the decision text.

No I/O and no backend here, so each step is tested on strings; `gtalign.steering._engine` only
sequences them around the backend calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from gtalign.game import DEFAULT_SPACE, Decision, PayoffError, PayoffMatrix, StrategySpace, pareto_frontier
from gtalign.protocol import paper_block, paper_parse_payoff, parse_answer
from gtalign.steering._policy import PricingPolicy

__all__ = [
    "ANALYZE_OPEN",
    "PAYOFF_CLOSE",
    "RESPONSE_CLOSE",
    "RESPONSE_OPEN",
    "Closed",
    "PayoffRead",
    "ResponseText",
    "close_at",
    "partial_tag",
    "decision_sentence",
    "ignores_protocol",
    "default_sentence",
    "read_payoff",
    "read_question_type",
    "salvage",
]

PAYOFF_CLOSE = "</payoff>"
RESPONSE_CLOSE = "</response>"
ANALYZE_OPEN = "\n<analyze>\n"
"""What follows ``</payoff>`` in the prefill, before the decision sentence."""
RESPONSE_OPEN = "\n<response>\n"


@dataclass(frozen=True, slots=True)
class Closed:
    """A stage's new text cut at its closing tag, and whether the block was closed there.

    ``overshoot`` counts characters the backend wrote past the closing tag (a backend that ignored
    the stop string); they are dropped.
    """

    text: str
    closed: bool
    overshoot: int = 0


def close_at(text: str, closing: str, opening: str, stop: str | None, finish_reason: str, prefill: str = "") -> Closed:
    """Cut ``text`` at ``closing`` and put the tag back when the model stopped on it.

    The model stopped on the tag when the backend says so (``stop == closing``), or when the call
    ended normally (``finish_reason == "stop"``, no stop string reported, as OpenAI-style servers
    do) while the block ``opening`` is still open in ``prefill + text``.
    """
    found = text.find(closing)
    if found >= 0:
        return Closed(text[:found + len(closing)], True, len(text) - found - len(closing))
    if stop == closing:
        return Closed(text + closing, True)
    whole = prefill + text
    still_open = whole.rfind(opening) > whole.rfind(closing)
    if stop is None and finish_reason == "stop" and still_open:
        return Closed(text + closing, True)
    return Closed(text, False)


def partial_tag(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``tag`` (0 when none)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


class ResponseText:
    """The ``<response>`` content of a continuation, picked out while the continuation streams in.

    `feed` takes the model's new text piece by piece and returns what may be shown now: nothing
    before ``<response>`` opens, nothing from ``</response>`` on, and no leading or trailing
    whitespace, so the pieces joined equal the stripped block content the parser reads. A piece
    that could be the start of a tag, or trailing whitespace, is held back until the next piece
    shows what it is; `flush` releases what is held when the stage ends without closing the block.
    ``opened`` starts inside the block (a prefill that already ends in ``<response>``); ``after``
    is a tag that must come first (``</analyze>`` for a continuation of an open ``<analyze>``, so a
    ``<response>`` the model merely mentions in its analysis does not open the block).
    """

    def __init__(self, *, opened: bool = False, after: str | None = None) -> None:
        self.opened = opened
        self.closed = False
        self._after = None if opened else after
        self._pending = ""
        self._space = ""
        self._started = False

    def feed(self, piece: str) -> str:
        if self.closed or not piece:
            return ""
        pending = self._pending + piece
        if not self.opened:
            for tag in (self._after, RESPONSE_OPEN.strip()):
                if tag is None:
                    continue
                found = pending.find(tag)
                if found < 0:
                    keep = partial_tag(pending, tag)
                    self._pending = pending[len(pending) - keep:] if keep else ""
                    return ""
                pending = pending[found + len(tag):]
                if tag == self._after:
                    self._after = None
            self.opened = True
        end = pending.find(RESPONSE_CLOSE)
        if end >= 0:
            self.closed = True
            self._pending = ""
            return self._show(pending[:end])
        keep = partial_tag(pending, RESPONSE_CLOSE)
        self._pending = pending[len(pending) - keep:] if keep else ""
        return self._show(pending[:len(pending) - keep])

    def flush(self) -> str:
        """What is held back, once the stage has ended without ``</response>`` (it was no tag)."""
        if not self.opened or self.closed:
            return ""
        held, self._pending = self._pending, ""
        return self._show(held)

    def _show(self, body: str) -> str:
        if not self._started:
            body = body.lstrip()
            if not body:
                return ""
            self._started = True
        body = self._space + body
        shown = body.rstrip()
        self._space = body[len(shown):]
        return shown


@dataclass(frozen=True, slots=True)
class PayoffRead:
    """The matrix read off the first stage (None when unusable, with ``why``), how it was read, and
    the ``<thinking>`` block when there is one."""

    matrix: PayoffMatrix | None
    how: Literal["strict", "lenient"] | None
    thinking: str | None
    why: str


def read_payoff(head: str, space: StrategySpace = DEFAULT_SPACE, *, lenient: bool = True) -> PayoffRead:
    """The payoff matrix of a first stage (the text up to and including ``</payoff>``).

    First the structural parser (`parse_answer`, strict JSON); when that fails and ``lenient`` is
    set, the research code's parse (JSON or a Python literal, curly quotes straightened), which
    only knows the paper's six keys and so is tried for the default space only.
    """
    parsed = parse_answer(head, space)
    if parsed.payoff is not None:
        return PayoffRead(parsed.payoff, "strict", parsed.thinking, "")
    problems = [p for p in parsed.problems if p.block == "payoff" or (p.code or "").startswith("payoff")]
    why = str(problems[0]) if problems else "no <payoff>...</payoff> block"
    if lenient and space == DEFAULT_SPACE:
        block = paper_block(head, "payoff")
        if block is not None:
            data, _ = paper_parse_payoff(block)
            if data is not None:
                try:
                    return PayoffRead(PayoffMatrix.from_dict(data, space), "lenient", parsed.thinking, why)
                except PayoffError:
                    pass
    return PayoffRead(None, None, parsed.thinking, why)


def ignores_protocol(text: str) -> bool:
    """True when a first stage shows no attempt at the four blocks: neither ``<thinking>`` nor
    ``<payoff>`` was opened (the model just answered, or rambled)."""
    return "<thinking>" not in text and "<payoff>" not in text


def salvage(text: str, closed: bool) -> tuple[str, int]:
    """The part of a first stage without a usable matrix that the continuation keeps.

    When the model wrote ``<thinking>`` then a ``<payoff>`` block it closed, everything is kept (its
    malformed matrix stays in the answer, as written). Otherwise only a leading, complete
    ``<thinking>`` block is kept, since whatever follows it is not in the protocol's order.
    Returns the kept text and how many characters were dropped.
    """
    stripped = text.lstrip()
    if closed and stripped.startswith("<thinking>") and "<payoff>" in stripped:
        return text, 0
    if stripped.startswith("<thinking>"):
        end = stripped.find("</thinking>")
        if end >= 0:
            kept = stripped[:end + len("</thinking>")]
            return kept, len(text) - len(kept)
    return "", len(text)


_NEGATED = re.compile(r"(?:\bnot|n't|\bnever|\brather\s+than|\binstead\s+of)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)
_LABELLED = re.compile(
    r"(?:\b(?:is|as|type|classification|classified|label(?:l?ed)?|category)\b[\s:=]*(?:\w+\s+){0,2}|\()$",
    re.IGNORECASE,
)
_SENTENCE_START = re.compile(r"[.!?\n][^.!?\n]*$")


@lru_cache(maxsize=32)
def _type_pattern(types: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(t) for t in types) + r")\b")


def _sentence_around(text: str, start: int, end: int) -> str:
    before = _SENTENCE_START.search(text, max(0, start - 200), start)
    left = before.start() + 1 if before else max(0, start - 200)
    stop = re.search(r"[.!?\n]", text[end:end + 200])
    right = end + (stop.end() if stop else min(200, len(text) - end))
    return text[left:right].strip()


def read_question_type(thinking: str | None, space: StrategySpace = DEFAULT_SPACE) -> tuple[str | None, str]:
    """The question type (``DQ``/``VQ``) the model gave in ``<thinking>``, and the evidence.

    A heuristic, kept deliberately narrow so that it restricts the decision only when the model
    clearly said which row it is in:

    * Only the space's own codes count, as whole words, case-sensitive (``DQ``, ``VQ``); words
      like "vague" or "clear" do not, since "not clear which year" is a vague question.
    * A code negated just before it ("not a VQ", "isn't really DQ", "rather than VQ", up to two
      words between) is dropped.
    * One distinct code left: that is the type. Several: the last one written as a label ("is a
      DQ", "classified as VQ", "type: VQ", "definite (DQ)") decides; with no label, no type.

    Returns ``(None, why)`` when there is no type to keep; the engine then chooses over all rows.

    >>> read_question_type("A direct answer fits a DQ, but the year is missing, so this is a VQ.")
    ('VQ', 'A direct answer fits a DQ, but the year is missing, so this is a VQ.')
    >>> read_question_type("It is not a VQ: the user says what they want.")[0] is None
    True
    """
    if not thinking:
        return None, "no <thinking> block"
    found = [m for m in _type_pattern(space.question_types).finditer(thinking)]
    if not found:
        return None, f"<thinking> names no question type ({', '.join(space.question_types)})"
    kept = [m for m in found if not _NEGATED.search(thinking, max(0, m.start() - 40), m.start())]
    if not kept:
        return None, "<thinking> only names question types it rules out"
    distinct = {m.group(1) for m in kept}
    if len(distinct) == 1:
        last = kept[-1]
        return last.group(1), _sentence_around(thinking, last.start(), last.end())
    labelled = [m for m in kept if _LABELLED.search(thinking, max(0, m.start() - 40), m.start())]
    if not labelled:
        names = ", ".join(sorted(distinct))
        return None, f"<thinking> names {names} without saying which one the question is"
    last = labelled[-1]
    return last.group(1), _sentence_around(thinking, last.start(), last.end())


def _pricing_phrase(policy: PricingPolicy) -> str:
    return "With no pricing change" if policy.is_identity else f"Under {policy.name} pricing"


def decision_sentence(
    decision: Decision, transformed: PayoffMatrix, policy: PricingPolicy, question_type: str | None
) -> str:
    """The opening of ``<analyze>``: the frontier after pricing, the choice and ``Chosen key: KEY.``"""
    frontier = ", ".join(pareto_frontier(transformed))
    where = f" within the {question_type} row" if question_type else ""
    after = "" if policy.is_identity else " after pricing"
    return (
        f"Pareto frontier{after}: {frontier}. {_pricing_phrase(policy)}, the {decision.rule} rule{where} "
        f"picks {decision.key}. Chosen key: {decision.key}."
    )


def default_sentence(key: str) -> str:
    """The opening of ``<analyze>`` when no matrix could be read and the declared default is used."""
    return f"The payoff matrix could not be read, so the declared fallback applies. Chosen key: {key}."
