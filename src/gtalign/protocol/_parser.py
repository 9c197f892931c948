"""A structural, linear-time parser for the four-block answer, reporting problems with positions.

Unlike the research code's regular expressions (reproduced in `gtalign.protocol._paper`), this
parser reads the answer the way a careful human would: the tags form a sequence of blocks, a tag
inside a block that is later closed is smuggled text (a ``stray_tag``), and the payoff is strict
JSON validated into a `PayoffMatrix`. It never raises on a string, whatever its content.

Cost: one ``re.finditer`` over the whole text for the tags, a constant number of C-level scans
per gap and block, and a payoff check whose depth guard runs before any recursive parser.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from types import MappingProxyType
from typing import Any

from gtalign.game import DEFAULT_SPACE, PayoffError, PayoffMatrix, StrategySpace
from gtalign.protocol._types import BLOCK_NAMES, Block, BlockName, ParsedAnswer, Problem, ProblemCode

__all__ = ["MAX_CHOICE_TOKENS", "MAX_JSON_DEPTH", "MAX_PROBLEMS_PER_CODE", "parse_answer"]

MAX_JSON_DEPTH = 32
"""Deepest bracket nesting the payoff may have before it is refused (a valid matrix has 2)."""

MAX_PROBLEMS_PER_CODE = 20
"""Problems of one code listed individually; the rest are summarised in one further problem."""

MAX_CHOICE_TOKENS = 10_000
"""Keys, cues and sentence ends read in <analyze> when it mentions several different keys."""

_TAG = re.compile(r"<(/?)(thinking|payoff|analyze|response)>")
_NON_SPACE = re.compile(r"\S")
_ORDER = {name: i for i, name in enumerate(BLOCK_NAMES)}

# Strict-JSON scanning: a backslash pair outside the string pattern keeps escaped quotes from
# starting a string, so an unterminated string fails once, not once per quote (linear time).
_JSON_STRINGS = re.compile(r'\\.|"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_COLON = re.compile(r"\s*:")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}

# Choice cues in <analyze>: words that announce the chosen cell, and the arrow.
_CUE_WORDS = (
    r"chosen\s+key|choos\w*|chose\w*|pick\w*|recommend\w*|select\w*"
    r"|go(?:es|ing)?\s+with|went\s+with|final\w*"
)
_NEGATION = re.compile(r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?$", re.IGNORECASE)
_SENTENCE_END = r"[.!?](?=\s|$)|\n"


class _Problems:
    """Collects problems, listing at most `MAX_PROBLEMS_PER_CODE` of each code individually.

    A message or position may be given as a callable, evaluated only for problems that are
    listed, so a payoff with a million bad keys costs a million counts, not a million searches.
    """

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.total = 0
        self._counts: dict[str, int] = {}
        self._first_omitted: dict[str, Problem] = {}

    def add(
        self,
        code: ProblemCode,
        message: str | Callable[[], str],
        position: int | Callable[[], int] | None = None,
        block: BlockName | None = None,
        key: str | None = None,
    ) -> None:
        self.total += 1
        count = self._counts.get(code, 0) + 1
        self._counts[code] = count
        if count > MAX_PROBLEMS_PER_CODE and code in self._first_omitted:
            return
        where = position() if callable(position) else position
        problem = Problem(code, message() if callable(message) else message, where, block, key)
        if count <= MAX_PROBLEMS_PER_CODE:
            self.items.append(problem)
        else:
            self._first_omitted[code] = problem

    def result(self, text_length: int) -> tuple[Problem, ...]:
        for code, first in self._first_omitted.items():
            omitted = self._counts[code] - MAX_PROBLEMS_PER_CODE
            self.items.append(
                Problem(first.code, f"{omitted} more {code} problems from here on are not listed", first.position, first.block)
            )
        end = text_length + 1
        return tuple(sorted(self.items, key=lambda p: end if p.position is None else p.position))


@dataclass(frozen=True, slots=True)
class _Open:
    name: BlockName
    start: int
    content_start: int


def parse_answer(text: str, space: StrategySpace = DEFAULT_SPACE) -> ParsedAnswer:
    """Parse a completion into its four blocks, a validated payoff matrix and the chosen cell key.

    Never raises on a ``str`` (lone surrogates, NULs and megabytes included); everything wrong
    is a `Problem` with a character offset into ``text``. Anything other than ``str`` raises
    `TypeError`, because silently stringifying bytes or None would hide a caller's bug.

    The payoff must be strict JSON (no Python literals, NaN, duplicate keys or booleans) with
    exactly the space's keys. The chosen key is the one cell key that ``<analyze>`` names after
    (or just before) a choice word such as "chosen key", "choose", "pick", "recommend",
    "select", "go with", "final", or right after "→"; without such a phrase, the last key
    mentioned. See `_chosen_key` for the exact rule.

    >>> parse_answer("<thinking>t</thinking><payoff>{}</payoff>").problems[0].code
    'payoff_keys'
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_answer expects str, got {type(text).__name__}")
    problems = _Problems()
    blocks = _scan_blocks(text, problems)
    payoff = None
    payoff_block = blocks.get("payoff")
    if payoff_block is not None and payoff_block.content:
        offset = _content_offset(text, payoff_block)
        payoff = _parse_payoff(payoff_block.content, offset, space, problems)
    chosen = None
    analyze_block = blocks.get("analyze")
    if analyze_block is not None and analyze_block.content:
        chosen = _chosen_key(analyze_block.content, _content_offset(text, analyze_block), analyze_block.start, space, problems)
    return ParsedAnswer(
        text=text,
        blocks=MappingProxyType(blocks),
        payoff=payoff,
        chosen_key=chosen,
        problems=problems.result(len(text)),
    )


def _content_offset(text: str, block: Block) -> int:
    """Where the block's stripped content starts in ``text``."""
    start = block.start + len(block.name) + 2
    raw = text[start:block.end - len(block.name) - 3]
    return start + len(raw) - len(raw.lstrip())


def _scan_blocks(text: str, problems: _Problems) -> dict[str, Block]:
    """Walk the tags once and return the first complete occurrence of each block.

    A tag met inside an open block is smuggled text when that block is closed later on; when it
    never is, the block is reported unclosed and a different opening tag starts the next block.
    """
    tags = list(_TAG.finditer(text))
    last_close: dict[str, int] = {}
    for match in tags:
        if match.group(1):
            last_close[match.group(2)] = match.start()

    blocks: dict[str, Block] = {}
    unclosed: set[str] = set()
    current: _Open | None = None
    consumed = 0
    highest = -1

    def check_gap(end: int) -> None:
        found = _NON_SPACE.search(text, consumed, end)
        if found is not None:
            where = "after the last block" if end == len(text) and consumed > 0 else "outside the blocks"
            excerpt = text[found.start():min(end, found.start() + 30)]
            problems.add("text_outside_blocks", f"text {where}: {excerpt!r}", found.start())

    for match in tags:
        closing, name = bool(match.group(1)), match.group(2)
        position = match.start()
        if current is not None:
            if closing and name == current.name:
                content = text[current.content_start:position].strip()
                if current.name not in blocks:
                    blocks[current.name] = Block(current.name, content, current.start, match.end())
                    if not content:
                        problems.add("empty_block", f"<{current.name}> is empty", current.start, current.name)
                current = None
                consumed = match.end()
                continue
            if last_close.get(current.name, -1) > position or (not closing and name == current.name):
                problems.add(
                    "stray_tag",
                    f"{match.group()} inside <{current.name}> is text, not a block boundary",
                    position,
                    current.name,
                )
                continue
            problems.add("unclosed_block", f"<{current.name}> is never closed", current.start, current.name)
            unclosed.add(current.name)
            current = None
            consumed = position
        if closing:
            check_gap(position)
            problems.add("stray_tag", f"{match.group()} closes no open block", position)
            consumed = match.end()
            continue
        check_gap(position)
        if name in blocks:
            problems.add("duplicate_block", f"second <{name}> block; only the first is used", position, name)
        elif _ORDER[name] < highest:
            problems.add(
                "out_of_order",
                f"<{name}> comes after <{BLOCK_NAMES[highest]}>; the order is {', '.join(BLOCK_NAMES)}",
                position,
                name,
            )
        highest = max(highest, _ORDER[name])
        current = _Open(name, position, match.end())  # type: ignore[arg-type]

    if current is not None:
        problems.add("unclosed_block", f"<{current.name}> is never closed", current.start, current.name)
        unclosed.add(current.name)
    else:
        check_gap(len(text))

    previous_end = 0
    for name in BLOCK_NAMES:
        if name in blocks:
            previous_end = blocks[name].end
        elif name not in unclosed:
            problems.add("missing_block", f"no <{name}>...</{name}> block", previous_end, name)
    return blocks


def _parse_payoff(content: str, offset: int, space: StrategySpace, problems: _Problems) -> PayoffMatrix | None:
    """Strict JSON (no duplicate keys, no NaN/Infinity) with exactly the space's keys and numbers."""
    if _too_deep(content):
        problems.add(
            "payoff_too_deep",
            f"payoff is nested more than {MAX_JSON_DEPTH} brackets deep; a payoff matrix is 2 deep",
            offset,
            "payoff",
        )
        return None
    try:  # integers parse as floats, so a huge one becomes inf (reported) instead of raising
        data = json.loads(content, object_pairs_hook=_Pairs, parse_constant=_NonFinite, parse_int=float)
    except json.JSONDecodeError as exc:
        problems.add("payoff_json", f"payoff is not strict JSON: {exc.msg}", offset + exc.pos, "payoff")
        return None
    except (ValueError, RecursionError, MemoryError) as exc:
        problems.add("payoff_json", f"payoff is not strict JSON: {exc}", offset, "payoff")
        return None
    if not isinstance(data, _Pairs):
        problems.add("payoff_json", f"payoff must be a JSON object, got {_json_type(data)}", offset, "payoff")
        return None

    locate = _Locator(content, offset)
    before = problems.total
    cells = _check_keys(data, space.keys, "", locate, problems)
    for key, value in cells.items():
        if not isinstance(value, _Pairs):
            problems.add(
                "payoff_value", f"{key} must be an object with LLM and user, got {_json_type(value)}",
                lambda key=key: locate(key), "payoff", key,
            )
            continue
        numbers = _check_keys(value, ("LLM", "user"), key, locate, problems)
        for sub, number in numbers.items():
            _check_number(number, f"{key}.{sub}", lambda sub=sub, key=key: locate(sub, after=key), problems)
    if problems.total != before:
        return None
    try:
        return PayoffMatrix.from_dict({k: dict(v) for k, v in cells.items()}, space)
    except PayoffError as exc:
        problems.add("payoff_value", str(exc), offset, "payoff", exc.key)
        return None


def _too_deep(content: str) -> bool:
    """Bracket depth outside JSON strings exceeds `MAX_JSON_DEPTH` (C-speed scans only)."""
    if content.count("[") + content.count("{") <= MAX_JSON_DEPTH:
        return False
    brackets = _NOT_BRACKETS.sub("", _JSON_STRINGS.sub("", content))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


class _Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its ordered (key, value) pairs, so duplicate keys stay visible."""


@dataclass(frozen=True, slots=True)
class _NonFinite:
    literal: str


def _json_type(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, _NonFinite):
        return value.literal
    return "a number"


class _Locator:
    """Best-effort character positions of keys inside the payoff, found by a literal search."""

    def __init__(self, content: str, offset: int) -> None:
        self._content = content
        self._offset = offset

    def __call__(self, key: str | None, after: str | None = None, occurrence: int = 1) -> int:
        start = 0
        if after is not None:
            start = self._find(after, 0, 1)
            if start < 0:
                return self._offset
        found = self._find(key or "", start, occurrence) if key else -1
        return self._offset + (found if found >= 0 else start)

    def _find(self, key: str, start: int, occurrence: int) -> int:
        """Start of the ``occurrence``-th ``"key"`` followed by a colon at or after ``start``."""
        quoted = f'"{key}"'
        while True:
            found = self._content.find(quoted, start)
            if found < 0:
                return -1
            start = found + len(quoted)
            if _COLON.match(self._content, start):
                occurrence -= 1
                if occurrence == 0:
                    return found


def _check_keys(
    pairs: _Pairs,
    expected: Iterable[str],
    parent: str,
    locate: _Locator,
    problems: _Problems,
) -> dict[str, Any]:
    """Report missing, unexpected and duplicate keys of one object; return the expected ones found.

    An object with far more keys than expected gets one problem instead of one per key.
    """
    expected = tuple(expected)
    where = f"{parent}." if parent else ""
    if len(pairs) > 4 * len(expected):
        problems.add(
            "payoff_keys",
            f"{parent or 'payoff'} has {len(pairs)} keys; it must have exactly {', '.join(expected)}",
            lambda: locate(parent or None),
            "payoff",
            parent or None,
        )
        return {}
    seen: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for key, value in pairs:
        counts[key] = counts.get(key, 0) + 1
        if counts[key] > 1:
            problems.add(
                "payoff_keys",
                lambda key=key: f"duplicate key {where}{_short(key)}",
                lambda key=key, n=counts[key]: locate(key, after=parent or None, occurrence=n),
                "payoff",
                f"{where}{_short(key)}",
            )
        elif key in expected:
            seen[key] = value
        else:
            problems.add(
                "payoff_keys",
                lambda key=key: f"unexpected key {where}{_short(key)!r}{_hint(key, expected)}",
                lambda key=key: locate(key, after=parent or None),
                "payoff",
                f"{where}{_short(key)}",
            )
    for key in expected:
        if key not in seen:
            problems.add(
                "payoff_keys", f"missing key {where}{key}", lambda: locate(parent or None), "payoff", f"{where}{key}"
            )
    return {key: seen[key] for key in expected if key in seen}


def _short(key: str, limit: int = 40) -> str:
    """A key cut to ``limit`` characters for messages (keys are model output, of any length)."""
    return key if len(key) <= limit else key[:limit] + "…"


def _hint(key: str, expected: tuple[str, ...]) -> str:
    folded = key.casefold() if len(key) <= 40 else ""
    return next((f"; did you mean {e!r}?" for e in expected if e.casefold() == folded), "")


def _check_number(value: Any, cell: str, position: Callable[[], int], problems: _Problems) -> None:
    if isinstance(value, _NonFinite):
        problems.add("payoff_not_finite", f"{cell} is {value.literal}; payoffs must be finite", position, "payoff", cell)
    elif isinstance(value, bool) or not isinstance(value, float):
        problems.add("payoff_value", f"{cell} must be a number, got {_json_type(value)}", position, "payoff", cell)
    elif not math.isfinite(value):
        problems.add("payoff_not_finite", f"{cell} is too large to be finite", position, "payoff", cell)


@lru_cache(maxsize=64)
def _patterns(space: StrategySpace) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The space's keys as whole words, and the token pattern of the choice heuristic."""
    keys = "|".join(re.escape(k) for k in sorted(space.keys, key=len, reverse=True))
    tokens = re.compile(
        rf"(?P<key>\b(?-i:{keys})\b)|(?P<cue>\b(?:{_CUE_WORDS})\b)|(?P<arrow>→)|(?P<stop>{_SENTENCE_END})",
        re.IGNORECASE,
    )
    return re.compile(rf"\b(?:{keys})\b"), tokens


def _chosen_key(
    content: str, offset: int, block_start: int, space: StrategySpace, problems: _Problems
) -> str | None:
    """The cell key the <analyze> block settles on.

    Heuristic, in one pass over sentences (ended by ``.``, ``!`` or ``?`` before a space, or a
    newline):

    * A choice cue is "chosen key", choose/chose/chosen, pick, recommend, select, go/went with,
      or final (any inflection), unless a "not"/"n't"/"never" precedes it (up to one word
      between). The cue names the first key after it in the same sentence ("I pick DQ_DA over
      VQ_DA"), else the last key before it ("DQ_DA is chosen").
    * An arrow ``→`` names a key only when the key follows it directly ("sum is 8.5 → DQ_DA").
    * One distinct key named by cues is the choice; two or more is ``ambiguous_chosen_key``.
      With no cue naming a key, the last key mentioned is the choice; with no key at all,
      ``no_chosen_key``. Keys are matched exactly as the space spells them (case-sensitive).
    * A block that mentions only one distinct key chooses it, whatever the cues say; one that
      mentions several and needs more than `MAX_CHOICE_TOKENS` keys, cues and sentence ends to
      read is reported ambiguous rather than read on (it is no honest analysis, and the bound
      keeps hostile text linear and fast).
    """
    key_pattern, token_pattern = _patterns(space)
    mentioned = key_pattern.findall(content)
    if not mentioned:
        problems.add("no_chosen_key", f"<analyze> names none of the keys {', '.join(space.keys)}", block_start, "analyze")
        return None
    if len(set(mentioned)) == 1:
        return mentioned[0]

    choices: list[tuple[str, int]] = []
    conflict: list[int] = []
    sentence_keys: list[tuple[str, int]] = []
    pending: list[int] = []
    arrow_end = -1

    def choose(found: tuple[str, int]) -> None:
        if choices and found[0] != choices[0][0] and not conflict:
            conflict.append(found[1])
        choices.append(found)

    def close_sentence() -> None:
        for cue_start in pending:
            before = [k for k in sentence_keys if k[1] < cue_start]
            if before:
                choose(before[-1])
        pending.clear()
        sentence_keys.clear()

    for count, match in enumerate(token_pattern.finditer(content)):
        if count >= MAX_CHOICE_TOKENS or conflict:
            break
        kind = match.lastgroup
        if kind == "key":
            found = (match.group(), match.start())
            if arrow_end >= 0 and match.start() - arrow_end <= 8 and not any(
                c.isalnum() for c in content[arrow_end:match.start()]
            ):
                choose(found)
            arrow_end = -1
            if pending:
                choose(found)
                pending.clear()
            sentence_keys.append(found)
        elif kind == "cue":
            if not _NEGATION.search(content, max(0, match.start() - 24), match.start()):
                pending.append(match.start())
        elif kind == "arrow":
            arrow_end = match.end()
        else:
            close_sentence()
            arrow_end = -1
    else:
        close_sentence()
        if choices and not conflict:
            return choices[0][0]
        if not choices:
            return mentioned[-1]

    if conflict:
        distinct = ", ".join(dict.fromkeys(k for k, _ in choices))
        message = f"<analyze> names several keys as the choice: {distinct}"
        problems.add("ambiguous_chosen_key", message, offset + conflict[0], "analyze")
    else:
        keys = ", ".join(dict.fromkeys(mentioned))
        message = f"<analyze> mentions {keys} over more than {MAX_CHOICE_TOKENS} keys, cues and sentences"
        problems.add("ambiguous_chosen_key", message, block_start, "analyze")
    return None
