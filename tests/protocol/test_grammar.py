"""The protocol grammar: its numbers match exactly the declared range and precision, every string it
accepts is an answer `parse_answer` reads without problems and `paper_parse` accepts, it refuses
the near misses, and its GBNF compiles in llama.cpp.

The strings come from a sampler that walks the grammar's own rule tree (the one both renderings
are made from) with choices drawn by hypothesis, so the property covers what any engine enforcing
the grammar can let a model write."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtalign.game import StrategySpace
from gtalign.protocol import GrammarError, PayoffNumbers, ProtocolGrammar, paper_parse, parse_answer
from gtalign.protocol import _grammar as g
from gtalign.steering._steps import ANALYZE_OPEN

JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.([0-9]+))?")


def candidates() -> list[str]:
    """Number spellings around the interesting edges: every integer in -130..130 with and without
    fractions, leading zeros, signs, exponents and dangling points."""
    out = []
    for n in range(-130, 131):
        out += [str(n), f"{n}.0", f"{n}.5", f"{n}.00", f"{n}.25", f"{n}.125", f"{n}."]
    out += ["-0", "-0.0", "01", "00", "-01", "+1", "1e1", "1E1", ".5", "-.5", "0.05", "", "-", "1.2.3", " 1", "9.99", "10.0001"]
    return out


def expected(text: str, numbers: PayoffNumbers) -> bool:
    """What the range and precision allow, written from the definition: a JSON number (no leading
    zeros, no exponent), at most ``decimals`` places, ``low <= value <= high``."""
    match = JSON_NUMBER.fullmatch(text)
    if match is None:
        return False
    places = len(match.group(1) or "")
    if match.group(1) is not None and numbers.decimals == 0:
        return False
    if text.startswith("-") and numbers.low >= 0:  # a minus sign only where negatives are allowed ("-0" then too)
        return False
    return places <= numbers.decimals and numbers.low <= Decimal(text) <= numbers.high


@pytest.mark.parametrize("numbers", [
    PayoffNumbers(), PayoffNumbers(0, 10, 1), PayoffNumbers(-5, 100, 0), PayoffNumbers(-123, -7, 2),
    PayoffNumbers(3, 3, 1), PayoffNumbers(0, 0, 0), PayoffNumbers(-1, 119, 3), PayoffNumbers(10, 99, 1),
])
def test_numbers_are_exactly_the_declared_range_and_precision(numbers: PayoffNumbers) -> None:
    pattern = re.compile(numbers.pattern())
    wrong = [text for text in candidates() if bool(pattern.fullmatch(text)) != expected(text, numbers)]
    assert wrong == []


def test_the_number_pattern_of_a_small_range_reads_as_written() -> None:
    assert PayoffNumbers(0, 15, 0).pattern() == "(?:[0-9]|1[0-5])"
    assert PayoffNumbers(-2, 3, 0).pattern() == "(?:[0-3]|\\-[0-2])"


# A sampler over the rule tree.

WORDS = ["pick ", "not ", "never ", "choose ", "Chosen key", "chosen", "final ", "go with ", "→ ", ". ", "! ", "? ",
         "\n", " ", "DQ_DA", "VQ_CQ", "A_B", "<", "< ", "<5", "<p>", "</div>", "</response>", "<response>", "<b",
         "a<b", "x", "é", "日本", "\u00a0", "\u2028", "\t", "{", "}", '"', "\\", "0.5", "The answer is 4. "]
CHARS = ["a", "Z", "0", " ", "\n", "\t", "\r", "\u00a0", "\u3000", "\u2009", "<", "/", "_", ".", "é", "→", "}", '"', "\x0b"]


class Sampler:
    """Draws a string of the language of a rule tree: alternatives and repetition counts by
    hypothesis, characters of a class from a pool filtered by the class, and whole words where a
    class is repeated (so cue words, keys and tags get tried where the class lets them through)."""

    def __init__(self, rules: dict[str, Any], draw: Any) -> None:
        self.rules, self.draw = rules, draw

    def text(self, node: Any) -> str:
        if isinstance(node, g._Lit):
            return node.text
        if isinstance(node, g._Class):
            own = "" if node.negated else node.chars + "".join(map(chr, (c for a, b in node.ranges for c in range(ord(a), ord(b) + 1))))
            options = sorted({c for c in CHARS + list(own) if self.allows(node, c)})
            return self.draw(st.sampled_from(options))
        if isinstance(node, g._Ref):
            return self.text(self.rules[node.name])
        if isinstance(node, g._Seq):
            return "".join(self.text(item) for item in node.items)
        if isinstance(node, g._Alt):
            return self.text(self.draw(st.sampled_from(node.items)))
        if isinstance(node, g._Rep):
            return self.repeat(node)
        raise TypeError(node)

    def repeat(self, node: g._Rep) -> str:
        high = node.high if node.high is not None else 40
        item = self.rules[node.item.name] if isinstance(node.item, g._Ref) else node.item
        if isinstance(item, g._Class):
            words = [w for w in WORDS if all(self.allows(item, c) for c in w)]
            out = ""
            while len(out) < high and self.draw(st.booleans()):
                piece = self.draw(st.sampled_from(words)) if words and self.draw(st.booleans()) else self.text(item)
                if len(out) + len(piece) <= high:
                    out += piece
            return out + self.text(item) * max(0, node.low - len(out))
        # Units of several characters (the response's "<" + character): whole words in their language too.
        language = re.compile(g._Regex(self.rules).render(g._Rep(node.item, 0, None)))
        words = [w for w in WORDS if language.fullmatch(w)]
        count = self.draw(st.integers(node.low, min(high, node.low + 6)))
        pieces = [self.draw(st.sampled_from(words)) if words and self.draw(st.booleans()) else self.text(node.item)
                  for _ in range(count)]
        while sum(map(len, pieces)) > high and len(pieces) > node.low:  # a word may be several units
            pieces.pop()
        return "".join(pieces) if sum(map(len, pieces)) <= high else self.text(node.item) * node.low

    @staticmethod
    def allows(node: g._Class, c: str) -> bool:
        inside = c in node.chars or any(a <= c <= b for a, b in node.ranges)
        return inside != node.negated


SPACES = [StrategySpace(), StrategySpace(question_types=("DQ", "VQ", "XQ"), actions=("DA", "REFUSE"))]
GRAMMARS = st.builds(
    ProtocolGrammar,
    space=st.sampled_from(SPACES),
    numbers=st.sampled_from([PayoffNumbers(), PayoffNumbers(0, 5, 0), PayoffNumbers(-100, 100, 2)]),
    thinking_chars=st.integers(1, 60),
    analyze_chars=st.integers(1, 60),
    response_chars=st.sampled_from([None, 1, 30]),
    key_order=st.sampled_from(["fixed", "free"]),
    frontier=st.booleans(),
)


def assert_reads_cleanly(text: str, grammar: ProtocolGrammar) -> None:
    parsed = parse_answer(text, space=grammar.space)
    assert parsed.problems == (), (text, parsed.problems)
    assert parsed.payoff is not None and parsed.chosen_key in grammar.space.keys
    analyze = re.search(r"Chosen key: (\w+)\.", text)
    assert analyze is not None and parsed.chosen_key == analyze.group(1)
    paper = paper_parse(text)
    if grammar.space == SPACES[0]:  # the research code knows only the paper's six keys
        assert paper.format_matches and paper.payoff is not None, text
    values = [v for cell in json.loads(parsed.blocks["payoff"].content).values() for v in cell.values()]
    assert all(grammar.numbers.accepts(v) for v in values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammar=GRAMMARS, data=st.data())
def test_every_answer_the_grammar_accepts_parses_without_problems(grammar: ProtocolGrammar, data: st.DataObject) -> None:
    rules = grammar._rules("full")
    text = Sampler(rules, data.draw).text(rules["root"])
    assert_reads_cleanly(text, grammar)
    if grammar.key_order == "fixed":
        assert re.fullmatch(grammar.regex(), text), text


STAGE_ONE = ('<thinking>Clear question.</thinking>\n<payoff>{"DQ_DA": {"LLM": 3, "user": 3}, "DQ_CQ": {"LLM": 1, "user": 1}, '
             '"DQ_AQ": {"LLM": 2, "user": 2}, "VQ_DA": {"LLM": 1, "user": 1}, "VQ_CQ": {"LLM": 2, "user": 2}, '
             '"VQ_AQ": {"LLM": 1, "user": 1}}</payoff>')
DECISION = ("Pareto frontier: DQ_DA. With no pricing change, the sum rule within the DQ row picks DQ_DA. "
            "Chosen key: DQ_DA.")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), frontier=st.booleans())
def test_each_steering_stage_completes_an_answer_that_parses(data: st.DataObject, frontier: bool) -> None:
    grammar = ProtocolGrammar(analyze_chars=50, thinking_chars=50, frontier=frontier)
    rules = grammar._rules("payoff")
    first = Sampler(rules, data.draw).text(rules["root"])
    rules = grammar._rules("response")
    second = Sampler(rules, data.draw).text(rules["root"])
    assert re.fullmatch(grammar.regex("payoff"), first) and re.fullmatch(grammar.regex("response"), second)
    # Stage 1 as the model writes it, then the engine's prefill, then stage 2 (as SteeringEngine joins them).
    assert_reads_cleanly(first + ANALYZE_OPEN + DECISION + second, grammar)
    assert_reads_cleanly(STAGE_ONE + ANALYZE_OPEN + DECISION + second, grammar)


GOOD = (STAGE_ONE + "\n<analyze>Pareto frontier: DQ_DA. Chosen key: DQ_DA. Best sum.</analyze>\n"
        "<response>Paris; and 3 < 4.</response>")


NEAR_MISSES: list[tuple[Any, str | None]] = [
    (lambda t: t, None),
    (lambda t: " " + t, "text before <thinking>"),
    (lambda t: t + "\nmore", "text after </response>"),
    (lambda t: t.replace("Clear question.", " "), "an empty <thinking>"),
    (lambda t: t.replace('"LLM": 3', '"LLM": 11'), "a payoff above the range"),
    (lambda t: t.replace('"LLM": 3', '"LLM": 3.25'), "two decimals"),
    (lambda t: t.replace('"LLM": 3', '"LLM": 03'), "a leading zero"),
    (lambda t: t.replace('"DQ_CQ"', '"DQ_DA"'), "a duplicate key"),
    (lambda t: t.replace("Best sum.", "I pick VQ_CQ."), "a second key in the analysis"),
    (lambda t: t.replace("Chosen key: DQ_DA.", "Chosen key: DQ_DA"), "the chosen key without its full stop"),
    (lambda t: t.replace("</payoff>\n", "</payoff>\n\n"), "two newlines between blocks"),
]
"""Changes to a good answer that every rendering refuses (the first is no change: accepted)."""


@pytest.mark.parametrize(("change", "why"), [
    *NEAR_MISSES,
    (lambda t: t.replace("3 < 4", "<p>3</p>"), "a tag in the response"),
    (lambda t: t.replace("3 < 4", "</response>"), "a closing tag in the response"),
])
def test_the_regex_refuses_near_misses(change: Any, why: str | None) -> None:
    regex = ProtocolGrammar().regex()
    assert bool(re.fullmatch(regex, change(GOOD))) is (why is None), why


def test_free_key_order_takes_any_order_once_each() -> None:
    grammar = ProtocolGrammar(key_order="free")
    rules = grammar._rules("full")
    assert sum(1 for name in rules if name.startswith("pairs-")) == 63
    with pytest.raises(GrammarError, match="no regex form"):
        grammar.regex()


@pytest.mark.parametrize(("options", "message"), [
    ({"thinking_chars": 0}, "thinking_chars must be an integer from 1 to 100000"),
    ({"analyze_chars": 5000}, "analyze_chars must be an integer from 1 to 4000"),
    ({"response_chars": True}, "response_chars must be"),
    ({"key_order": "sorted"}, "key_order must be 'fixed' or 'free'"),
    ({"numbers": PayoffNumbers(), "space": "DQ"}, "space must be a StrategySpace"),
])
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(GrammarError, match=re.escape(message)):
        ProtocolGrammar(**options)


@pytest.mark.parametrize(("args", "message"), [
    ((5, 1, 1), "low 5 is above high 1"), ((0, 10, 5), "decimals must be 0 to 4"), ((0, 10**7, 1), "beyond 1e6"),
    ((0.5, 1, 1), "low must be an integer"),
])
def test_bad_number_formats_are_refused(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(GrammarError, match=re.escape(message)):
        PayoffNumbers(*args)


def test_the_payoff_schema_requires_every_key_and_bounds_the_numbers() -> None:
    schema = ProtocolGrammar(numbers=PayoffNumbers(-3, 7, 1)).payoff_schema()
    assert schema["required"] == ["DQ_DA", "DQ_CQ", "DQ_AQ", "VQ_DA", "VQ_CQ", "VQ_AQ"]
    assert schema["additionalProperties"] is False
    cell = schema["properties"]["VQ_AQ"]
    assert cell["required"] == ["LLM", "user"] and cell["properties"]["user"] == {"type": "number", "minimum": -3, "maximum": 7}


@pytest.mark.parametrize("stage", ["full", "payoff", "response"])
@pytest.mark.parametrize("key_order", ["fixed", "free"])
def test_the_gbnf_compiles_in_llama_cpp(stage: Any, key_order: Any) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    grammar = ProtocolGrammar(key_order=key_order).gbnf(stage)
    assert grammar.startswith("root ::= ")
    assert llama_cpp.LlamaGrammar.from_string(grammar, verbose=False) is not None


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(GrammarError, match="stage must be one of full, payoff, response"):
        ProtocolGrammar().gbnf("stage3")  # type: ignore[arg-type]


def test_a_constraint_names_its_grammar_and_stage() -> None:
    from gtalign.backends import Constraint, SamplingParams

    params = SamplingParams(constraint=Constraint(stage="payoff", required=True))
    assert params.constraint is not None and params.constraint.grammar == ProtocolGrammar()
    with pytest.raises(ValueError, match="stage must be one of full, payoff, response"):
        Constraint(stage="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be a ProtocolGrammar"):
        Constraint(grammar="root ::= x")  # type: ignore[arg-type]


# -- the Lark rendering (llguidance), with token caps ----------------------------------------------


@pytest.fixture(scope="module")
def llg() -> Any:
    """llguidance's matcher factory for the SmolLM2 tokenizer (the embedded default's)."""
    llguidance = pytest.importorskip("llguidance", reason="the Lark rendering is llguidance's: pip install 'gtalign[constrain]'")
    import llguidance.hf

    transformers = pytest.importorskip("transformers")
    from gtalign.backends._model_store import ModelStoreError, resolve_model

    try:
        folder = resolve_model(None).path
    except ModelStoreError as exc:
        pytest.skip(f"the embedded default model is not installed: {exc}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    vocabulary = llguidance.hf.from_tokenizer(tokenizer, n_vocab=len(tokenizer))

    def accepts(lark: str, text: str) -> bool:
        matcher = llguidance.LLMatcher(vocabulary, llguidance.grammar_from("lark", lark), log_level=0)
        assert not matcher.is_error(), matcher.get_error()
        return matcher.consume_tokens(tokenizer(text, add_special_tokens=False)["input_ids"]) and matcher.is_accepting()

    return accepts


@pytest.mark.parametrize("stage", ["full", "payoff", "response"])
@pytest.mark.parametrize("options", [{}, {"key_order": "free"}, {"thinking_tokens": 30, "analyze_tokens": 20, "response_tokens": 60},
                                     {"frontier": False, "numbers": PayoffNumbers(-100, 100, 2)}])
def test_the_lark_compiles_in_llguidance(llg: Any, stage: Any, options: dict[str, Any]) -> None:
    lark = ProtocolGrammar(**options).lark(stage)
    assert lark.startswith("start: ")
    assert not llg(lark, "<nothing>")  # compiles (the helper asserts it), and refuses a stranger


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(grammar=GRAMMARS, data=st.data())
def test_every_answer_the_lark_accepts_is_accepted_by_llguidance_and_parses(llg: Any, grammar: ProtocolGrammar,
                                                                             data: st.DataObject) -> None:
    rules = grammar._lark_rules("full")
    text = Sampler(rules, data.draw).text(rules["root"])
    assert llg(grammar.lark(), text), text
    assert_reads_cleanly(text, grammar)
    if grammar.key_order == "fixed":
        assert re.fullmatch(grammar.regex(), text), text  # the Lark language is within the regex's


LARK_GOOD = GOOD.replace("Paris; and 3 < 4.", "Paris; and 3 is less than 4.")


@pytest.mark.parametrize(("change", "why"), [
    *NEAR_MISSES,
    (lambda t: t.replace("3 is less", "<p>3</p> is less"), "a tag in the response"),
])
def test_the_lark_refuses_near_misses(llg: Any, change: Any, why: str | None) -> None:
    assert llg(ProtocolGrammar().lark(), change(LARK_GOOD)) is (why is None), why


@pytest.mark.parametrize(("cap", "block", "long"), [
    ("thinking_tokens", "Clear question.", "A clear question with a long thought that goes on and on, and on again, and then some more."),
    ("analyze_tokens", "Best sum.", " It has the best sum of all the cells, by far, and so on, and so forth, for ever and ever."),
    ("response_tokens", "Paris; and 3 is less than 4.", "Paris, the capital of France, on the Seine, for centuries, and the largest city of the country."),
])
def test_token_caps_end_a_free_text_block(llg: Any, cap: str, block: str, long: str) -> None:
    capped = ProtocolGrammar(**{cap: 12})
    assert llg(capped.lark(), LARK_GOOD)
    assert not llg(capped.lark(), LARK_GOOD.replace(block, long)), "a block longer than its token cap"
    assert llg(ProtocolGrammar().lark(), LARK_GOOD.replace(block, long))
    assert "[max_tokens=12]" in capped.lark() and "max_tokens" not in capped.gbnf()


def test_each_steering_stage_has_its_lark(llg: Any) -> None:
    grammar = ProtocolGrammar(thinking_tokens=40, analyze_tokens=40, response_tokens=40)
    first, rest = LARK_GOOD.split("\n<analyze>")
    second = rest.split("Chosen key: DQ_DA.", 1)[1]
    assert llg(grammar.lark("payoff"), first) and not llg(grammar.lark("payoff"), LARK_GOOD)
    assert llg(grammar.lark("response"), second) and not llg(grammar.lark("response"), first)


def test_token_caps_are_options_checked_by_name() -> None:
    with pytest.raises(GrammarError, match="thinking_tokens must be None or an integer"):
        ProtocolGrammar(thinking_tokens=0)
    assert ProtocolGrammar(response_tokens=5).to_json()["response_tokens"] == 5


FREE_TEXTS = ("thinking_text", "tail", "response_text")
CAPS = {"thinking_text": "thinking_tokens", "tail": "analyze_tokens", "response_text": "response_tokens"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grammar=GRAMMARS, stage=st.sampled_from(g.STAGES), data=st.data())
def test_the_skeleton_is_the_longest_fixed_structure(grammar: ProtocolGrammar, stage: Any, data: st.DataObject) -> None:
    rules = grammar._rules(stage, split=True)
    structure_only = {**rules, **{name: g._Lit("") for name in FREE_TEXTS if name in rules}}
    text = Sampler(structure_only, data.draw).text(structure_only["root"])
    assert len(text) <= len(grammar.skeleton(stage)), (text, grammar.skeleton(stage))


@settings(max_examples=300, deadline=None)
@given(grammar=GRAMMARS, stage=st.sampled_from(g.STAGES), budget=st.integers(1, 3000),
       given_cap=st.sampled_from([None, *CAPS.values()]), spent=st.none() | st.integers(0, 3000))
def test_fitted_caps_and_the_structure_fit_the_budget(grammar: ProtocolGrammar, stage: Any, budget: int, given_cap: str | None,
                                                      spent: int | None) -> None:
    """With one token per character (the worst a tokenizer can do), the longest structure plus every
    free text at its cap plus the end-of-turn token is within the budget, also for a stage of a
    larger answer (``answer_budget``); caps a user set stay."""
    if given_cap is not None:
        grammar = g.replace(grammar, **{given_cap: 5})
    fitted = grammar.fit(budget, len, stage, answer_budget=None if spent is None else budget + spent)
    layout = "full" if stage == "payoff" else stage
    present = [cap for name, cap in CAPS.items() if name in g._reachable(grammar._rules(layout, split=True))]
    structure = len(grammar.skeleton(layout))
    if fitted is None:
        assert structure + len(present) + 1 > budget - structure * 0.1 - 8
        return
    caps = [getattr(fitted, cap) for cap in present]
    assert all(isinstance(cap, int) and cap >= 1 for cap in caps)
    if given_cap is not None:
        assert getattr(fitted, given_cap) == 5
    else:
        assert structure + sum(caps) + 1 <= budget
    assert fitted.thinking_tokens is None or fitted.thinking_tokens <= max(grammar.thinking_chars, grammar.thinking_tokens or 0)
    assert g.replace(fitted, thinking_tokens=None, analyze_tokens=None, response_tokens=None) == g.replace(
        grammar, thinking_tokens=None, analyze_tokens=None, response_tokens=None)


def test_stage_two_of_a_steered_answer_keeps_the_whole_answers_caps_when_they_fit() -> None:
    def count(text: str) -> int:
        return 200 if "<payoff>" in text else 10

    whole = ProtocolGrammar().fit(1000, count)
    assert whole is not None
    second = ProtocolGrammar().fit(700, count, stage="response", answer_budget=1000)  # 300 spent on stage 1
    assert second is not None and (second.analyze_tokens, second.response_tokens) == (whole.analyze_tokens, whole.response_tokens)
    assert second.thinking_tokens is None
    tight = ProtocolGrammar().fit(200, count, stage="response", answer_budget=1000)  # stage 1 took most of it
    assert tight is not None and (tight.analyze_tokens, tight.response_tokens) == (36, 144)  # 20% of 200-19-1, the rest
    assert tight == ProtocolGrammar().fit(200, count, stage="response")


def test_a_fitted_grammar_gives_the_response_the_rest() -> None:
    count = {"full": 200, "response": 10}
    fitted = ProtocolGrammar().fit(1000, lambda text: count["full"] if "<payoff>" in text else count["response"])
    assert fitted is not None and (fitted.thinking_tokens, fitted.analyze_tokens) == (231, 115)  # 30% and 15% of 1000 - (200 * 1.1 + 8) - 1
    assert fitted.response_tokens == 771 - 231 - 115
    second = ProtocolGrammar().fit(100, lambda text: 10, stage="response")
    assert second is not None and (second.thinking_tokens, second.analyze_tokens, second.response_tokens) == (None, 16, 64)
    with pytest.raises(GrammarError, match="budget must be at least 1"):
        ProtocolGrammar().fit(0, len)
