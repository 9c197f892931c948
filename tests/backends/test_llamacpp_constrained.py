"""`LlamaCppBackend` under the protocol grammar, on the real SmolLM2-135M-Instruct GGUF: a model never
trained on the four-block format writes answers that parse without problems, whole or in steering's
two stages, because llama.cpp's grammar sampler holds it to the grammar. Small caps on the free text
keep each answer short; the token limits are generous so every answer finishes."""

from __future__ import annotations


import pytest

from gtalign.backends._base import ConstrainingBackend, Constraint, SamplingParams, constraint_record
from gtalign.backends._llamacpp import LlamaCppBackend
from tests.backends._llamacpp_fixture import llamacpp  # noqa: F401 (a fixture)
from gtalign.protocol import STAGES, ProtocolGrammar, parse_answer

GRAMMAR = ProtocolGrammar(thinking_chars=80, analyze_chars=80, response_chars=200)
PROMPTS = ("Who won the world cup?", "How do I boil an egg?", "Write a haiku about rain.")
OPENING = "<analyze>Pareto frontier: DQ_DA, VQ_DA. Chosen key: DQ_DA."




def test_it_enforces_every_stage_with_gbnf_compiled_once(llamacpp: LlamaCppBackend) -> None:
    assert isinstance(llamacpp, ConstrainingBackend)
    assert [llamacpp.constraint_support(stage) for stage in STAGES] == ["gbnf"] * len(STAGES)
    first = llamacpp._grammar(Constraint(GRAMMAR, "payoff"))
    assert llamacpp._grammar(Constraint(ProtocolGrammar(thinking_chars=80, analyze_chars=80, response_chars=200), "payoff")) is first
    assert llamacpp._grammar(Constraint(GRAMMAR, "response")) is not first


@pytest.mark.slow
async def test_untrained_answers_parse_under_the_grammar(llamacpp: LlamaCppBackend) -> None:
    """Whole answers, then steering's two stages: stage 1 to ``</payoff>``, a prefilled ``<analyze>``
    opening, stage 2 streamed; each answer parses without problems."""
    for prompt in PROMPTS:
        result = await llamacpp.generate([{"role": "user", "content": prompt}],
                                         params=SamplingParams(max_tokens=900, constraint=Constraint(GRAMMAR)))
        parsed = parse_answer(result.text)
        assert result.ok and result.finish_reason == "stop", result
        assert parsed.problems == () and parsed.chosen_key is not None, (result.text, parsed.problems)
        assert result.extra["constraint"] == constraint_record(Constraint(GRAMMAR), "gbnf")

    question = [{"role": "user", "content": "Should I bring an umbrella today?"}]
    stage1 = await llamacpp.generate(question, params=SamplingParams(max_tokens=600, constraint=Constraint(GRAMMAR, "payoff")))
    assert stage1.ok and stage1.finish_reason == "stop" and stage1.text.rstrip().endswith("</payoff>"), stage1
    assert stage1.extra["constraint"] == constraint_record(Constraint(GRAMMAR, "payoff"), "gbnf")
    prefill = stage1.text + "\n" + OPENING
    stream = llamacpp.stream(question, prefill=prefill,
                             params=SamplingParams(max_tokens=400, constraint=Constraint(GRAMMAR, "response", required=True)))
    deltas = [delta async for delta in stream]
    stage2 = stream.result
    assert stage2.ok and stage2.finish_reason == "stop" and "".join(deltas) == stage2.text
    assert stage2.extra["constraint"] == constraint_record(Constraint(GRAMMAR, "response", required=True), "gbnf")
    whole = parse_answer(prefill + stage2.text)
    assert whole.problems == () and whole.chosen_key == "DQ_DA", (prefill + stage2.text, whole.problems)
