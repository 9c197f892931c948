"""The four-block protocol as a grammar, rendered for each decoding engine.

One description (`ProtocolGrammar`: the strategy space, the payoff number format, caps on the free
text, the key order) is rendered as a GBNF grammar (llama.cpp's dialect, which xgrammar's EBNF and
llguidance's ``gbnf`` front end also read), as a regular expression for engines that take regexes,
and as a JSON schema of the payoff alone (for engines that constrain JSON only, such as Ollama's
``format``). Every string the grammar accepts is an answer `parse_answer` reads without a problem
and the research code's strict rules (`paper_parse`) accept; the tests check both.

What the grammar allows, and why:

- ``<thinking>`` holds free text without ``<`` (so no tag can open inside it), at most
  ``thinking_chars`` characters, starting with a visible character (an empty block is a problem).
- ``<payoff>`` holds one JSON object with exactly the space's keys (in the space's order, or in any
  order with ``key_order="free"``), each ``{"LLM": n, "user": n}`` with numbers in the declared range
  and precision, written as JSON numbers (no leading zeros, no exponent).
- ``<analyze>`` opens with ``Pareto frontier: KEY, KEY.`` (``frontier=True``) and ``Chosen key:
  KEY.`` (the sentences steering prefills), then free text that justifies the choice, at most
  ``analyze_chars`` characters (at most 4,000, which keeps the parser's choice heuristic within its
  bound). The free text comes after the key, not before: an engine whose lexer is greedy (such as
  llguidance) could not tell where free text before a fixed phrase ends.
  Its free text holds no ``<`` and no ``_``: every cell key contains ``_``, so the only keys
  ``<analyze>`` names are the frontier's and the chosen one, and the chosen key is unambiguous.
- ``<response>`` holds text without the protocol's tags: a ``<`` is allowed when the next character
  cannot start a tag (not ``/``, ``<``, ``a``, ``p``, ``r``, ``t``), so ``a < b`` and ``<5`` pass
  but ``<p>`` and ``</div>`` do not. ``response_chars`` caps it (None: the token budget does).
- Blocks follow each other with at most one newline between them, and nothing comes before the
  first or after the last, as the research code's format check requires.

Steering decodes in two stages, each with its own grammar (``stage``): ``payoff`` is ``<thinking>``
and ``<payoff>`` (stage 1); ``response`` continues after a prefilled ``<analyze>`` opening that
already names the chosen key: the rest of the analysis, ``</analyze>`` and the ``<response>``
block (stage 2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, Literal

from gtalign.game import DEFAULT_SPACE, StrategySpace

__all__ = ["STAGES", "GrammarError", "PayoffNumbers", "ProtocolGrammar", "Stage"]

Stage = Literal["full", "payoff", "response"]
STAGES: tuple[Stage, ...] = ("full", "payoff", "response")
KeyOrder = Literal["fixed", "free"]

_TEXT_NOT = "<"
_ANALYZE_NOT = "<_"
_TAG_STARTS = "/<aprt"
_SPACE = "".join(c for c in map(chr, range(0x3001)) if re.fullmatch(r"\s", c))
"""Every character Python's ``\\s`` matches (what the parser counts as blank), so a block's first
visible character is visible to the parser too."""


class GrammarError(ValueError):
    """A grammar option out of range, or a rendering an option does not allow."""


# A small grammar tree, rendered to GBNF (named rules) and to one regex (rules inlined).


@dataclass(frozen=True, slots=True)
class _Lit:
    text: str


@dataclass(frozen=True, slots=True)
class _Class:
    """One character: in ``chars`` (ranges as ``a-z`` pairs in ``ranges``), or not in them."""

    chars: str = ""
    ranges: tuple[tuple[str, str], ...] = ()
    negated: bool = False


@dataclass(frozen=True, slots=True)
class _Seq:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Rep:
    item: Any
    low: int
    high: int | None


@dataclass(frozen=True, slots=True)
class _Ref:
    name: str


def _seq(*items: Any) -> Any:
    flat: list[Any] = []
    for item in items:
        if isinstance(item, _Seq):
            flat.extend(item.items)
        elif not (isinstance(item, _Lit) and not item.text):
            flat.append(item)
    merged: list[Any] = []
    for item in flat:  # adjacent literals become one
        if merged and isinstance(item, _Lit) and isinstance(merged[-1], _Lit):
            merged[-1] = _Lit(merged[-1].text + item.text)
        else:
            merged.append(item)
    if not merged:
        return _Lit("")
    return merged[0] if len(merged) == 1 else _Seq(tuple(merged))


def _alt(*items: Any) -> Any:
    unique = tuple(dict.fromkeys(items))
    return unique[0] if len(unique) == 1 else _Alt(unique)


def _opt(item: Any) -> _Rep:
    return _Rep(item, 0, 1)


_DIGIT = _Class(ranges=(("0", "9"),))


def _digits(low: str, high: str) -> _Class | _Lit:
    return _Lit(low) if low == high else _Class(ranges=((low, high),))


def _same_length_range(low: str, high: str) -> list[Any]:
    """Alternatives matching the decimal integers from ``low`` to ``high``, both of one length."""
    if len(low) == 1:
        return [_digits(low, high)]
    if low[0] == high[0]:
        return [_seq(_Lit(low[0]), rest) for rest in _same_length_range(low[1:], high[1:])]
    out: list[Any] = []
    tail = len(low) - 1
    first = int(low[0])
    if low[1:] != "0" * tail:
        out += [_seq(_Lit(low[0]), rest) for rest in _same_length_range(low[1:], "9" * tail)]
        first += 1
    last = int(high[0])
    high_full = high[1:] == "9" * tail
    if not high_full:
        last -= 1
    if first <= last:
        out.append(_seq(_digits(str(first), str(last)), *([_DIGIT] * tail)))
    if not high_full:
        out += [_seq(_Lit(high[0]), rest) for rest in _same_length_range("0" * tail, high[1:])]
    return out


def _integer_range(low: int, high: int) -> Any:
    """The decimal integers ``low..high`` (``0 <= low <= high``), without leading zeros."""
    alternatives: list[Any] = []
    start = low
    while start <= high:
        end = min(high, 10 ** len(str(start)) - 1)
        alternatives += _same_length_range(str(start), str(end))
        start = end + 1
    return _alt(*alternatives)


def _magnitude(low: int, high: int, decimals: int) -> Any:
    """Numbers ``m`` with ``low <= m <= high`` (``0 <= low <= high``) and at most ``decimals`` places."""
    if decimals == 0:
        return _integer_range(low, high)
    any_fraction = _opt(_seq(_Lit("."), _Rep(_DIGIT, 1, decimals)))
    zero_fraction = _opt(_seq(_Lit("."), _Rep(_Lit("0"), 1, decimals)))
    top = _seq(_Lit(str(high)), zero_fraction)
    if low == high:
        return top
    return _alt(_seq(_integer_range(low, high - 1), any_fraction), top)


@dataclass(frozen=True, slots=True)
class PayoffNumbers:
    """What a payoff number may be: a JSON number from ``low`` to ``high`` (integers, inclusive)
    with at most ``decimals`` places (the paper asks for at most one).

    >>> PayoffNumbers(0, 10, 1).pattern()
    '(?:[0-9](?:\\\\.[0-9]{1})?|10(?:\\\\.0{1})?)'
    """

    low: int = -10
    high: int = 10
    decimals: int = 1

    def __post_init__(self) -> None:
        for name in ("low", "high", "decimals"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise GrammarError(f"payoff numbers: {name} must be an integer, got {value!r}")
        if self.low > self.high:
            raise GrammarError(f"payoff numbers: low {self.low} is above high {self.high}")
        if max(abs(self.low), abs(self.high)) > 10**6:
            raise GrammarError(f"payoff numbers: bounds beyond 1e6 ({self.low}, {self.high}) make no payoff scale")
        if not 0 <= self.decimals <= 4:
            raise GrammarError(f"payoff numbers: decimals must be 0 to 4, got {self.decimals}")

    def node(self) -> Any:
        parts: list[Any] = []
        if self.high >= 0:
            parts.append(_magnitude(max(self.low, 0), self.high, self.decimals))
        if self.low < 0:
            parts.append(_seq(_Lit("-"), _magnitude(max(0, -self.high), -self.low, self.decimals)))
        return _alt(*parts)

    def pattern(self) -> str:
        """The numbers as a regular expression (Python's ``re`` dialect, no look-around)."""
        return _Regex({}).render(self.node())

    def accepts(self, value: float) -> bool:
        """Whether ``value`` is in range (precision aside): for checking a parsed payoff."""
        return self.low <= value <= self.high

    def to_json(self) -> dict[str, int]:
        return {"low": self.low, "high": self.high, "decimals": self.decimals}


@dataclass(frozen=True, slots=True)
class ProtocolGrammar:
    """The four-block answer as a grammar; see the module's docstring for what it allows.

    >>> grammar = ProtocolGrammar()
    >>> grammar.gbnf().splitlines()[0]
    'root ::= thinking nl payoff nl analyze nl response'
    >>> sorted(grammar.payoff_schema()["properties"])[:2]
    ['DQ_AQ', 'DQ_CQ']
    """

    space: StrategySpace = DEFAULT_SPACE
    numbers: PayoffNumbers = field(default_factory=PayoffNumbers)
    thinking_chars: int = 600
    analyze_chars: int = 400
    response_chars: int | None = None
    key_order: KeyOrder = "fixed"
    frontier: bool = True
    thinking_tokens: int | None = None
    analyze_tokens: int | None = None
    response_tokens: int | None = None
    """Token caps on the free text of ``<thinking>``, of ``<analyze>`` (after the chosen key) and
    of ``<response>`` (None: no cap). Only the Lark rendering (`lark`) carries them: a character
    cap lets a small model loop inside a block until its token budget runs out, a token cap ends
    the block and the closing tag follows."""

    def __post_init__(self) -> None:
        if not isinstance(self.space, StrategySpace):
            raise GrammarError(f"space must be a StrategySpace, got {type(self.space).__name__}")
        if not isinstance(self.numbers, PayoffNumbers):
            raise GrammarError(f"numbers must be PayoffNumbers, got {type(self.numbers).__name__}")
        for name, most in (("thinking_chars", 100_000), ("analyze_chars", 4_000), ("response_chars", 100_000)):
            value = getattr(self, name)
            if value is None and name == "response_chars":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise GrammarError(f"{name} must be an integer from 1 to {most}, got {value!r}")
        for name in ("thinking_tokens", "analyze_tokens", "response_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000):
                raise GrammarError(f"{name} must be None or an integer from 1 to 100000, got {value!r}")
        if self.key_order not in ("fixed", "free"):
            raise GrammarError(f"key_order must be 'fixed' or 'free', got {self.key_order!r}")
        if self.key_order == "free" and len(self.space.keys) > 12:
            raise GrammarError(f"key_order='free' needs one rule per subset of keys: {len(self.space.keys)} keys are too many (at most 12)")

    # The rules, shared by every rendering.

    def _rules(self, stage: Stage, *, split: bool = False) -> dict[str, Any]:
        """The rule tree; ``split`` puts each free text in a rule of its own (`FREE_TEXT`), so a
        rendering can cap it (the language is the same either way)."""
        if stage not in STAGES:
            raise GrammarError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
        keys = self.space.keys
        key = _alt(*(_Lit(k) for k in keys))
        text = _Class(_TEXT_NOT, negated=True)
        visible = _Class(_TEXT_NOT + _SPACE, negated=True)
        calm = _Class(_ANALYZE_NOT, negated=True)
        unit = _alt(_Class(_TEXT_NOT, negated=True), _seq(_Lit("<"), _Class(_TAG_STARTS, negated=True)))
        first_unit = _alt(_Class(_TEXT_NOT + _SPACE, negated=True), _seq(_Lit("<"), _Class(_TAG_STARTS, negated=True)))
        rest = self.response_chars - 1 if self.response_chars is not None else None
        texts = {"thinking_text": _seq(_opt(_Class("\n ")), visible, _Rep(text, 0, self.thinking_chars - 1)),
                 "response_text": _seq(_opt(_Class("\n ")), first_unit, _Rep(unit, 0, rest))}
        thinking_text, response_text = (_Ref(name) for name in texts) if split else texts.values()
        rules: dict[str, Any] = {
            "thinking": _seq(_Lit("<thinking>"), thinking_text, _Lit("</thinking>")),
            "payoff": _seq(_Lit("<payoff>"), _Ref("ws"), _Ref("matrix"), _Ref("ws"), _Lit("</payoff>")),
            "matrix": self._matrix(),
            "cell": _seq(_Lit('{"LLM":'), _Ref("sp"), _Ref("num"), _Lit(","), _Ref("sp"), _Lit('"user":'), _Ref("sp"), _Ref("num"), _Lit("}")),
            "num": self.numbers.node(),
            "key": key,
            "tail": _Rep(calm, 0, self.analyze_chars),
            "response": _seq(_Lit("<response>"), response_text, _Lit("</response>")),
            "nl": _opt(_Lit("\n")),
            "ws": _opt(_Class("\n ")),
            "sp": _opt(_Lit(" ")),
        }
        head = [_Lit("<analyze>"), _opt(_Class("\n "))]
        if self.frontier:
            head += [_Lit("Pareto frontier: "), _Ref("key"), _Rep(_seq(_Lit(", "), _Ref("key")), 0, len(keys) - 1), _Lit(". ")]
        rules["analyze"] = _seq(*head, _Lit("Chosen key: "), _Ref("key"), _Lit("."), _Ref("tail"), _Lit("</analyze>"))
        if split:
            rules.update(texts)
        if self.key_order == "free":
            rules.update(self._free_order_rules())
        if stage == "full":
            root = _seq(_Ref("thinking"), _Ref("nl"), _Ref("payoff"), _Ref("nl"), _Ref("analyze"), _Ref("nl"), _Ref("response"))
        elif stage == "payoff":
            root = _seq(_Ref("thinking"), _Ref("nl"), _Ref("payoff"))
        else:
            root = _seq(_Ref("tail"), _Lit("</analyze>"), _Ref("nl"), _Ref("response"))
        return {"root": root, **rules}

    def _pair(self, key: str) -> Any:
        return _seq(_Lit(f'"{key}":'), _Ref("sp"), _Ref("cell"))

    def _matrix(self) -> Any:
        if self.key_order == "free":
            return _seq(_Lit("{"), _Ref("ws"), _Ref(_subset_rule(self.space.keys, frozenset(self.space.keys))), _Ref("ws"), _Lit("}"))
        pairs: list[Any] = []
        for index, key in enumerate(self.space.keys):
            if index:
                pairs += [_Lit(","), _Ref("ws")]
            pairs.append(self._pair(key))
        return _seq(_Lit("{"), _Ref("ws"), *pairs, _Ref("ws"), _Lit("}"))

    def _free_order_rules(self) -> dict[str, Any]:
        """One rule per set of keys still to write: a key of the set, then the rest."""
        keys = self.space.keys
        rules: dict[str, Any] = {}
        for remaining in _subsets(keys):
            name = _subset_rule(keys, remaining)
            options = []
            for key in keys:
                if key not in remaining:
                    continue
                left = remaining - {key}
                options.append(_seq(self._pair(key), _Lit(","), _Ref("ws"), _Ref(_subset_rule(keys, left))) if left else self._pair(key))
            rules[name] = _alt(*options)
        return rules

    # Renderings.

    def gbnf(self, stage: Stage = "full") -> str:
        """The grammar in llama.cpp's GBNF (``root`` first), which xgrammar's ``Grammar.from_ebnf``
        and llguidance's ``gbnf`` front end read too."""
        rules = self._rules(stage)
        used = _reachable(rules)
        render = _Gbnf()
        return "".join(f"{name} ::= {render.render(rules[name])}\n" for name in rules if name in used)

    def regex(self, stage: Stage = "full") -> str:
        """The grammar as one regular expression (no look-around; Python ``re`` syntax, which the
        regex front ends of vLLM, SGLang and Outlines read). Only for the fixed key order: a free
        order would list every permutation of the keys."""
        if self.key_order == "free":
            raise GrammarError("key_order='free' has no regex form (it would list every permutation); use the GBNF grammar")
        rules = self._rules(stage)
        return _Regex(rules).render(rules["root"])

    def lark(self, stage: Stage = "full") -> str:
        """The grammar in llguidance's Lark, with the token caps: each free text is a rule
        ``name[max_tokens=N]: /regex/`` (one lexeme, capped), and the fixed structure between two
        free texts is one regex lexeme (a free text never ends in a fixed phrase it could swallow:
        llguidance's lexemes are greedy). The language is `gbnf`'s when no cap is hit, except that
        ``<response>`` holds no ``<`` (a greedy lexeme that took a ``<`` as text cannot give it back
        when ``/response>`` follows)."""
        rules = self._lark_rules(stage)
        caps = {"thinking_text": self.thinking_tokens, "tail": self.analyze_tokens, "response_text": self.response_tokens}
        return _Lark(rules, caps).render()

    def _lark_rules(self, stage: Stage) -> dict[str, Any]:
        """The split rule tree `lark` renders: ``<response>``'s text without ``<``."""
        rules = self._rules(stage, split=True)
        if "response_text" in rules:
            text = rules["response_text"]
            rules["response_text"] = _seq(text.items[0], _Class(_TEXT_NOT + _SPACE, negated=True),
                                          _Rep(_Class(_TEXT_NOT, negated=True), 0, text.items[2].high))
        return rules

    def skeleton(self, stage: Stage = "full") -> str:
        """The longest text the grammar fixes at ``stage``, its free texts left empty: the tags,
        the payoff with every number at its widest, a frontier naming every key. What a token
        budget must hold besides the free texts (`fit`).

        >>> ProtocolGrammar().skeleton("response")
        '</analyze>\\n<response></response>'
        """
        rules = self._rules(stage, split=True)
        return _Longest(rules).text(rules["root"])

    def fit(self, budget: int, count_tokens: Callable[[str], int], stage: Stage = "full", *,
            answer_budget: int | None = None) -> ProtocolGrammar | None:
        """This grammar with token caps that make an answer of ``stage`` close within ``budget``
        tokens, or None when even the fixed structure may not fit.

        The structure is `skeleton` counted by ``count_tokens`` (the backend's tokenizer), with a
        margin, since a constrained model may spell a tag in more tokens than the tokenizer would.
        The rest goes to the free texts: ``<thinking>`` up to 30% and ``<analyze>`` up to 15%
        (never above their character caps, which bound their tokens too), ``<response>`` the
        remainder. Caps already set are kept. Stage 1 of steering (``payoff``) is given the whole
        answer's budget, so it is split as the whole answer is; stage 2 (``response``) is given
        what is left: with ``answer_budget`` (the whole answer's) it keeps the caps the whole
        answer's split gives the analysis and the response when they fit what is left, so a
        steered answer is capped as a one-pass answer is; otherwise it splits what is left.

        >>> fitted = ProtocolGrammar().fit(512, lambda text: len(text) // 3)  # 3 characters a token
        >>> fitted.thinking_tokens, fitted.analyze_tokens, fitted.response_tokens
        (106, 53, 196)
        >>> ProtocolGrammar().fit(400, len) is None  # a token per character: 403 characters of structure
        True
        """
        if budget < 1:
            raise GrammarError(f"budget must be at least 1 token, got {budget}")
        layout: Stage = "full" if stage == "payoff" else stage
        structure = math.ceil(count_tokens(self.skeleton(layout)) * _STRUCTURE_MARGIN) + _STRUCTURE_SLACK
        if stage == "response" and answer_budget is not None and answer_budget >= budget:
            whole = self.fit(answer_budget, count_tokens, "full")
            if whole is not None and structure + whole.analyze_tokens + whole.response_tokens + 1 <= budget:  # type: ignore[operator]
                return replace(self, analyze_tokens=whole.analyze_tokens, response_tokens=whole.response_tokens)
        free = budget - structure - 1  # the end-of-turn token the mask forces after the last tag
        shares = {"thinking_tokens": 0.30, "analyze_tokens": 0.15} if layout == "full" else {"analyze_tokens": 0.20}
        if free < len(shares) + 1:
            return None
        caps: dict[str, int] = {}
        chars = {"thinking_tokens": self.thinking_chars, "analyze_tokens": self.analyze_chars}
        for name, share in shares.items():
            given = getattr(self, name)
            caps[name] = given if given is not None else max(1, min(chars[name], int(free * share)))
        if self.response_tokens is None:
            caps["response_tokens"] = max(1, free - sum(caps.values()))
        return replace(self, **caps)

    def payoff_schema(self) -> dict[str, Any]:
        """A JSON schema of the payoff object alone: every key required, no others, each
        ``{"LLM": number, "user": number}`` within the declared range (precision is not expressible
        for every engine, so it is left to the number's own format)."""
        number = {"type": "number", "minimum": self.numbers.low, "maximum": self.numbers.high}
        cell = {"type": "object", "properties": {"LLM": number, "user": number}, "required": ["LLM", "user"],
                "additionalProperties": False}
        return {"type": "object", "properties": {key: cell for key in self.space.keys}, "required": list(self.space.keys),
                "additionalProperties": False}

    def to_json(self) -> dict[str, Any]:
        """The options, JSON-ready (for records and logs)."""
        return {"question_types": list(self.space.question_types), "actions": list(self.space.actions),
                "numbers": self.numbers.to_json(), "thinking_chars": self.thinking_chars, "analyze_chars": self.analyze_chars,
                "response_chars": self.response_chars, "key_order": self.key_order, "frontier": self.frontier,
                "thinking_tokens": self.thinking_tokens, "analyze_tokens": self.analyze_tokens,
                "response_tokens": self.response_tokens}


_FREE_TEXTS = frozenset({"thinking_text", "tail", "response_text"})
_STRUCTURE_MARGIN = Fraction(11, 10)
_STRUCTURE_SLACK = 8


class _Longest:
    """The longest text a rule tree fixes, free texts left empty (`ProtocolGrammar.skeleton`):
    every choice takes its longest option, every bounded repetition its most, a character class
    a digit where it allows one (payoff numbers)."""

    def __init__(self, rules: Mapping[str, Any]) -> None:
        self.rules = rules

    def text(self, node: Any) -> str:
        if isinstance(node, _Lit):
            return node.text
        if isinstance(node, _Class):
            return _a_char(node)
        if isinstance(node, _Seq):
            return "".join(self.text(item) for item in node.items)
        if isinstance(node, _Alt):
            return max((self.text(item) for item in node.items), key=len)
        if isinstance(node, _Rep):
            if node.high is None:
                raise GrammarError("an unbounded repetition outside the free texts has no longest text")
            return self.text(node.item) * node.high
        if node.name in _FREE_TEXTS:
            return ""
        return self.text(self.rules[node.name])


def _a_char(node: _Class) -> str:
    """A character the class allows: a digit when it allows one, else the first it names."""
    for c in "8" + "\n " + "".join(chr(i) for i in range(33, 127)):
        inside = c in node.chars or any(low <= c <= high for low, high in node.ranges)
        if inside != node.negated:
            return c
    raise GrammarError(f"a character class allows no printable character: {node}")


def _subsets(keys: Sequence[str]) -> Iterator[frozenset[str]]:
    for mask in range(1, 1 << len(keys)):
        yield frozenset(key for bit, key in enumerate(keys) if mask >> bit & 1)


def _subset_rule(keys: Sequence[str], subset: frozenset[str]) -> str:
    mask = sum(1 << bit for bit, key in enumerate(keys) if key in subset)
    return f"pairs-{mask:x}"


def _reachable(rules: Mapping[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = ["root"]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(_refs(rules[name]))
    return seen


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, _Ref):
        yield node.name
    elif isinstance(node, (_Seq, _Alt)):
        for item in node.items:
            yield from _refs(item)
    elif isinstance(node, _Rep):
        yield from _refs(node.item)


_GBNF_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}
_CLASS_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "]": "\\]", "^": "\\^", "-": "\\-", "[": "\\["}


def _class_char(c: str) -> str:
    if c in _CLASS_ESCAPES:
        return _CLASS_ESCAPES[c]
    return c if " " <= c <= "~" else f"\\u{ord(c):04x}"


class _Gbnf:
    def render(self, node: Any) -> str:
        if isinstance(node, _Lit):
            return '"' + "".join(_GBNF_ESCAPES.get(c, c) for c in node.text) + '"'
        if isinstance(node, _Class):
            return _class(node)
        if isinstance(node, _Ref):
            return node.name
        if isinstance(node, _Seq):
            return " ".join(self._atom(item, in_seq=True) for item in node.items)
        if isinstance(node, _Alt):
            return " | ".join(self.render(item) for item in node.items)
        if isinstance(node, _Rep):
            return self._atom(node.item, in_seq=False) + _count(node.low, node.high)
        raise TypeError(node)

    def _atom(self, node: Any, *, in_seq: bool) -> str:
        text = self.render(node)
        if isinstance(node, _Alt) or (isinstance(node, _Seq) and not in_seq):
            return f"({text})"
        return text


class _Regex:
    def __init__(self, rules: Mapping[str, Any]) -> None:
        self.rules = rules

    def render(self, node: Any) -> str:
        if isinstance(node, _Lit):
            return re.escape(node.text)
        if isinstance(node, _Class):
            return _class(node)
        if isinstance(node, _Ref):
            return self.render(self.rules[node.name])
        if isinstance(node, _Seq):
            return "".join(self._atom(item) if isinstance(item, _Alt) else self.render(item) for item in node.items)
        if isinstance(node, _Alt):
            return "(?:" + "|".join(self.render(item) for item in node.items) + ")"
        if isinstance(node, _Rep):
            item = self.rules[node.item.name] if isinstance(node.item, _Ref) else node.item
            inner = self.render(item)
            if not (isinstance(item, _Class) or (isinstance(item, _Lit) and len(item.text) == 1)):
                inner = f"(?:{inner})"
            return inner + _count(node.low, node.high)
        raise TypeError(node)

    def _atom(self, node: Any) -> str:
        text = self.render(node)
        return text if text.startswith("(?:") else f"(?:{text})"


def _class(node: _Class) -> str:
    body = "".join(_class_char(c) for c in node.chars)
    body += "".join(f"{_class_char(a)}-{_class_char(b)}" for a, b in node.ranges)
    return f"[{'^' if node.negated else ''}{body}]"


def _count(low: int, high: int | None) -> str:
    if (low, high) == (0, 1):
        return "?"
    if high is None:
        return "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


_RUST_META = set("\\.+*?()|[]{}^$#&-~")
_RUST_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class _RustRegex(_Regex):
    """`_Regex` in the Rust ``regex`` dialect llguidance reads: literals escape only its meta
    characters (Python's ``re.escape`` also escapes spaces and newlines, which Rust refuses)."""

    def render(self, node: Any) -> str:
        if isinstance(node, _Lit):
            return "".join(_RUST_ESCAPES.get(c) or ("\\" + c if c in _RUST_META else c) if " " <= c or c in _RUST_ESCAPES
                           else f"\\u{ord(c):04x}" for c in node.text)
        return super().render(node)


class _Lark:
    """llguidance Lark from a split rule tree: the free texts (``caps``' names) and the rules of a
    free key order stay rules; every other rule is inlined, and consecutive inlined pieces become
    one regex lexeme."""

    def __init__(self, rules: Mapping[str, Any], caps: Mapping[str, int | None]) -> None:
        self.rules, self.caps = rules, caps
        self.kept = {name for name in rules if name in caps or name.startswith("pairs-")}
        self.regex = _RustRegex(rules)

    def render(self) -> str:
        used = _reachable(self.rules)
        lines = [f"start: {self.body(self.rules['root'])}"]
        for name in self.rules:
            if name in self.kept and name in used:
                cap = self.caps.get(name)
                head = f"{_lark_name(name)}[max_tokens={cap}]" if cap is not None else _lark_name(name)
                lines.append(f"{head}: {self.body(self.rules[name])}")
        return "\n".join(lines) + "\n"

    def regular(self, node: Any) -> bool:
        if isinstance(node, _Ref):
            return node.name not in self.kept and self.regular(self.rules[node.name])
        if isinstance(node, (_Seq, _Alt)):
            return all(self.regular(item) for item in node.items)
        if isinstance(node, _Rep):
            return self.regular(node.item)
        return True

    def flat(self, node: Any) -> list[Any]:
        if isinstance(node, _Ref) and node.name not in self.kept:
            return self.flat(self.rules[node.name])
        if isinstance(node, _Seq):
            return [piece for item in node.items for piece in self.flat(item)]
        return [node]

    def body(self, node: Any) -> str:
        if isinstance(node, _Alt) and not self.regular(node):
            return "(" + " | ".join(self.body(item) for item in node.items) + ")"
        if isinstance(node, _Rep) and not self.regular(node):
            return f"({self.body(node.item)}){_count(node.low, node.high)}"
        if isinstance(node, _Ref) and node.name in self.kept:
            return _lark_name(node.name)
        out: list[str] = []
        run: list[Any] = []
        for piece in [*self.flat(node), None]:
            if piece is not None and self.regular(piece):
                run.append(piece)
                continue
            if run:
                out.append("/" + self.regex.render(_seq(*run)).replace("/", "\\/") + "/")
                run = []
            if piece is not None:
                out.append(self.body(piece))
        return " ".join(out)


def _lark_name(name: str) -> str:
    return name.replace("-", "_")
