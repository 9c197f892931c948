"""The research code's parsing rules (SPEC section 2), reproduced exactly and in linear time.

The research code uses backtracking regular expressions (``<tag>(.*?)</tag>`` and one anchored
pattern for the whole answer) that take quadratic or worse time on hostile text, and parses the
payoff with ``json`` then ``ast.literal_eval``, which recurse. These functions give the same
answers on every string while scanning each string a constant number of times:

* ``<tag>(.*?)</tag>`` first match == first ``<tag>``, then the first ``</tag>`` after it (when
  that first opening has no closing after it, no later opening has one either).
* The anchored format pattern is a chain of lazy gaps between fixed junctions
  (``</thinking>\\s*<payoff>`` ...); taking the earliest occurrence of each junction is optimal,
  because every later constraint only asks to start after the previous junction's end.
  `paper_parse` finds each tag once and the format check reuses those positions.
* The payoff goes to ``json.loads`` (its scanner, called directly) and ``ast.literal_eval``
  unguarded, exactly as in the research code: both refuse deep nesting cheaply by themselves (json's scanner raises `RecursionError`,
  Python's tokenizer refuses more than `MAX_PAYOFF_DEPTH` nested brackets), whereas a bracket
  count taken beforehand would refuse payoffs the research code accepts (brackets inside strings
  or comments, or a deep value under a key that a later duplicate key overrides).

One deliberate deviation, for bounded time: a payoff block longer than `MAX_LITERAL_CHARS` that
is not JSON is refused without ``ast.literal_eval``, which can spend seconds on a few hostile
megabytes (the research code would too, and then reject almost all of them). A valid matrix is
about 300 characters; only a Python-literal matrix padded past that size scores differently.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_LITERAL_CHARS",
    "MAX_PAYOFF_DEPTH",
    "PAPER_KEYS",
    "PaperParse",
    "PaperScan",
    "bracket_depth",
    "paper_block",
    "paper_format_matches",
    "paper_parse",
    "paper_parse_payoff",
    "paper_reasoning",
    "paper_scan",
]

PAPER_KEYS = frozenset({"DQ_AQ", "DQ_CQ", "DQ_DA", "VQ_AQ", "VQ_CQ", "VQ_DA"})
_NUMBER_TYPES = frozenset({float, int, bool})  # isinstance(value, (float, int)) for decoded JSON
MAX_PAYOFF_DEPTH = 200
MAX_LITERAL_CHARS = 100_000

_SPACES = re.compile(r"\s*")
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_BRACKETS = re.compile(r"[\[\]{}()]")
_SCAN_JSON = json.JSONDecoder().scan_once


def paper_block(text: str, tag: str) -> str | None:
    """Content of the first ``<tag>...</tag>`` (non-greedy, across newlines), stripped; None if absent."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.find(opening)
    if start < 0:
        return None
    start += len(opening)
    end = _find_tag(text, closing, start)
    if end < 0:
        return None
    return text[start:end].strip()


def _find_tag(text: str, tag: str, start: int) -> int:
    """``text.find(tag, start)`` for a tag starting with "<", cheap when the next "<" opens it (as a
    closing tag usually does: prose and the payoff's JSON rarely hold a "<"): searching for one
    character is a memchr, much faster than a search for the whole tag."""
    found = text.find("<", start)
    if found < 0 or text.startswith(tag, found):
        return found  # every occurrence of the tag starts with a "<", so none comes earlier
    return text.find(tag, found + 1)


def _junction_at(text: str, found: int, closing: str, opening: str) -> int:
    r"""End of ``opening`` when the ``closing`` at ``found`` is followed by ``\s*opening``, else -1."""
    after = found + len(closing)
    if text.startswith(opening, after):
        return after + len(opening)
    if text.startswith(opening, after + 1) and text[after].isspace():  # one newline, usually
        return after + 1 + len(opening)
    after = _SPACES.match(text, after).end()
    return after + len(opening) if text.startswith(opening, after) else -1


def _junction_end(text: str, pos: int, closing: str, opening: str, found: int | None = None) -> int:
    r"""End of the first ``closing\s*opening`` at or after ``pos`` (-1 if none): ``str.find`` for the
    closing tag, then the whitespace run after it; runs after different closings never overlap.
    ``found``, when given, is ``text.find(closing, pos)`` already known to the caller."""
    if found is None:
        found = text.find(closing, pos)
    while found >= 0:
        end = _junction_at(text, found, closing, opening)
        if end >= 0:
            return end
        found = text.find(closing, found + 1)
    return -1


def _junction_before(text: str, pos: int, closing: str, opening: str, first_opening: int) -> int:
    r"""`_junction_end` when ``first_opening`` is ``text.find(opening)``, reading backwards from it.

    Every ``opening`` of a junction starts at or after ``first_opening``, so a ``closing`` that ends
    before it can only be the junction's if nothing but whitespace separates them: the last such
    closing, when the gap is blank, is the first junction (an earlier closing would have this one
    in its gap). Only that gap is read; otherwise the forward search decides."""
    if first_opening >= pos:
        found = text.rfind(closing, pos, first_opening)
        if found >= 0:
            gap_start = found + len(closing)
            # str.isspace is exactly the regex's \s (both are Py_UNICODE_ISSPACE).
            if gap_start == first_opening or text[gap_start:first_opening].isspace():
                return first_opening + len(opening)
    return _junction_end(text, pos, closing, opening)


def _format_matches(text: str, payoff_open: int, payoff_close: int, response_open: int, response_close: int) -> bool:
    """`paper_format_matches` given the first ``<payoff>``, the first ``</payoff>`` after it, the
    first ``<response>`` and the first ``</response>`` after it (each -1 when absent), which
    `paper_parse` has found already: most junctions are then checked without scanning the text."""
    if payoff_open < 0 or response_open < 0 or not text.startswith("<thinking>"):
        return False
    pos = _junction_before(text, len("<thinking>"), "</thinking>", "<payoff>", payoff_open)
    if pos < 0:
        return False
    # The first "</payoff>" at or after the junction's end is the payoff block's own closing when
    # the junction opened the first "<payoff>".
    pos = _junction_end(text, pos, "</payoff>", "<analyze>", payoff_close if pos == payoff_open + 8 else None)
    if pos < 0:
        return False
    pos = _junction_before(text, pos, "</analyze>", "<response>", response_open)
    if pos < 0:
        return False
    # "</response>$": at the end of the text or before a newline (MULTILINE).
    found = response_close if pos == response_open + 10 else text.find("</response>", pos)
    while found >= 0:
        after = found + len("</response>")
        if after == len(text) or text[after] == "\n":
            return True
        found = text.find("</response>", found + 1)
    return False


def paper_format_matches(text: str) -> bool:
    """Whether ``text`` matches the research code's anchored four-block pattern (DOTALL|MULTILINE)."""
    payoff_open = text.find("<payoff>")
    payoff_close = -1 if payoff_open < 0 else _find_tag(text, "</payoff>", payoff_open + 8)
    response_open = text.find("<response>")
    response_close = -1 if response_open < 0 else _find_tag(text, "</response>", response_open + 10)
    return _format_matches(text, payoff_open, payoff_close, response_open, response_close)


def paper_reasoning(text: str) -> str:
    """Everything before the first literal ``<response>`` (the whole text when there is none)."""
    cut = text.find("<response>")
    return text if cut < 0 else text[:cut]


def bracket_depth(text: str) -> int:
    """The deepest running count of open brackets, ignoring strings: an upper bound, in one pass."""
    opens = text.count("{") + text.count("[") + text.count("(")
    if opens <= 2:
        return opens
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{(":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def _python_literal(stripped: str) -> Any:
    """The research code's fallback for a payoff that is not JSON: a Python literal, curly quotes
    straightened, round-tripped through JSON."""
    if len(stripped) > MAX_LITERAL_CHARS:
        raise ValueError(f"payoff is not JSON and longer than {MAX_LITERAL_CHARS} characters (Python-literal fallback skipped)")
    try:
        value = ast.literal_eval(stripped.translate(_CURLY))
    except Exception as exc:
        raise ValueError(f"cannot parse payoff as JSON or a Python literal: {exc}") from None
    return json.loads(json.dumps(value, ensure_ascii=False))


def paper_parse_payoff(text: str) -> tuple[dict[str, dict[str, Any]] | None, str]:
    """The research code's payoff parse: JSON, else a Python literal (curly quotes straightened);
    exactly the six keys, each a dict with exactly ``LLM`` and ``user`` whose values are ``int``
    or ``float`` (so ``true`` and NaN pass). Returns ``(data, "")`` or ``(None, reason)``."""
    stripped = text.strip()
    try:
        # json.loads(stripped), through the decoder's scanner: loads adds only checks that cannot
        # fail differently on a stripped string (a BOM is no JSON start either; trailing text can
        # only be "Extra data", never whitespace).
        data, end = _SCAN_JSON(stripped, 0)  # StopIteration when no JSON value starts at 0
        is_json = end == len(stripped)
    except Exception:
        is_json = False
    if not is_json:
        try:
            data = _python_literal(stripped)
        except (ValueError, TypeError, RecursionError, MemoryError, OverflowError) as exc:
            return None, str(exc) or type(exc).__name__
    # JSON decodes to exact builtin types (the literal fallback too, through its JSON round trip),
    # so exact type tests are the research code's isinstance checks: dict; int, float or bool.
    if type(data) is not dict:
        return None, f"payoff is a {type(data).__name__}, not an object"
    if data.keys() != PAPER_KEYS:
        return None, f"payoff keys mismatch: {sorted(set(map(str, data)) ^ PAPER_KEYS)}"
    for key, value in data.items():
        if type(value) is not dict:
            return None, f"payoff value for {key!r} must be a dict"
        if len(value) != 2 or "LLM" not in value or "user" not in value:  # keys == {"LLM", "user"}
            return None, f"subkeys mismatch for {key!r}"
        if type(value["LLM"]) not in _NUMBER_TYPES or type(value["user"]) not in _NUMBER_TYPES:
            return None, f"values in {key!r} must be float or int"
    return data, ""


@dataclass(frozen=True, slots=True)
class PaperParse:
    """What the research code extracts from one completion (None where it would raise)."""

    format_matches: bool
    response: str | None
    payoff_text: str | None
    payoff: dict[str, dict[str, Any]] | None
    payoff_error: str
    reasoning: str
    response_span: tuple[int, int] | None = None

    @property
    def scorable(self) -> bool:
        """False where the research code's ``try`` fails and every component becomes 0."""
        return self.response is not None and self.payoff is not None

    @property
    def format(self) -> float:
        """The research code's ``format_reward`` term (1.0 or 0.0)."""
        return 1.0 if self.format_matches and self.payoff is not None else 0.0


PaperScan = tuple[bool, int, int, str | None, dict[str, dict[str, Any]] | None, str]


def paper_scan(text: str) -> PaperScan:
    """What `paper_parse` finds, without copying the response and the reasoning out of ``text``:
    ``(format_matches, cut, end, payoff_text, payoff, payoff_error)``.

    ``cut`` is the first ``<response>`` (-1 if none): the reasoning is ``text[:cut]`` (all of
    ``text`` when -1). ``end`` is the first ``</response>`` after it (-1 if none): the response
    block is ``text[cut + 10:end].strip()`` when ``end >= 0``. One search per tag (the first
    ``<response>`` both ends the reasoning and opens the response block); the format check reuses
    the positions. ``payoff_error`` is also set when the response block is missing.
    """
    cut = text.find("<response>")
    end = -1 if cut < 0 else _find_tag(text, "</response>", cut + 10)
    payoff_open = text.find("<payoff>")
    payoff_close = -1 if payoff_open < 0 else _find_tag(text, "</payoff>", payoff_open + 8)
    if payoff_close < 0:
        payoff_text = None
        payoff, error = None, "missing <payoff> block"
    else:
        payoff_text = text[payoff_open + 8:payoff_close].strip()
        payoff, error = paper_parse_payoff(payoff_text)
    if end < 0:
        error = error or "missing <response> block"
    return _format_matches(text, payoff_open, payoff_close, cut, end), cut, end, payoff_text, payoff, error


def paper_parse(text: str) -> PaperParse:
    """Everything the research code extracts (`paper_scan`, with the blocks copied out)."""
    format_matches, cut, end, payoff_text, payoff, error = paper_scan(text)
    response = None if end < 0 else text[cut + 10:end].strip()
    span = None if end < 0 else (cut + 10, end)
    reasoning = text if cut < 0 else text[:cut]
    return PaperParse(format_matches, response, payoff_text, payoff, error, reasoning, span)
