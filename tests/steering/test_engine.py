"""Engine mechanics with a scripted backend: prefill, stops, fallbacks, row restriction, records."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from gtalign.backends._base import Generation, SamplingParams
from gtalign.game import PayoffMatrix, StrategySpace
from gtalign.protocol import build_messages, parse_answer
from gtalign.steering import ANALYZE_OPEN, Fallback, PolicyError, SteeringEngine, SteeringResult
from gtalign.testing import ScriptedBackend, ScriptedConstrainingBackend
from tests.steering._fixtures import LLM_SHIFT_FLIPS, PAYER_FLIPS, first_stage

QUESTION = "What is the capital of France?"
CONTINUATION = " A follow-up keeps the user engaged.\n</analyze>\n<response>\nParis. Would you like its population too?\n</response>"


def scripted(*firsts: str, then: str = CONTINUATION, after: Callable[[str], str] | None = None, **kwargs) -> ScriptedBackend:
    """First-stage calls answer ``firsts`` in turn (the last one repeats); a call with a prefill gets
    ``then`` (or ``after(prefill)``). Scripts run past the stop strings, as a model would."""
    seen: list[int] = []

    def script(messages, prefill):
        if prefill:
            return after(prefill) if after else then
        seen.append(1)
        return firsts[min(len(seen), len(firsts)) - 1] + "</payoff>\n<analyze>regenerated</analyze><response>no</response>"

    return ScriptedBackend(script, **kwargs)


def run(engine: SteeringEngine, question=QUESTION, **kwargs) -> SteeringResult:
    return asyncio.run(engine.run(question, **kwargs))


def test_second_call_continues_the_same_turn_after_the_decision():
    first = first_stage(LLM_SHIFT_FLIPS)
    backend = scripted(first)
    result = run(SteeringEngine(backend, "research-llm-shift", params=SamplingParams(max_tokens=300)))
    assert result.status == "ok", result.reason
    assert len(backend.calls) == 2
    one, two = backend.calls
    assert one.prefill == "" and one.params.stop[0] == "</payoff>"
    decision = (
        "Pareto frontier after pricing: DQ_DA, DQ_AQ. Under research-llm-shift(s=1) pricing, the sum rule "
        "within the DQ row picks DQ_AQ. Chosen key: DQ_AQ."
    )
    assert two.prefill == first + "</payoff>" + "\n<analyze>\n" + decision
    assert two.prefill == first + "</payoff>" + ANALYZE_OPEN + result.decision_text
    assert two.params.stop[0] == "</response>"
    assert one.messages == two.messages == tuple(build_messages(QUESTION))
    assert result.text == two.prefill + CONTINUATION
    assert result.chosen_key == "DQ_AQ" and result.unsteered.key == "DQ_DA" and result.flipped


def test_final_text_parses_as_four_blocks_with_the_chosen_key():
    result = run(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS)), "research-llm-shift"))
    parsed = parse_answer(result.text)
    assert parsed.ok, parsed.problems
    assert parsed.chosen_key == "DQ_AQ" and parsed.payoff == LLM_SHIFT_FLIPS
    assert result.response == "Paris. Would you like its population too?" == parsed.response
    assert result.parsed.ok and set(result.blocks) == {"thinking", "payoff", "analyze", "response"}


def test_record_is_json_ready_and_complete():
    result = run(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS)), "research-llm-shift"))
    record = json.loads(json.dumps(result.to_record()))
    assert record["status"] == "ok" and record["version"] == 1
    assert record["matrix"]["raw"] == LLM_SHIFT_FLIPS.to_dict()
    assert record["matrix"]["transformed"]["DQ_AQ"] == {"LLM": 4.0, "user": 4.2}
    assert record["decision"]["key"] == "DQ_AQ" and "DQ_AQ" in record["decision"]["why"]
    assert record["unsteered"]["key"] == "DQ_DA" and record["flipped"] is True
    assert record["policy"] == {"kind": "research-llm-shift", "name": "research-llm-shift(s=1)",
                                "description": result.policy.description, "s": 1.0}
    assert [s["name"] for s in record["stages"]] == ["payoff", "continue"]
    assert all(isinstance(s["tokens_out"], int) and s["wall"] >= 0 for s in record["stages"])
    assert record["tokens_out"] == sum(s["tokens_out"] for s in record["stages"])
    assert record["fallbacks"] == [] and record["problems"] == []
    assert record["question_type"] == "DQ"


def test_stage_texts_put_the_stop_strings_back():
    result = run(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS))))
    payoff, cont = result.stages
    assert payoff.text.endswith("</payoff>") and payoff.stop == "</payoff>"
    assert cont.text.endswith("</response>") and cont.prefill.endswith(result.decision_text)


def test_continuation_budget_is_what_the_first_stage_left():
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))
    result = run(SteeringEngine(backend, params=SamplingParams(max_tokens=500)))
    assert backend.calls[1].params.max_tokens == 500 - result.stages[0].tokens_out


def test_retry_with_another_seed_then_success():
    backend = scripted("<thinking>DQ.</thinking>\n<payoff>{not json", first_stage(LLM_SHIFT_FLIPS))
    result = run(SteeringEngine(backend, "research-llm-shift", params=SamplingParams(seed=7)))
    assert result.status == "fallback" and result.chosen_key == "DQ_AQ"
    assert [c.params.seed for c in backend.calls] == [7, 8, 8]
    assert [s.name for s in result.stages] == ["payoff", "payoff", "continue"]
    assert [e.kind for e in result.fallbacks] == ["retry"]
    assert "attempt 1" in result.fallbacks[0].detail and "seed 8" in result.fallbacks[0].detail
    assert backend.calls[2].prefill.startswith(first_stage(LLM_SHIFT_FLIPS) + "</payoff>")


def test_greedy_retry_samples_instead_of_repeating():
    backend = scripted("<payoff>[]", first_stage(LLM_SHIFT_FLIPS))
    run(SteeringEngine(backend, fallback=Fallback(retry_temperature=0.9)))
    assert [c.params.temperature for c in backend.calls] == [0.0, 0.9, 0.0]
    assert [c.params.seed for c in backend.calls] == [None, 1, 1]


def test_malformed_twice_uses_the_default_action_in_the_models_row():
    bad = "<thinking>The user is vague, so this is a VQ.</thinking>\n<payoff>{\"DQ_DA\": 1}"
    backend = scripted(bad)
    result = run(SteeringEngine(backend, "research-llm-shift"))
    assert result.status == "fallback"
    assert result.chosen_key == "VQ_AQ" and result.chosen_by == "fallback"
    assert [e.kind for e in result.fallbacks] == ["retry", "default_action"]
    assert "VQ_AQ" in result.fallbacks[-1].detail and "payoff" in result.fallbacks[-1].detail
    assert backend.calls[2].prefill == bad + "</payoff>" + ANALYZE_OPEN + (
        "The payoff matrix could not be read, so the declared fallback applies. Chosen key: VQ_AQ.")
    assert result.raw is None and result.decision is None and result.response
    record = json.loads(json.dumps(result.to_record()))
    assert record["decision"] is None and record["chosen_by"] == "fallback"
    assert [f["kind"] for f in record["fallbacks"]] == ["retry", "default_action"]


def test_default_row_without_a_classification():
    result = run(SteeringEngine(scripted("no blocks here"), fallback=Fallback(retries=0, default_action="CQ")))
    assert result.chosen_key == "DQ_CQ"
    assert [e.kind for e in result.fallbacks] == ["default_action", "discarded_text"]


def test_unclosed_first_stage_keeps_only_a_leading_thinking_block():
    truncated = "<thinking>A DQ.</thinking>\n<payoff>{\"DQ_AQ\": {\"LLM\": 1"

    def script(messages, prefill):
        return CONTINUATION if prefill else truncated

    backend = ScriptedBackend(script)
    result = run(SteeringEngine(backend, params=SamplingParams(max_tokens=4), fallback=Fallback(retries=0)))
    assert result.stages[0].finish_reason == "length"
    assert backend.calls[1].prefill.startswith("<thinking>A DQ.</thinking>" + ANALYZE_OPEN)
    assert [e.kind for e in result.fallbacks][:2] == ["default_action", "discarded_text"]
    assert result.chosen_key == "DQ_AQ"


def test_no_default_action_fails_without_continuing():
    backend = scripted("<payoff>nope")
    result = run(SteeringEngine(backend, fallback=Fallback(default_action=None)))
    assert result.status == "failed" and "no usable payoff matrix after 2 attempt(s)" in result.reason
    assert len(backend.calls) == 2 and result.response == ""


def test_backend_failures_are_results_not_exceptions():
    failing = scripted(first_stage(LLM_SHIFT_FLIPS), fail_calls=frozenset({0, 1}))
    result = run(SteeringEngine(failing))
    assert result.status == "failed" and "scripted failure" in result.reason and result.response == ""
    continuing = scripted(first_stage(LLM_SHIFT_FLIPS), fail_calls=frozenset({1}))
    result = run(SteeringEngine(continuing))
    assert result.status == "failed" and "continuation failed" in result.reason
    assert result.decision is not None and result.stages[-1].status == "failed"
    json.dumps(result.to_record())


def test_first_failure_then_a_good_retry():
    result = run(SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS), fail_calls=frozenset({0}))))
    assert result.status == "fallback" and result.fallbacks[0].kind == "retry"
    assert "backend failed" in result.fallbacks[0].detail


class Raising:
    name = "raising"
    model = "boom"

    async def generate(self, messages, *, prefill="", params=SamplingParams()):
        raise RuntimeError("socket closed")

    async def aclose(self):
        return None


class Overflow(Raising):
    def __init__(self):
        self.calls = 0

    async def generate(self, messages, *, prefill="", params=SamplingParams()):
        self.calls += 1
        return Generation("", "error", status="context_overflow", reason="prompt too long")


def test_a_raising_backend_fails_the_result():
    result = run(SteeringEngine(Raising()))
    assert result.status == "failed" and "RuntimeError: socket closed" in result.reason


def test_context_overflow_is_not_retried():
    backend = Overflow()
    result = run(SteeringEngine(backend))
    assert result.status == "failed" and "context_overflow" in result.reason and backend.calls == 1


def test_choice_is_restricted_to_the_models_row():
    matrix = PayoffMatrix.from_arrays(user=[[2.0, 1.0, 2.5], [4.0, 3.0, 1.0]], llm=[[2.0, 1.0, 2.0], [4.0, 3.0, 1.0]])
    in_dq = run(SteeringEngine(scripted(first_stage(matrix))))
    assert in_dq.question_type == "DQ" and in_dq.chosen_key == "DQ_AQ"
    assert in_dq.decision.candidates == ("DQ_DA", "DQ_CQ", "DQ_AQ")
    unknown = run(SteeringEngine(scripted(first_stage(matrix, thinking="A direct answer is cheap."))))
    assert unknown.question_type is None and unknown.chosen_key == "VQ_DA"
    assert len(unknown.decision.candidates) == 6 and "names no question type" in unknown.question_type_evidence
    assert "within" not in unknown.decision_text


def test_forced_response_when_the_continuation_stops_after_analyze():
    calls = []

    def after(prefill):
        calls.append(prefill)
        return " DQ_AQ is best.\n</analyze>\nThanks!" if len(calls) == 1 else "Paris. Anything about its history?"

    backend = scripted(first_stage(LLM_SHIFT_FLIPS), after=after)
    result = run(SteeringEngine(backend, "research-llm-shift"))
    assert [s.name for s in result.stages] == ["payoff", "continue", "response"]
    assert backend.calls[2].prefill == calls[0] + " DQ_AQ is best.\n</analyze>" + "\n<response>\n"
    assert [e.kind for e in result.fallbacks] == ["forced_response"]
    assert "dropping 8 characters" in result.fallbacks[0].detail
    assert result.status == "fallback" and result.response == "Paris. Anything about its history?"
    assert parse_answer(result.text).well_formed


def test_truncated_response_is_kept_and_recorded():
    long_response = " Fine.\n</analyze>\n<response>\n" + " ".join(["word"] * 200)
    backend = scripted(first_stage(LLM_SHIFT_FLIPS), then=long_response)
    result = run(SteeringEngine(backend, params=SamplingParams(max_tokens=60)))
    assert result.stages[-1].finish_reason == "length"
    assert result.fallbacks[-1].kind == "truncated" and result.response.startswith("word word")
    assert result.status == "fallback"


def test_lenient_payoff_is_a_recorded_fallback():
    quoted = first_stage(LLM_SHIFT_FLIPS).replace('"', "'")
    result = run(SteeringEngine(scripted(quoted)))
    assert result.payoff_parse == "lenient" and result.raw == LLM_SHIFT_FLIPS
    assert [e.kind for e in result.fallbacks] == ["lenient_payoff"]
    strict = run(SteeringEngine(scripted(quoted), fallback=Fallback(lenient_payoff=False, default_action=None)))
    assert strict.status == "failed"


def test_per_call_policy_override():
    engine = SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS)), "research-llm-shift")
    plain = run(engine, policy="none")
    assert plain.chosen_key == "DQ_DA" and plain.flipped is False
    assert plain.decision_text.startswith("Pareto frontier: DQ_DA. With no pricing change, the sum rule")
    assert engine.policy.name == "research-llm-shift(s=1)"


def test_economic_payer_flip_through_the_engine():
    prices = {"kind": "economic", "price_per_1k_output": 0.015, "output_tokens": {"DA": 400, "CQ": 50, "AQ": 150},
              "payoff_per_currency": 250}
    engine = SteeringEngine(scripted(first_stage(PAYER_FLIPS)), {**prices, "name": "api", "billing": "pay-per-token"},
                            rule="cobb_douglas")
    per_token = run(engine)
    flat = run(engine, policy={**prices, "name": "flat", "billing": "subscription"})
    assert per_token.chosen_key == "DQ_DA" and flat.chosen_key == "DQ_AQ"
    assert per_token.unsteered.key == flat.unsteered.key == "DQ_DA"
    assert "Under flat pricing, the cobb_douglas rule within the DQ row picks DQ_AQ" in flat.decision_text


def test_concurrent_runs_share_one_engine():
    engine = SteeringEngine(scripted(first_stage(LLM_SHIFT_FLIPS), latency=0.01), "research-llm-shift")

    async def both():
        return await asyncio.gather(engine.run(QUESTION), engine.run(QUESTION, policy="none"))

    steered, plain = asyncio.run(both())
    assert steered.chosen_key == "DQ_AQ" and plain.chosen_key == "DQ_DA"
    assert len(steered.stages) == len(plain.stages) == 2


def test_message_lists_are_sent_as_they_are():
    messages = [{"role": "user", "content": "already instructed"}]
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))
    run(SteeringEngine(backend), messages)
    assert backend.calls[0].messages == ({"role": "user", "content": "already instructed"},)
    assert SteeringEngine(backend, system=None).messages(QUESTION)[0]["role"] == "user"


def test_configuration_errors_raise_at_construction():
    backend = scripted("")
    with pytest.raises(LookupError, match="valid"):
        SteeringEngine(backend, rule="no-such-rule")
    with pytest.raises(PolicyError):
        SteeringEngine(backend, "no-such-policy")
    with pytest.raises(ValueError, match="default_action"):
        SteeringEngine(backend, fallback=Fallback(default_action="REFUSE"))
    space = StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE"))
    with pytest.raises(PolicyError, match="REFUSE"):
        SteeringEngine(backend, "api-pay-per-token", space=space)
    with pytest.raises(ValueError, match="retries"):
        Fallback(retries=-1)


def test_instruct_wraps_a_plain_conversation():
    engine = SteeringEngine(scripted(""))
    talk = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": QUESTION}]
    wrapped = engine.messages(talk, instruct=True)
    assert wrapped == build_messages(talk)
    own = [{"role": "system", "content": "Be brief."}, *talk]
    assert engine.messages(own, instruct=True)[0] == {"role": "system", "content": "Be brief."}
    assert engine.messages(talk) == talk


def test_retries_count_against_the_budget():
    backend = scripted("<payoff>[]", first_stage(LLM_SHIFT_FLIPS))
    result = run(SteeringEngine(backend, params=SamplingParams(max_tokens=300)))
    spent = sum(s.tokens_out for s in result.stages if s.name == "payoff")
    assert backend.calls[2].params.max_tokens == 300 - spent


PLAIN_ANSWER = "Paris is the capital of France."


def _ignoring(answer: str = PLAIN_ANSWER) -> ScriptedBackend:
    """A model that ignores the protocol: it just answers, first stage and continuations alike."""
    return ScriptedBackend(lambda messages, prefill: " I think so." if prefill else answer)


def test_the_first_stage_also_stops_at_a_response_written_out_of_order():
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))
    run(SteeringEngine(backend))
    assert backend.calls[0].params.stop[:2] == ("</payoff>", "</response>")


def test_an_ignored_protocol_is_retried_by_default_then_defaults():
    backend = _ignoring()
    result = run(SteeringEngine(backend))
    assert [s.name for s in result.stages][:2] == ["payoff", "payoff"]
    assert [e.kind for e in result.fallbacks][:2] == ["retry", "default_action"]


def test_retry_ignored_false_skips_the_retry_for_an_ignored_protocol():
    backend = _ignoring()
    result = run(SteeringEngine(backend, fallback=Fallback(retry_ignored=False)))
    assert [s.name for s in result.stages][0] == "payoff" and [s.name for s in result.stages].count("payoff") == 1
    assert "retry" not in [e.kind for e in result.fallbacks] and result.chosen_by == "fallback"


def test_retry_ignored_false_still_retries_a_malformed_matrix():
    broken = first_stage(LLM_SHIFT_FLIPS).replace('"DQ_DA"', '"DQ_XX"')
    result = run(SteeringEngine(scripted(broken, first_stage(LLM_SHIFT_FLIPS)), fallback=Fallback(retry_ignored=False)))
    assert [e.kind for e in result.fallbacks] == ["retry"] and result.chosen_by == "rule"


def test_keep_unstructured_returns_the_models_answer_unsteered():
    backend = _ignoring()
    result = run(SteeringEngine(backend, fallback=Fallback(keep_unstructured=True)))
    assert len(backend.calls) == 1, "nothing is generated beyond the first stage"
    assert result.status == "fallback" and result.response == PLAIN_ANSWER
    assert [e.kind for e in result.fallbacks] == ["unstructured"]
    assert result.chosen_key is None and result.decision is None
    assert result.to_record()["fallbacks"][0]["kind"] == "unstructured"

    async def streamed():
        stream = SteeringEngine(_ignoring(), fallback=Fallback(keep_unstructured=True)).stream(QUESTION)
        return [delta async for delta in stream], stream.result

    deltas, again = asyncio.run(streamed())
    assert deltas == [PLAIN_ANSWER] and again.response == PLAIN_ANSWER


def test_keep_unstructured_marks_a_truncated_answer():
    backend = _ignoring(" ".join(["word"] * 50))
    result = run(SteeringEngine(backend, params=SamplingParams(max_tokens=10), fallback=Fallback(keep_unstructured=True)))
    assert [e.kind for e in result.fallbacks] == ["unstructured", "truncated"]
    assert result.response == " ".join(["word"] * 10)


def test_keep_unstructured_leaves_protocol_attempts_to_the_other_fallbacks():
    broken = first_stage(LLM_SHIFT_FLIPS).replace('"DQ_DA"', '"DQ_XX"')
    result = run(SteeringEngine(scripted(broken), fallback=Fallback(keep_unstructured=True)))
    assert [e.kind for e in result.fallbacks][:2] == ["retry", "default_action"]


def test_keep_unstructured_reads_a_lone_response_block():
    """The first stage stops at </response>; the kept answer is the block's content, not the tag."""
    backend = _ignoring("<response>\nHello there, I can help.\n</response>\nmore")
    result = run(SteeringEngine(backend, fallback=Fallback(keep_unstructured=True)))
    assert result.response == "Hello there, I can help."


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_constrain_asks_each_stage_for_its_grammar_and_records_it(mode: str) -> None:
    backend = ScriptedConstrainingBackend(scripted(first_stage(LLM_SHIFT_FLIPS)).script)
    result = run(SteeringEngine(backend, "research-llm-shift", constrain=mode))  # type: ignore[arg-type]
    assert result.status == "ok"
    constraints = [call.params.constraint for call in backend.calls]
    assert [(c.stage, c.required) for c in constraints if c is not None] == [("payoff", mode == "on"), ("response", mode == "on")]
    assert all(c is not None and c.grammar.space == StrategySpace() for c in constraints)
    assert {c.answer_budget for c in constraints} == {SamplingParams().max_tokens}  # each stage's caps fit the whole answer
    records = [stage["constraint"] for stage in result.to_record()["stages"]]
    assert [(r["stage"], r["enforced"], r["how"]) for r in records] == [("payoff", True, "scripted"), ("response", True, "scripted")]


def test_constrain_off_sends_no_grammar_and_a_forced_response_is_free_text() -> None:
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))
    run(SteeringEngine(backend, constrain="off"))
    assert all(call.params.constraint is None for call in backend.calls)
    # The model closes <analyze> but writes no <response>: the engine opens one and lets it write freely.
    backend = ScriptedConstrainingBackend(scripted(first_stage(LLM_SHIFT_FLIPS), then=" Done.\n</analyze>").script)
    result = run(SteeringEngine(backend, constrain="auto"))
    assert [c.params.constraint and c.params.constraint.stage for c in backend.calls] == ["payoff", "response", None]
    assert [s["name"] for s in result.to_record()["stages"]] == ["payoff", "continue", "response"]


def test_a_backend_that_cannot_constrain_goes_free_under_auto_and_fails_under_on() -> None:
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))  # a plain ChatBackend: no constraint_support
    result = run(SteeringEngine(backend, "research-llm-shift", constrain="auto"))
    assert result.status == "ok" and all(call.params.constraint is None for call in backend.calls)
    records = [stage["constraint"] for stage in result.to_record()["stages"]]
    assert [(r["stage"], r["enforced"]) for r in records] == [("payoff", False), ("response", False)]
    assert all("ScriptedBackend cannot enforce a grammar" in r["reason"] for r in records)
    backend = scripted(first_stage(LLM_SHIFT_FLIPS))
    result = run(SteeringEngine(backend, "research-llm-shift", constrain="on"))
    assert backend.calls == [] and result.status == "failed"
    assert "ScriptedBackend cannot enforce a grammar" in result.stages[0].reason


def test_constrain_options_are_checked() -> None:
    from gtalign.protocol import ProtocolGrammar

    with pytest.raises(ValueError, match="constrain must be one of off, auto, on"):
        SteeringEngine(scripted("x"), constrain="always")  # type: ignore[arg-type]
    other = ProtocolGrammar(space=StrategySpace(actions=("DA", "REFUSE")))
    with pytest.raises(ValueError, match="the grammar's strategy space"):
        SteeringEngine(scripted("x"), constrain="auto", grammar=other)
