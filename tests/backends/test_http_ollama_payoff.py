"""Ollama's payoff stage, held in two calls (`OLLAMA_PAYOFF`): the thinking free up to
``</thinking>``, then the turn so far plus ``</thinking>\\n<payoff>`` continued under
``response_format`` json_schema with the payoff's schema. The fake server impersonates Ollama's
``/v1/chat/completions`` (a trailing assistant message is continued; ``stop`` and ``max_tokens`` in
words); each test checks the requests as received and the one `Generation` the stage returns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from gtalign.backends._base import Constraint, Generation, SamplingParams, constraint_record
from gtalign.backends._http import OLLAMA_JSON_ONLY, OLLAMA_PAYOFF, HTTPBackend
from gtalign.game import PayoffMatrix
from gtalign.protocol import ProtocolGrammar, parse_answer
from gtalign.steering import SteeringEngine
from gtalign.testing import FakeOpenAI, FakeRequest, Reply
from tests.backends._http_helpers import Sleeps

MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Will it rain today?"})
GRAMMAR = ProtocolGrammar()
THOUGHT = "The question is definite (DQ): it asks for one fact, so a direct answer is cheap."
MATRIX = PayoffMatrix.from_arrays(user=[[3.4, 0.8, 3.2], [2.4, 0.9, 2.2]], llm=[[3.1, 1.1, 3.0], [2.6, 1.0, 2.0]])
PAYOFF_JSON = json.dumps(MATRIX.to_dict())  # spaced: 25 words, as the fake counts tokens
RESPONSE = "Take an umbrella."
FREE = "free: written without a grammar up to </thinking>"
HELD = "enforced: its keys and cells held by the payoff's JSON schema (response_format json_schema), not its numbers' range"
SCHEMA_FIELD = {"type": "json_schema", "json_schema": {"name": "payoff", "schema": GRAMMAR.payoff_schema()}}


def words(text: str) -> int:
    return len(text.split())


def prompt_words(request: FakeRequest) -> int:
    """The prompt tokens the fake reports for a chat request (its words)."""
    return sum(words(str(m.get("content", ""))) for m in request.messages)


def ollama(thinking: str = f" {THOUGHT}", payoff: str = PAYOFF_JSON) -> Callable[[FakeRequest], Reply | str]:
    """A model behind Ollama: held to a schema it writes ``payoff``; after an ``<analyze>`` it ends
    the answer; otherwise it thinks, and would go on writing past ``</thinking>`` if not stopped."""

    def script(request: FakeRequest) -> Reply | str:
        if "response_format" in request.body:
            return payoff
        if request.prefill and "<analyze>" in request.prefill:
            return f" It will rain.</analyze>\n<response>{RESPONSE}</response>"
        return f"{thinking}</thinking>\n<payoff>{{\"DQ_DA\": \"free text, not held\"}}</payoff>"

    return script


def backend_for(fake: FakeOpenAI, **options: Any) -> HTTPBackend:
    return HTTPBackend(fake.base_url, "m", sleep=Sleeps(), backoff_base=0.0, **options)


def stage(max_tokens: int = 600, stop: tuple[str, ...] = ("</payoff>", "</response>"), grammar: ProtocolGrammar = GRAMMAR,
          required: bool = False) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, stop=stop, seed=7, temperature=0.0,
                          constraint=Constraint(grammar, "payoff", required))


def reserve(grammar: ProtocolGrammar) -> int:
    """The widest payoff JSON the grammar allows, a token per character, and the end of turn."""
    skeleton = grammar.skeleton("payoff")
    return len(skeleton.split("<payoff>")[1].split("</payoff>")[0].strip()) + 1


async def generate(fake: FakeOpenAI, params: SamplingParams, streamed: bool = False, **options: Any) -> Generation:
    async with backend_for(fake, **options) as backend:
        if not streamed:
            return await backend.generate(MESSAGES, params=params)
        stream = backend.stream(MESSAGES, params=params)
        pieces = [piece async for piece in stream]
        assert "".join(pieces) == stream.result.text and len(pieces) <= 1  # the stage comes whole, at its end
        return stream.result


# -- the two requests --------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_thinking_goes_free_then_the_payoff_under_its_schema(streamed: bool) -> None:
    async with FakeOpenAI(ollama(), kind="ollama") as fake:
        result = await generate(fake, stage(), streamed)
    first, second = fake.received
    # 1: a prefilled <thinking> continued without a grammar; the server stops only at </thinking>.
    assert first.path == second.path == "/chat/completions"
    assert list(first.messages[:-1]) == list(MESSAGES) and first.prefill == "<thinking>"
    assert "response_format" not in first.body and first.body["stop"] == ["</thinking>"]
    # 2: the turn so far and the payoff's opening, continued under the payoff's schema.
    assert list(second.messages[:-1]) == list(MESSAGES)
    assert second.prefill == f"<thinking> {THOUGHT}</thinking>\n<payoff>"
    assert second.body["response_format"] == SCHEMA_FIELD and "stop" not in second.body
    same = ("model", "temperature", "top_p", "seed", "stream")
    assert {k: second.body.get(k) for k in same} == {k: first.body.get(k) for k in same}

    # The stage's text is the whole of it; </payoff> is the stop string the caller gave.
    assert result.ok and (result.finish_reason, result.stop) == ("stop", "</payoff>")
    assert result.text == second.prefill + PAYOFF_JSON
    parsed = parse_answer(result.text + "</payoff>")
    assert parsed.thinking == THOUGHT and parsed.payoff == MATRIX
    assert {p.block for p in parsed.problems} == {"analyze", "response"}  # only what stage 2 writes is missing

    assert result.tokens_out == words(THOUGHT) + words(PAYOFF_JSON)
    assert result.tokens_in == prompt_words(first) + prompt_words(second)
    assert (result.extra["calls"], result.extra["attempts"], result.extra["server_kind"]) == (2, 2, "ollama")
    assert result.extra["constraint"] == {**constraint_record(Constraint(GRAMMAR, "payoff"), OLLAMA_PAYOFF),
                                          "thinking": FREE, "payoff": HELD}


async def test_without_payoff_close_as_a_stop_string_the_tag_is_appended() -> None:
    async with FakeOpenAI(ollama(), kind="ollama") as fake:
        result = await generate(fake, stage(stop=()))
    assert result.ok and (result.finish_reason, result.stop) == ("stop", None)
    assert result.text == f"<thinking> {THOUGHT}</thinking>\n<payoff>{PAYOFF_JSON}</payoff>"
    assert parse_answer(result.text).payoff == MATRIX


async def test_support_names_the_payoff_stage_only() -> None:
    async with FakeOpenAI(ollama(), kind="ollama") as fake, backend_for(fake) as backend:
        assert backend.constraint_support("payoff") is None  # the kind is not known yet
        assert await backend.prepare() == "ollama"
        assert backend.constraint_support("payoff") == OLLAMA_PAYOFF
        assert backend.constraint_support("full") is None and backend.constraint_support("response") is None


async def test_a_required_payoff_constraint_is_held_the_same_way() -> None:
    async with FakeOpenAI(ollama(), kind="ollama") as fake:
        result = await generate(fake, stage(required=True))
    assert result.ok and len(fake.received) == 2 and fake.received[1].body["response_format"] == SCHEMA_FIELD
    assert result.extra["constraint"]["required"] is True and result.extra["constraint"]["how"] == OLLAMA_PAYOFF  # type: ignore[index]


# -- the budget ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [600, 300, 40])
async def test_the_two_calls_share_the_stages_budget(budget: int) -> None:
    """The thinking gets what the payoff's reserve leaves (half the budget when it cannot hold the
    reserve); the payoff gets exactly what the thinking left, so the stage stays within max_tokens."""
    async with FakeOpenAI(ollama(), kind="ollama") as fake:
        result = await generate(fake, stage(budget))
    first, second = fake.received
    thinking_budget = budget - reserve(GRAMMAR) if budget > reserve(GRAMMAR) else budget // 2
    assert first.body["max_tokens"] == thinking_budget
    assert second.body["max_tokens"] == budget - words(THOUGHT)
    assert result.tokens_out is not None and result.tokens_out <= budget
    if words(PAYOFF_JSON) > budget - words(THOUGHT):  # the budget cannot hold the payoff: it ends at the limit
        assert result.finish_reason == "length" and result.stop is None
        assert result.extra["constraint"]["payoff"].endswith(f"cut at max_tokens ({budget - words(THOUGHT)} tokens "  # type: ignore[index]
                                                              "were left after the thinking)")
    else:
        assert result.ok and result.stop == "</payoff>"


@pytest.mark.parametrize(("grammar", "most"), [
    (ProtocolGrammar(thinking_chars=40), 40), (ProtocolGrammar(thinking_tokens=12), 12)])
async def test_the_thinking_never_gets_more_than_the_grammar_allows_it(grammar: ProtocolGrammar, most: int) -> None:
    async with FakeOpenAI(ollama(), kind="ollama") as fake:
        await generate(fake, stage(600, grammar=grammar))
    assert fake.received[0].body["max_tokens"] == most + len("</thinking>")  # room for the closing tag


async def test_a_thinking_cut_at_its_budget_is_closed_and_the_payoff_still_held() -> None:
    """The limit cut the model inside ``</thinking>``: the partial tag goes, the whole one is put in."""
    compact = json.dumps(MATRIX.to_dict(), separators=(",", ":"))  # one word for the fake
    async with FakeOpenAI(ollama(" one two three </thinki more words", compact), kind="ollama") as fake:
        result = await generate(fake, stage(8))
    first, second = fake.received
    assert (first.body["max_tokens"], second.body["max_tokens"]) == (4, 4)
    assert second.prefill == "<thinking> one two three </thinking>\n<payoff>"
    assert result.ok and result.text == second.prefill + compact and result.tokens_out == 5
    assert parse_answer(result.text + "</payoff>").payoff == MATRIX
    assert result.extra["constraint"]["thinking"] == f"{FREE}, cut at 4 tokens and closed by the backend"  # type: ignore[index]
    assert result.extra["constraint"]["payoff"] == HELD  # type: ignore[index]


async def test_a_callers_stop_string_inside_the_thinking_ends_the_stage_there() -> None:
    async with FakeOpenAI(ollama(" first part\n\nsecond part"), kind="ollama") as fake:
        result = await generate(fake, stage(stop=("\n\n", "</payoff>")))
    assert len(fake.received) == 1 and fake.received[0].body["stop"] == ["</thinking>"]
    assert result.ok and (result.text, result.finish_reason, result.stop) == ("<thinking> first part", "stop", "\n\n")
    assert result.extra["constraint"]["payoff"] == "not reached: the thinking ended at the stop string '\\n\\n'"  # type: ignore[index]


# -- failures and cancellation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "status"), [("server_error", "failed"), ("overflow", "context_overflow")])
@pytest.mark.parametrize("failing", ["thinking", "payoff"])
async def test_a_failing_call_fails_the_stage_with_its_reason(failing: str, fault: str, status: str) -> None:
    plain = ollama()

    def script(request: FakeRequest) -> Reply | str:
        if ("response_format" in request.body) == (failing == "payoff"):
            return Reply(fault=fault)  # type: ignore[arg-type]
        return plain(request)

    async with FakeOpenAI(script, kind="ollama") as fake:
        result = await generate(fake, stage(), max_retries=0)
        alone = await generate(fake, SamplingParams(max_tokens=10), max_retries=0) if failing == "thinking" else None
    assert (result.status, result.text, result.finish_reason) == (status, "", "error")
    assert len(fake.received) == (1 if failing == "thinking" else 2) + (alone is not None)
    which = "first of Ollama's two payoff-stage calls (the thinking)" if failing == "thinking" else \
        "second of Ollama's two payoff-stage calls (the payoff's JSON under its schema"
    assert which in result.reason
    if alone is not None:  # the server's own reason is passed on
        assert alone.reason and alone.reason in result.reason
    record = result.extra["constraint"]
    assert record["how"] == OLLAMA_PAYOFF and record["thinking"] == FREE  # type: ignore[index]
    assert record["payoff"] == ("not reached: the thinking call failed" if failing == "thinking"  # type: ignore[index]
                                else "failed: the payoff call failed")
    assert result.tokens_out == (0 if failing == "thinking" else words(THOUGHT))  # the thinking's tokens were spent


async def test_cancelling_during_the_payoff_call_cancels_the_request() -> None:
    plain = ollama()

    def script(request: FakeRequest) -> Reply | str:
        return Reply(fault="hang") if "response_format" in request.body else plain(request)

    async with FakeOpenAI(script, kind="ollama") as fake, backend_for(fake) as backend:
        task = asyncio.create_task(backend.generate(MESSAGES, params=stage()))
        for _ in range(2000):  # until the payoff call is in (a bounded count of turns, not a clock)
            if len(fake.received) == 2:
                break
            await asyncio.sleep(0.005)
        assert len(fake.received) == 2 and fake.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(2000):  # the server sees the connection go
            if fake.in_flight == 0:
                break
            await asyncio.sleep(0.005)
        assert fake.in_flight == 0 and fake.counts["hang"] == 1


# -- steering over Ollama ----------------------------------------------------------------------------------


async def test_steering_on_ollama_holds_the_payoff_and_answers() -> None:
    async with FakeOpenAI(ollama(), kind="ollama") as fake, backend_for(fake) as backend:
        engine = SteeringEngine(backend, constrain="auto", params=SamplingParams(max_tokens=600, seed=3))
        result = await engine.run("Will it rain today?")
    assert result.status == "ok" and result.fallbacks == () and result.response == RESPONSE, result.reason
    assert result.raw == MATRIX
    payoff, written = result.stages
    assert (payoff.name, written.name) == ("payoff", "continue")
    assert payoff.constraint is not None and payoff.constraint["enforced"] is True
    assert (payoff.constraint["how"], payoff.constraint["payoff"], payoff.constraint["thinking"]) == (OLLAMA_PAYOFF, HELD, FREE)
    assert payoff.tokens_out == words(THOUGHT) + words(PAYOFF_JSON)
    assert payoff.text == f"<thinking> {THOUGHT}</thinking>\n<payoff>{PAYOFF_JSON}</payoff>"
    # The response stage is tagged text: Ollama sends it free, and the record says why.
    assert written.constraint is not None and written.constraint["reason"] == f"sent unconstrained: {OLLAMA_JSON_ONLY}"
    assert written.max_tokens == 600 - payoff.tokens_out
    assert [("response_format" in r.body) for r in fake.received] == [False, True, False]
    assert fake.received[2].prefill is not None and fake.received[2].prefill.startswith(payoff.text + "\n<analyze>")
    assert parse_answer(result.text).problems == ()


async def test_a_thinking_without_usage_counts_as_its_whole_budget() -> None:
    """A server (or proxy) that reports no usage: the payoff gets what the thinking's budget left,
    so the two calls still fit the stage's max_tokens, and the stage's count is unknown."""
    plain = ollama()

    def script(request: FakeRequest) -> Reply | str:
        answer = plain(request)
        return answer if "response_format" in request.body else Reply(text=str(answer), usage=False)

    async with FakeOpenAI(script, kind="ollama") as fake:
        result = await generate(fake, stage(600))
    first, second = fake.received
    assert second.body["max_tokens"] == 600 - first.body["max_tokens"]
    assert result.ok and result.tokens_out is None and result.tokens_in is None
    assert parse_answer(result.text + "</payoff>").payoff == MATRIX
