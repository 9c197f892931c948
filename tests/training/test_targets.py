"""The SFT target builder's pure core: every target it returns is a four-block answer that parses
without a problem, passes the robust preset's consistency checks and the protocol grammar, chooses
the welfare-best cell of its own matrix, names that matrix's true frontier, and does what its label
asks; every row it cannot use becomes a typed skip, never an exception.

The invariants are checked here with the project's own parser, game and reward functions on the
finished text (`assert_valid_target`), independently of the checks the builder runs itself.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtalign._registry import REGISTRY
from gtalign.benchmarks import BenchmarkRow
from gtalign.game import decide, pareto_frontier
from gtalign.judges import RuleJudge
from gtalign.protocol import ProtocolGrammar, classify_act, detect_refusal, paper_parse, parse_answer
from gtalign.reward import RewardScorer, Sample, Verdict, get_preset
from gtalign.training._targets import (
    KINDS,
    SKIP_REASONS,
    SftTarget,
    SkippedRow,
    ambiguity_meanings,
    build_target,
    payoff_matrix,
    plan_target,
)

GRAMMAR = re.compile(ProtocolGrammar().regex())
ROBUST = get_preset("robust")

MEANINGS_GT = (
    "multipleQAs###There are multiple meanings of the question.Meaning 0: Who has calculated the most digits of pi "
    "in 2016?; Answer 0: Peter Trueb\nMeaning 1: Who has calculated the most digits of U.S. pi in 2011?; Answer 1: "
    "Alexander Yee and Shigeru Kondo\nMeaning 2: Who sang \"Is this love?\" in 2009?; Answer 2: Fabrice Bellard\n"
)


def row(data_source: str, ground_truth: str, label: str = "", *, question: str = "What is it?", index: int = 0,
        extra: Mapping[str, Any] | None = None) -> BenchmarkRow:
    extra_info = {"single_turn_prompt": question, "chat_history": [{"role": "user", "content": question}], **(extra or {})}
    return BenchmarkRow(
        id=f"t/{index}", benchmark="t", data_source=data_source,
        messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Instruction.\n\nQuestion: {question}"}),
        ground_truth=ground_truth, label=label, extra_info=MappingProxyType(extra_info),
    )


def assert_valid_completion(text: str, key: str, data_source: str, ground_truth: str,
                            extra_info: Mapping[str, Any]) -> tuple[Any, tuple[str, ...]]:
    """Every invariant of a target's text; returns its matrix and the frontier it names."""
    parsed = parse_answer(text)
    assert parsed.problems == (), parsed.problems
    assert GRAMMAR.fullmatch(text), "outside the protocol grammar"
    paper = paper_parse(text)
    assert paper.format_matches and paper.payoff is not None
    matrix = parsed.payoff
    assert matrix is not None
    # the chosen key is the welfare (sum) choice, of the whole matrix and of its own row, strictly
    question_type = key.partition("_")[0]
    assert parsed.chosen_key == key == decide(matrix, "sum").key == decide(matrix, "sum", question_type).key
    sums = sorted((cell.user + cell.llm for cell in matrix.cells), reverse=True)
    assert sums[0] > sums[1] + 0.2
    for _, cell in matrix.items():
        for value in (cell.user, cell.llm):
            assert -5.0 <= value <= 5.0 and round(value, 1) == value
    # <analyze> names the true frontier of its own matrix, then the chosen key
    analyze = parsed.analyze or ""
    named = re.match(r"Pareto frontier: ([A-Z_, ]+)\. Chosen key: ([A-Z_]+)\.", analyze)
    assert named, analyze
    frontier = tuple(named.group(1).split(", "))
    assert frontier == pareto_frontier(matrix) and named.group(2) == key
    # <thinking>: 2-5 sentences, no numbers, names the question type
    thinking = parsed.thinking or ""
    assert not any(ch.isdigit() for ch in thinking) and question_type in thinking
    assert 2 <= len(re.findall(r"[.!?](?=\s|$)", thinking)) <= 5
    # the response does what the key says (the robust preset's reading), and robust's checks pass
    assert classify_act(parsed.response or "").act == key.partition("_")[2]
    # (only for registered data sources: the preset looks a name with ':' up as a dotted path and imports it)
    if ("task", data_source) in REGISTRY:
        result = ROBUST.finish(ROBUST.prepare(Sample(data_source, text, ground_truth, extra_info, Verdict(1.0))), None)
        assert result.status == "scored", result.reason
        assert result.consistency == 1.0, result.components
        assert result.format == 1.0
    return matrix, frontier


def assert_valid_target(target: SftTarget) -> None:
    """Every invariant of a target, checked on its text alone, and its TRL record."""
    row_ = target.row
    matrix, frontier = assert_valid_completion(target.completion, target.key, row_.data_source, row_.ground_truth,
                                               row_.extra_info)
    assert matrix == target.payoff and frontier == target.frontier
    record = target.record()
    assert record["completion"] == [{"role": "assistant", "content": target.completion}]
    assert record["prompt"] == [dict(m) for m in row_.messages]
    assert record["reward_model"] == {"ground_truth": row_.ground_truth}
    assert record["target_source"] == target.target_source and record["label"] == target.label
    assert target.label == (row_.label or target.label).strip().lower()  # the row's label as read ("AMBIGUOUS " -> "ambiguous")


# -- what each label asks for ----------------------------------------------------------------------


def test_an_ambiguous_question_gets_a_clarifying_question_that_names_every_meaning() -> None:
    target = build_target(row("ambig_qa", MEANINGS_GT, "ambiguous"))
    assert isinstance(target, SftTarget), target
    assert_valid_target(target)
    assert target.key == "VQ_CQ" and target.target_source == "reference"
    response = parse_answer(target.completion).response or ""
    meanings = ambiguity_meanings(MEANINGS_GT)
    assert meanings == ("Who has calculated the most digits of pi in 2016",
                        "Who has calculated the most digits of U.S. pi in 2011", 'Who sang "Is this love?" in 2009')
    assert all(meaning in response for meaning in meanings)
    assert classify_act(response).act == "CQ" and classify_act(response).n_questions == 1


def test_a_clear_question_gets_its_reference_answer_directly() -> None:
    target = build_target(row("ambig_qa", "singleAnswer###Battle of Plassey", "clear"))
    assert isinstance(target, SftTarget)
    assert_valid_target(target)
    assert target.key == "DQ_DA" and parse_answer(target.completion).response == "Battle of Plassey."
    quoted = build_target(row("ambig_qa", 'singleAnswer###"Dragon King"', "clear"))
    assert isinstance(quoted, SftTarget) and parse_answer(quoted.completion).response == "Dragon King."


def test_a_harmful_request_gets_a_refusal_with_a_safe_alternative() -> None:
    for index in range(12):  # every phrasing
        target = build_target(row("wildguard", "harmful", "harmful", index=index), seed=index)
        assert isinstance(target, SftTarget)
        assert_valid_target(target)
        assert target.key == "DQ_DA"
        assert detect_refusal(parse_answer(target.completion).response or "").stance == "refuse_with_alternative"


def test_a_math_answer_ends_in_the_boxed_ground_truth() -> None:
    for truth in ("121", "\\frac{1}{2}", "1,-1,i,-i", "\\text{(B)}"):
        target = build_target(row("math-hard", truth))
        assert isinstance(target, SftTarget), target
        assert_valid_target(target)
        assert (parse_answer(target.completion).response or "").endswith(f"\\boxed{{{truth}}}")


def test_rows_without_a_reference_need_a_distilled_answer_and_use_it() -> None:
    unharmful = row("wildguard", "unharmful", "unharmful", question="How do tides work?")
    skipped = build_target(unharmful)
    assert isinstance(skipped, SkippedRow) and skipped.reason == "needs_distillation"
    target = build_target(unharmful, response="Tides come from the Moon's gravity pulling on the oceans.")
    assert isinstance(target, SftTarget) and target.target_source == "distilled"
    assert_valid_target(target)
    clear = row("abg-coqa", "non_ambiguous", "clear")
    assert build_target(clear).reason == "needs_distillation"  # type: ignore[union-attr]
    assert isinstance(build_target(clear, response="Twelve tables."), SftTarget)
    unknown = row("my-source", "whatever")
    assert build_target(unknown).reason == "needs_distillation"  # type: ignore[union-attr]
    assert_valid_target(build_target(unknown, response="It is a cat."))  # type: ignore[arg-type]


def test_a_row_without_a_label_follows_its_tasks_reading_of_the_ground_truth() -> None:
    target = build_target(row("ambig_qa", MEANINGS_GT, ""))
    assert isinstance(target, SftTarget) and target.key == "VQ_CQ" and target.record()["label"] == "ambiguous"
    harmful = build_target(row("wildguard", "harmful", ""))
    assert isinstance(harmful, SftTarget) and harmful.record()["label"] == "harmful"


def test_a_reference_answer_wins_over_a_distilled_one() -> None:
    target = build_target(row("math-hard", "7"), response="Something else.")
    assert isinstance(target, SftTarget) and target.target_source == "reference"
    assert (target.response or "").endswith("\\boxed{7}")


@pytest.mark.parametrize(("response", "detail"), [
    ("I can't help with that request.", "refuses"),
    ("Tides are caused by the Moon. Would you like to know more about spring tides?", "reads as AQ"),
    ("Which ocean do you mean?", "reads as CQ"),
    ("   ", "empty"),
    ("See <response>here</response>.", "protocol tag"),
    ("Use <a href='x'>this</a>.", "protocol grammar"),
])
def test_a_distilled_answer_that_does_not_do_what_the_label_asks_is_skipped(response: str, detail: str) -> None:
    result = build_target(row("wildguard", "unharmful", "unharmful"), response=response)
    assert isinstance(result, SkippedRow) and result.reason == "distilled_unusable"
    assert detail in result.detail, result.detail


@pytest.mark.parametrize(("made", "reason"), [
    (row("abg-coqa", "ambiguous", "ambiguous"), "no_meanings"),
    (row("ambig_qa", "multipleQAs###no meanings here", "ambiguous"), "no_meanings"),
    (row("x", "y", "vague"), "unknown_label"),
    (row("wildguard", "maybe"), "unknown_label"),
    (row("math-hard", "  "), "bad_reference"),
    (row("math-hard", "\\frac{1}{2"), "bad_reference"),
    (row("math-hard", "x <response> y"), "bad_reference"),
    (row("math-hard", "Is it 5?"), "bad_reference"),
    (row("wildguard", "harmful", "harmful", question=" "), "no_question"),
])
def test_rows_that_cannot_give_a_target_are_skipped_with_the_reason(made: BenchmarkRow, reason: str) -> None:
    result = build_target(made, response="An answer.")
    assert isinstance(result, SkippedRow) and result.reason == reason, result
    assert result.row_id == made.id and result.data_source == made.data_source and result.detail


def test_the_bare_question_is_the_conversation_without_the_instruction() -> None:
    from gtalign.training._targets import bare_conversation

    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Next?"}]
    assert bare_conversation(row("x", "y", extra={"chat_history": history})) == history
    single = row("x", "y", question="Q1", extra={"chat_history": "not a list"})
    assert bare_conversation(single) == [{"role": "user", "content": "Q1"}]
    prompt_only = BenchmarkRow("p/0", "p", "x", ({"role": "user", "content": "Long instruction.Question: Why?"},), "y")
    assert bare_conversation(prompt_only) == [{"role": "user", "content": "Why?"}]
    plain = BenchmarkRow("p/1", "p", "x", ({"role": "user", "content": "Why is the sky blue?"},), "y")
    assert bare_conversation(plain) == [{"role": "user", "content": "Why is the sky blue?"}]
    empty = BenchmarkRow("p/2", "p", "x", ({"role": "user", "content": "Instruction. Question:  "},), "y")
    assert bare_conversation(empty) is None


def test_the_target_is_deterministic_per_seed_and_varies_across_rows_and_seeds() -> None:
    made = row("ambig_qa", MEANINGS_GT, "ambiguous")
    first, again = build_target(made, seed=3), build_target(made, seed=3)
    assert isinstance(first, SftTarget) and isinstance(again, SftTarget)
    assert first.completion == again.completion
    matrices = {build_target(made, seed=seed).payoff for seed in range(20)}  # type: ignore[union-attr]
    assert len(matrices) == 20
    rows = [row("math-hard", "3", index=i) for i in range(40)]
    targets = [build_target(r) for r in rows]
    assert len({t.payoff for t in targets}) == 40  # type: ignore[union-attr]
    assert len({t.frontier for t in targets}) > 3  # type: ignore[union-attr]  # frontiers vary, not always one cell
    assert len({parse_answer(t.completion).thinking for t in targets}) > 1  # type: ignore[union-attr]


def test_a_rule_judge_gives_every_reference_target_its_best_verdict() -> None:
    """Scored end to end by the registry's robust preset and the rule judge: consistency 1 and the
    best answer verdict (math 1, ambiguity 1, harmful 0.5 = refusal with an alternative)."""
    targets = [
        build_target(row("math-hard", "\\frac{1}{2}")),
        build_target(row("ambig_qa", MEANINGS_GT, "ambiguous")),
        build_target(row("ambig_qa", "singleAnswer###Paris", "clear")),
        build_target(row("wildguard", "harmful", "harmful")),
        build_target(row("advbench", "Sure, here is how", "harmful")),
    ]
    assert all(isinstance(t, SftTarget) for t in targets)
    samples = [t.row.to_sample(t.completion) for t in targets]  # type: ignore[union-attr]
    with RuleJudge() as judge:
        results = RewardScorer("robust", judge).score(samples)
    assert [r.judge_value for r in results] == [1.0, 1.0, 1.0, 0.5, 0.5], [r.reason for r in results]
    assert all(r.consistency == 1.0 and r.format == 1.0 and r.status == "scored" for r in results)


# -- properties ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), seed=st.integers(-(2**63), 2**63), row_id=st.text(max_size=30))
def test_every_matrix_makes_the_right_cell_the_strict_welfare_choice(kind: str, seed: int, row_id: str) -> None:
    from gtalign.training._targets import _rng

    matrix = payoff_matrix(kind, _rng(seed, row_id, "payoff"))  # type: ignore[arg-type]
    key = "VQ_CQ" if kind == "ambiguous" else "DQ_DA"
    assert decide(matrix, "sum").key == key == decide(matrix, "sum", key[:2]).key
    welfare = {k: c.user + c.llm for k, c in matrix.items()}
    assert all(welfare[key] > w + 0.25 for k, w in welfare.items() if k != key)
    assert all(-5 <= v <= 5 and round(v, 1) == v for c in matrix.cells for v in (c.user, c.llm))
    assert key in pareto_frontier(matrix)


_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)
_JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8)
_MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool", 3]),
                                  "content": _TEXT | st.none() | st.integers()})
_MEANING_GT = st.lists(_TEXT, min_size=0, max_size=4).map(
    lambda ms: "multipleQAs###x" + "".join(f"Meaning {i}: {m}; Answer {i}: a\n" for i, m in enumerate(ms)))
_GROUND_TRUTH = _TEXT | _MEANING_GT | st.sampled_from(
    ["harmful", "unharmful", "ambiguous", "non_ambiguous", "singleAnswer###", "singleAnswer###42?", "7", ""])
_SOURCES = st.sampled_from(["ambig_qa", "math-hard", "wildguard", "advbench", "abg-coqa", "medium", "minerva",
                            "os:system", "gtalign.cli._main:main", ""]) | _TEXT
_LABELS = st.sampled_from(["", "ambiguous", "clear", "harmful", "unharmful", "AMBIGUOUS "]) | _TEXT


@st.composite
def garbage_rows(draw: st.DrawFn) -> Any:
    """BenchmarkRows whose fields may hold anything (the dataclass does not validate)."""
    messages = draw(st.lists(_MESSAGE | _JSONISH, max_size=3) | _JSONISH)
    if draw(st.booleans()):
        messages = [{"role": "system", "content": "s"}, {"role": "user", "content": draw(_TEXT)}]
    extra = draw(st.dictionaries(_TEXT, _JSONISH, max_size=3) | _JSONISH)
    return BenchmarkRow(
        id=draw(_TEXT | st.integers()), benchmark="g", data_source=draw(_SOURCES | st.none()),
        messages=messages, ground_truth=draw(_GROUND_TRUTH | st.integers() | st.none()),
        label=draw(_LABELS | st.none()), extra_info=extra,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(made=garbage_rows(), response=st.none() | _TEXT, seed=st.integers())
def test_any_row_gives_a_valid_target_or_a_typed_skip_never_an_exception(made: Any, response: str | None, seed: int) -> None:
    result = build_target(made, seed=seed, response=response)
    if isinstance(result, SkippedRow):
        assert result.reason in SKIP_REASONS and result.reason != "internal_error", result
        assert isinstance(result.row_id, str) and isinstance(result.detail, str)
    else:
        assert isinstance(result, SftTarget)
        assert_valid_target(result)


@st.composite
def labelled_rows(draw: st.DrawFn) -> tuple[BenchmarkRow, str | None]:
    """Well-formed rows of every kind with random text where the data has text."""
    words = st.text(st.characters(codec="utf-8", exclude_characters="<>"), min_size=1, max_size=40)
    kind = draw(st.sampled_from(["ambiguous", "clear", "harmful", "unharmful", "math", "writing", "other"]))
    question = draw(words.filter(str.strip))
    if kind == "ambiguous":
        meanings = draw(st.lists(words, min_size=1, max_size=5))
        gt = "multipleQAs###x" + "".join(f"Meaning {i}: {m}?; Answer {i}: a\n" for i, m in enumerate(meanings))
        made = row("ambig_qa", gt, "ambiguous", question=question)
    elif kind == "clear":
        made = row("ambig_qa", "singleAnswer###" + draw(words), "clear", question=question)
    elif kind in ("harmful", "unharmful"):
        made = row(draw(st.sampled_from(["wildguard", "advbench"])) if kind == "harmful" else "wildguard", kind, kind,
                   question=question)
    elif kind == "math":
        made = row("math-hard", draw(st.from_regex(r"[0-9a-z\\{}(),^ +-]{1,12}", fullmatch=True)), question=question)
    elif kind == "writing":
        made = row("medium", draw(words), question=question)
    else:
        made = row(draw(st.sampled_from(["custom", "abg-coqa"])), "non_ambiguous",
                   "clear" if draw(st.booleans()) else "", question=question)
    return made, draw(st.none() | words)


@settings(max_examples=400, deadline=None)
@given(case=labelled_rows(), seed=st.integers(0, 10**6))
def test_labelled_rows_with_any_text_give_valid_targets_or_a_reason_about_their_text(case: Any, seed: int) -> None:
    made, response = case
    result = build_target(made, seed=seed, response=response)
    if isinstance(result, SftTarget):
        assert_valid_target(result)
        plan = plan_target(made)
        assert not isinstance(plan, SkippedRow) and result.key == plan.key
        answer = parse_answer(result.completion).response or ""
        if plan.kind == "ambiguous":
            assert all(m in answer for m in ambiguity_meanings(made.ground_truth))
        if plan.kind == "math":
            assert answer.endswith(f"\\boxed{{{made.ground_truth.strip()}}}")
    else:  # only the text can be at fault here: a reference or an answer that does not read as the move
        assert result.reason in ("needs_distillation", "bad_reference", "distilled_unusable", "no_meanings"), result
        if result.reason == "needs_distillation":
            assert response is None


# -- the paper's training data ---------------------------------------------------------------------

_PAPER_SOURCES = ("ambig_qa", "math-hard", "wildguard")
EXPECTED_SKIPS = {"needs_distillation", "bad_reference", "no_question"}


@pytest.fixture
def paper_data() -> Any:
    from tests.conftest import PAPER_DATA

    if not all((PAPER_DATA / "train_test" / name / "train.parquet").is_file() for name in _PAPER_SOURCES):
        pytest.skip(f"the paper's training data is not present (looked in {PAPER_DATA})")
    return PAPER_DATA


@pytest.mark.parametrize("prompt", ["stored", "builder"])
def test_two_hundred_rows_per_paper_training_set_all_give_valid_targets(paper_data: Any, prompt: str) -> None:
    from gtalign.benchmarks import load_benchmark

    for name in _PAPER_SOURCES:
        benchmark = load_benchmark(name, data=paper_data, split="train", limit=200, seed=7, prompt=prompt)
        assert len(benchmark) == 200  # the builder needs a question: one wildguard row has an empty one
        assert all("no question" in skip.reason for skip in benchmark.skipped) and len(benchmark.skipped) <= 2
        built = skipped = 0
        for made in benchmark:
            result = build_target(made, seed=7)
            if isinstance(result, SkippedRow):
                skipped += 1
                assert result.reason in EXPECTED_SKIPS, result
                if result.reason == "needs_distillation":
                    assert made.label == "unharmful"
                continue
            built += 1
            assert_valid_target(result)
            assert result.row.messages == made.messages
            if name == "wildguard":
                assert made.label == "harmful"
            if name == "ambig_qa":
                assert result.key == ("VQ_CQ" if made.label == "ambiguous" else "DQ_DA")
        if name == "wildguard":  # about half the requests are harmless: they need a distilled answer
            assert 60 <= built <= 140 and built + skipped == 200
        else:
            assert built >= 196, (name, built)


def test_a_seeded_random_stream_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """The builder never touches the global random state (a pure core)."""
    random.seed(1)
    before = random.random()
    random.seed(1)
    build_target(row("ambig_qa", MEANINGS_GT, "ambiguous"), seed=5)
    assert random.random() == before


def test_the_docstring_examples_run() -> None:
    import doctest

    import gtalign.training._targets as targets

    failures, tried = doctest.testmod(targets)
    assert tried >= 1 and failures == 0


# -- cut-off distilled answers ---------------------------------------------------------------------

LONG_START = ("Tides are caused mainly by the Moon's gravity pulling on the oceans. The Sun adds a smaller pull, "
              "so the highest tides come when both line up.")


def test_a_cut_off_answer_is_kept_up_to_its_last_full_sentence() -> None:
    from gtalign.training._distill import Distilled, distilled_target, trim_to_sentence

    cut = LONG_START + " Between those times the water"
    assert trim_to_sentence(cut) == LONG_START
    assert trim_to_sentence("Steps:\n1. Open the door.\n2. Walk", 5) == "Steps:\n1. Open the door."
    assert trim_to_sentence("It is 3.5 m long. Then", 5) == "It is 3.5 m long."
    assert trim_to_sentence("Run this:\n```python\nx = 1. y", 5) is None  # nothing complete before the open fence
    assert trim_to_sentence("Yes. And", 80) is None  # too little left
    target = distilled_target(row("wildguard", "unharmful", "unharmful", question="How do tides work?", index=3),
                              Distilled("wildguard/test/3", "cut_off", cut, "the answer was cut off at --max-tokens"))
    assert not isinstance(target, SkippedRow), target
    assert target.target_source == "distilled" and target.response == LONG_START


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_trimming_never_crashes_and_only_shortens(text: str) -> None:
    from gtalign.training._distill import trim_to_sentence

    trimmed = trim_to_sentence(text, 1)
    assert trimmed is None or (text.startswith(trimmed) or "```" in text) and len(trimmed) <= len(text)


def test_a_distilled_answer_that_loops_is_unusable() -> None:
    from gtalign.training._targets import repetition

    loop = "Tom was brave. " + "He was a boy with a heart full of adventure. " * 3
    assert repetition(loop) is not None and "3 times" in repetition(loop)
    assert "distinct" in (repetition(" ".join([f"Point {i}." for i in range(5)] * 2)) or "")  # each twice, half distinct
    assert repetition(LONG_START) is None and repetition("") is None
    unharmful = row("wildguard", "unharmful", "unharmful", question="Tell me a story.", index=4)
    looped = build_target(unharmful, response=loop.strip())
    assert isinstance(looped, SkippedRow) and looped.reason == "distilled_unusable" and "repeats itself" in looped.detail
    assert not isinstance(build_target(unharmful, response=LONG_START), SkippedRow)
