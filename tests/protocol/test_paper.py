"""The research code's parsing rules: the linear-time reimplementation agrees with the regexes."""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtalign.protocol import (
    PAPER_KEYS,
    paper_block,
    paper_format_matches,
    paper_parse,
    paper_parse_payoff,
    paper_reasoning,
)
from gtalign.protocol._paper import paper_scan

# --- reference semantics, written from SPEC section 2 with the research code's regexes ----------

FORMAT = re.compile(
    r"^<thinking>.*?</thinking>\s*<payoff>.*?</payoff>\s*<analyze>.*?</analyze>\s*<response>.*?</response>$",
    re.DOTALL | re.MULTILINE,
)
TAGS = ("thinking", "payoff", "analyze", "response")


def reference_block(text: str, tag: str) -> str | None:
    found = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return None if found is None else found.group(1).strip()


def reference_payoff(text: str) -> dict[str, Any] | None:
    """JSON, else a Python literal after straightening curly quotes, then a JSON round trip;
    exactly the six keys, each exactly LLM/user with int or float values."""
    stripped = text.strip()
    try:
        json.loads(stripped)
        encoded = stripped
    except Exception:
        straight = stripped
        for curly, plain in (("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'")):
            straight = straight.replace(curly, plain)
        try:
            encoded = json.dumps(ast.literal_eval(straight), ensure_ascii=False)
        except Exception:
            return None
    try:
        data = json.loads(encoded)
        if set(data.keys()) != PAPER_KEYS:
            return None
        for value in data.values():
            if not isinstance(value, dict) or set(value.keys()) != {"LLM", "user"}:
                return None
            if not all(isinstance(v, (float, int)) for v in value.values()):
                return None
    except Exception:
        return None
    return data


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and keeps bool apart from int."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# --- format and blocks -----------------------------------------------------------------------------

FRAGMENTS = [
    *(f"<{t}>" for t in TAGS), *(f"</{t}>" for t in TAGS),
    "<", ">", "/", "</", "thinking", "response", " ", "\n", "\t", "\r", "\x0b", "a", "b", "\n\n", "x\n",
]
tag_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=24).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag_soup)
def test_format_matches_the_research_regex(text: str) -> None:
    assert paper_format_matches(text) == bool(FORMAT.match(text))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TAGS), min_size=4, max_size=4), st.lists(st.sampled_from(FRAGMENTS), min_size=9, max_size=9))
def test_format_on_near_valid_answers(order: list[str], gaps: list[str]) -> None:
    text = gaps[0]
    for i, tag in enumerate(order):
        text += f"<{tag}>{gaps[2 * i + 1]}</{tag}>{gaps[2 * i + 2]}"
    assert paper_format_matches(text) == bool(FORMAT.match(text))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tag_soup)
def test_block_and_reasoning_match_the_research_code(text: str) -> None:
    for tag in TAGS:
        assert paper_block(text, tag) == reference_block(text, tag)
    assert paper_reasoning(text) == text.split("<response>")[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<thinking>t</thinking><payoff>p</payoff><analyze>a</analyze><response>r</response>", True),
        ("<thinking>t</thinking> \n<payoff>p</payoff>\n<analyze>a</analyze>\t<response>r</response>", True),
        ("<thinking>t</thinking><payoff>p</payoff><analyze>a</analyze><response>r</response>\ntrailing", True),
        ("<thinking>t</thinking><payoff>p</payoff><analyze>a</analyze><response>r</response> trailing", False),
        (" <thinking>t</thinking><payoff>p</payoff><analyze>a</analyze><response>r</response>", False),
        ("<thinking>t</thinking>x<payoff>p</payoff><analyze>a</analyze><response>r</response>", False),
        ("<thinking><response></thinking><payoff></payoff><analyze></analyze><response>r</response>", True),
    ],
)
def test_format_examples(text: str, expected: bool) -> None:
    assert paper_format_matches(text) is expected
    assert bool(FORMAT.match(text)) is expected


def test_smuggled_response_shrinks_the_reasoning() -> None:
    text = "<thinking>long <response> thoughts</thinking><payoff>{}</payoff><analyze>a</analyze><response>r</response>"
    assert paper_reasoning(text) == "<thinking>long "
    assert paper_block(text, "response") == "thoughts</thinking><payoff>{}</payoff><analyze>a</analyze><response>r"


# --- the payoff parse ------------------------------------------------------------------------------

CELLS = {k: {"LLM": 1.5, "user": 2} for k in sorted(PAPER_KEYS)}
VALID = json.dumps(CELLS)
BODY = VALID[1:-1]


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        "  \n" + VALID + "\n ",
        repr(CELLS),
        repr(CELLS).replace("'", "\u2018", 1).replace("'", "\u2019", 1),
        VALID.replace('"', "\u201c", 1).replace('"', "\u201d", 1),
        VALID.replace("1.5", "true"),
        VALID.replace("1.5", "NaN"),
        VALID.replace("1.5", "-Infinity"),
        repr(CELLS).replace("1.5", "True"),
        repr(CELLS).replace("1.5", "float('nan')"),
        VALID.replace("1.5", '"1.5"'),
        VALID.replace("1.5", "null"),
        VALID.replace('"DQ_AQ"', '"DQ_XX"'),
        VALID.replace('"user": 2}, "DQ_CQ"', '"user": 2, "x": 0}, "DQ_CQ"'),
        VALID[:-1] + ', "VQ_QQ": {"LLM": 1, "user": 1}}',
        VALID[:-1] + ',}',
        repr(CELLS)[:-1] + ",}",
        "{" + BODY + ', "DQ_AQ": {"LLM": 9, "user": 9}}',
        '{"DQ_AQ": ' + "[" * 300 + "]" * 300 + ", " + BODY + "}",
        '{"DQ_AQ": "' + "[" * 300 + '", ' + BODY + "}",
        "{'DQ_AQ': '" + "(" * 300 + "', " + BODY + "}",
        "{" + BODY + ", # " + "[" * 300 + "\n}",
        "[" + VALID + "]",
        "{1: 2}",
        "{(1, 2): 3}",
        "{'DQ_AQ': {1, 2}}",
        "{" + ", ".join(f"'{k}': {{'LLM': 1+2j, 'user': 1}}" for k in sorted(PAPER_KEYS)) + "}",
        "```json\n" + VALID + "\n```",
        "",
        "\x00" + VALID,
        "[" * 10_000,
        "(" * 10_000 + ")" * 10_000,
        '{"a":' * 10_000 + "1" + "}" * 10_000,
    ],
)
def test_payoff_parse_matches_the_research_semantics(text: str) -> None:
    data, reason = paper_parse_payoff(text)
    expected = reference_payoff(text)
    assert (data is None) == (expected is None), reason
    assert (reason == "") == (data is not None)
    if data is not None:
        assert same(data, expected)


def test_payoff_quirks_are_kept() -> None:
    data, _ = paper_parse_payoff(VALID.replace("1.5", "true", 1))
    assert data is not None and data["DQ_AQ"]["LLM"] is True
    data, _ = paper_parse_payoff(VALID.replace("1.5", "NaN", 1))
    assert data is not None and math.isnan(data["DQ_AQ"]["LLM"])
    data, _ = paper_parse_payoff("{" + BODY + ', "DQ_AQ": {"LLM": 9, "user": 9}}')
    assert data is not None and data["DQ_AQ"] == {"LLM": 9, "user": 9}


payoff_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10), st.booleans(), st.none(), st.text(max_size=3)
)
cell = st.dictionaries(st.sampled_from(["LLM", "user", "llm", "score"]), payoff_values, min_size=1, max_size=3)
key_sets = st.sampled_from([sorted(PAPER_KEYS), sorted(PAPER_KEYS)[1:], [*sorted(PAPER_KEYS), "EXTRA"]])


@st.composite
def payoff_texts(draw: st.DrawFn) -> str:
    keys = draw(key_sets)
    valid_cells = draw(st.booleans())
    data = {k: ({"LLM": draw(payoff_values), "user": draw(payoff_values)} if valid_cells else draw(cell)) for k in keys}
    style = draw(st.sampled_from(["json", "python", "curly", "single"]))
    if style == "json":
        return json.dumps(data)
    if style == "python":
        return repr(data)
    if style == "curly":
        return json.dumps(data).replace('"', "\u201c", 2)
    return json.dumps(data).replace('"', "'")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payoff_texts())
def test_payoff_parse_agrees_on_generated_payoffs(text: str) -> None:
    data, _ = paper_parse_payoff(text)
    expected = reference_payoff(text)
    assert (data is None) == (expected is None)
    if data is not None:
        assert same(data, expected)


answer_parts = st.sampled_from(["", " ", "\n", "\t\n ", "x", "<", VALID, repr(CELLS), "{oops", *FRAGMENTS])


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(tag_soup, st.lists(answer_parts, max_size=12).map("".join), st.builds(
    lambda gaps, order: gaps[0] + "".join(f"<{tag}>{gaps[i + 1]}</{tag}>{gaps[i + 5]}" for i, tag in enumerate(order)),
    st.lists(answer_parts, min_size=9, max_size=9), st.permutations(TAGS),
)))
def test_paper_parse_and_scan_match_the_research_code(text: str) -> None:
    """Every field, however the positions found once are reused (format check, blocks, reasoning)."""
    parsed = paper_parse(text)
    assert parsed.format_matches == bool(FORMAT.match(text)) == paper_format_matches(text)
    assert parsed.response == reference_block(text, "response")
    assert parsed.payoff_text == reference_block(text, "payoff")
    assert parsed.reasoning == text.split("<response>")[0]
    expected = None if parsed.payoff_text is None else reference_payoff(parsed.payoff_text)
    assert (parsed.payoff is None) == (expected is None) and (expected is None or same(parsed.payoff, expected))
    format_matches, cut, end, payoff_text, payoff, error = paper_scan(text)
    assert (format_matches, payoff_text) == (parsed.format_matches, parsed.payoff_text)
    # Reasons may quote an AST node, whose address differs between two parses.
    assert re.sub(" at 0x[0-9a-f]+", "", error) == re.sub(" at 0x[0-9a-f]+", "", parsed.payoff_error)
    assert payoff is parsed.payoff or same(payoff, parsed.payoff)
    assert cut == text.find("<response>") and end == (-1 if cut < 0 else text.find("</response>", cut + 10))


def test_paper_parse_collects_what_the_research_code_extracts() -> None:
    text = f"<thinking>t</thinking><payoff>{VALID}</payoff><analyze>a</analyze><response> r </response>"
    parsed = paper_parse(text)
    assert parsed.format_matches and parsed.scorable and parsed.format == 1.0
    assert parsed.response == "r" and parsed.reasoning == text.split("<response>")[0]
    broken = paper_parse(text.replace(VALID, "{oops"))
    assert broken.format_matches and not broken.scorable and broken.format == 0.0 and broken.payoff_error
    assert paper_parse("no blocks").payoff_error == "missing <payoff> block"


# --- hostile input ---------------------------------------------------------------------------------

FIVE_MB = 5_000_000


@pytest.mark.parametrize(
    "text",
    [
        "<thinking>" + "a" * FIVE_MB,
        "<thinking>" + "</thinking> " * (FIVE_MB // 12),
        "<thinking></thinking><payoff>" + "</payoff> <analyze>" * (FIVE_MB // 20),
        "<thinking>" + "<payoff>" * (FIVE_MB // 8),
        "<payoff>" * 100_000 + "</payoff>",
        "<response>" * 100_000,
        f"<thinking>t</thinking><payoff>{VALID}</payoff><analyze>a</analyze><response>" + "\n" * FIVE_MB,
        "<payoff>" + "[" * 10_000 + "</payoff>",
        "<payoff>" + '{"a":' * 10_000 + "</payoff>",
        "<payoff>" + "x" * FIVE_MB + "</payoff>",
        "<thinking></thinking><payoff>" + "<" * FIVE_MB + "</payoff>",
        f"<thinking>t</thinking><payoff>{VALID}</payoff><analyze>a</analyze><response>" + "</respons\n" * (FIVE_MB // 11),
    ],
    ids=[
        "5MB-open", "5MB-thinking-closers", "5MB-junction-halves", "5MB-payoff-openers", "100k-payoff-tags",
        "100k-response-tags", "5MB-newlines", "10k-deep-list", "10k-deep-object", "5MB-payoff-name",
        "5MB-less-than-signs", "5MB-near-closers",
    ],
)
@pytest.mark.timeout(60)  # a hang guard, not a timing assertion: the backtracking regex takes hours here
def test_hostile_input_is_answered_in_bounded_time(text: str) -> None:
    parsed = paper_parse(text)
    paper_format_matches(text)
    for tag in TAGS:
        paper_block(text, tag)
    assert not parsed.scorable or parsed.payoff is not None
