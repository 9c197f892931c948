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
* The payoff goes to ``json.loads`` and ``ast.literal_eval`` unguarded, exactly as in the research
  code: both refuse deep nesting cheaply by themselves (json's scanner raises `RecursionError`,
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
    "bracket_depth",
    "paper_block",
    "paper_format_matches",
    "paper_parse",
    "paper_parse_payoff",
    "paper_reasoning",
]

PAPER_KEYS = frozenset({"DQ_AQ", "DQ_CQ", "DQ_DA", "VQ_AQ", "VQ_CQ", "VQ_DA"})
_SUBKEYS = frozenset({"LLM", "user"})
_NUMBERS = (float, int)
MAX_PAYOFF_DEPTH = 200
MAX_LITERAL_CHARS = 100_000

_JUNCTIONS = (("</thinking>", "<payoff>"), ("</payoff>", "<analyze>"), ("</analyze>", "<response>"))
_SPACES = re.compile(r"\s*")
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})
_BRACKETS = re.compile(r"[\[\]{}()]")


def paper_block(text: str, tag: str) -> str | None:
    """Content of the first ``<tag>...</tag>`` (non-greedy, across newlines), stripped; None if absent."""
    opening, closing = f"<{tag}>", f"</{tag}>"
    start = text.find(opening)
    if start < 0:
        return None
    start += len(opening)
    end = text.find(closing, start)
    if end < 0:
        return None
    return text[start:end].strip()


def _junction_end(text: str, pos: int, closing: str, opening: str) -> int:
    r"""End of the first ``closing\s*opening`` at or after ``pos`` (-1 if none): ``str.find`` for the
    closing tag, then the whitespace run after it; runs after different closings never overlap."""
    while True:
        found = text.find(closing, pos)
        if found < 0:
            return -1
        after = _SPACES.match(text, found + len(closing)).end()
        if text.startswith(opening, after):
            return after + len(opening)
        pos = found + 1


def paper_format_matches(text: str) -> bool:
    """Whether ``text`` matches the research code's anchored four-block pattern (DOTALL|MULTILINE)."""
    if not text.startswith("<thinking>"):
        return False
    pos = len("<thinking>")
    for closing, opening in _JUNCTIONS:
        pos = _junction_end(text, pos, closing, opening)
        if pos < 0:
            return False
    while True:  # "</response>$": at the end of the text or before a newline (MULTILINE)
        found = text.find("</response>", pos)
        if found < 0:
            return False
        after = found + len("</response>")
        if after == len(text) or text[after] == "\n":
            return True
        pos = found + 1


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


def _jsonish(text: str) -> Any:
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except Exception:
        pass
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
    try:
        data = _jsonish(text)
    except (ValueError, TypeError, RecursionError, MemoryError, OverflowError) as exc:
        return None, str(exc) or type(exc).__name__
    if not isinstance(data, dict):
        return None, f"payoff is a {type(data).__name__}, not an object"
    if data.keys() != PAPER_KEYS:
        return None, f"payoff keys mismatch: {sorted(set(map(str, data)) ^ PAPER_KEYS)}"
    for key, value in data.items():
        if not isinstance(value, dict):
            return None, f"payoff value for {key!r} must be a dict"
        if value.keys() != _SUBKEYS:
            return None, f"subkeys mismatch for {key!r}"
        if not (isinstance(value["LLM"], _NUMBERS) and isinstance(value["user"], _NUMBERS)):
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


def paper_parse(text: str) -> PaperParse:
    """Everything the research code extracts, with one search per tag (the first ``<response>``
    both ends the reasoning and opens the response block)."""
    cut = text.find("<response>")
    response = span = None
    if cut >= 0:
        end = text.find("</response>", cut + 10)
        if end >= 0:
            span = (cut + 10, end)
            response = text[cut + 10:end].strip()
    payoff_text = paper_block(text, "payoff")
    payoff, error = (None, "missing <payoff> block") if payoff_text is None else paper_parse_payoff(payoff_text)
    if response is None:
        error = error or "missing <response> block"
    return PaperParse(
        format_matches=paper_format_matches(text),
        response=response,
        payoff_text=payoff_text,
        payoff=payoff,
        payoff_error=error,
        reasoning=text if cut < 0 else text[:cut],
        response_span=span,
    )
