"""Protocol-constrained decoding over HTTP: each server kind (the fake server impersonating it)
receives exactly its own constraint fields and an otherwise unchanged body, every constrained
`Generation` carries the record, and a required constraint a server cannot enforce fails without a
request. A real llama-cpp-python server on loopback (slow) checks that its ``grammar`` field holds.
Ollama's payoff stage, two calls, has its own tests (``test_http_ollama_payoff.py``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from gtalign.backends._base import Constraint, Generation, SamplingParams, constraint_record
from gtalign.backends._http import (
    OLLAMA_JSON_ONLY,
    OLLAMA_PAYOFF,
    OLLAMA_PREFILLED_PAYOFF,
    SERVER_KINDS,
    ChatTemplate,
    HTTPBackend,
    ServerKind,
)
from gtalign.protocol import ProtocolGrammar, parse_answer
from gtalign.testing import FakeOpenAI, FakeRequest, Reply
from tests.backends._http_helpers import ChatMLTokenizer, RecordingTransport, Sleeps, llama_server  # noqa: F401 (a fixture)

MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Will it rain today?"})
GRAMMAR = ProtocolGrammar(thinking_chars=80, analyze_chars=80, response_chars=200)
PREFILL = "<analyze>Pareto frontier: DQ_DA, VQ_DA. Chosen key: DQ_DA."
TEMPLATE = ChatTemplate.from_tokenizer(ChatMLTokenizer(), source="chatml-test")


def answer(request: FakeRequest) -> str:
    return " It will rain.</analyze>\n<response>Take an umbrella.</response>" if request.prefill else "Rain."


def backend_for(fake: FakeOpenAI, **options: Any) -> HTTPBackend:
    return HTTPBackend(fake.base_url, "m", sleep=Sleeps(), tokenizer=TEMPLATE, backoff_base=0.0, **options)


def params(stage: str = "full", required: bool = False, **options: Any) -> SamplingParams:
    return SamplingParams(max_tokens=50, stop=("</response>",), seed=1,
                          constraint=Constraint(GRAMMAR, stage, required), **options)  # type: ignore[arg-type]


def added(plain: Mapping[str, Any], constrained: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a constrained body adds to the plain one; fails if it changed any other field."""
    assert {k: v for k, v in constrained.items() if k in plain} == dict(plain)
    assert set(plain) <= set(constrained)
    return {k: v for k, v in constrained.items() if k not in plain}


def old_vllm(kind: ServerKind, version: str | None) -> bool:
    """A vLLM before 0.12 (the fake reports 0.11.0 unless given a version)."""
    return kind == "vllm" and (version or "0.11.0") == "0.11.0"


def expected_fields(kind: ServerKind, version: str | None, stage: str) -> dict[str, Any]:
    """Each kind's own constraint fields (see the `gtalign.backends._http` docstring for the sources)."""
    gbnf = GRAMMAR.gbnf(stage)  # type: ignore[arg-type]
    if kind == "vllm":
        return {"guided_grammar": gbnf} if old_vllm(kind, version) else {"structured_outputs": {"grammar": gbnf}}
    if kind == "sglang":
        return {"ebnf": gbnf}
    if kind in ("llama.cpp", "llama-cpp-python"):
        return {"grammar": gbnf}
    return {}


HOW: dict[ServerKind, str | None] = {
    "vllm": "vllm structured_outputs.grammar",
    "sglang": "sglang ebnf",
    "llama.cpp": "llama-server grammar",
    "llama-cpp-python": "llama-cpp-python grammar",
    "ollama": None,
    "openai": None,
}

# Ollama's payoff stage is two requests, not one with a field: test_http_ollama_payoff.py.
CASES = [(kind, None, stage) for kind in SERVER_KINDS for stage in ("full", "payoff", "response")
         if (kind, stage) != ("ollama", "payoff")] + [
    ("vllm", "0.11.0", "full"), ("vllm", "0.12.0", "full"), ("vllm", "0.13.2rc1", "payoff"), ("vllm", "v1.0.0", "response")]


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(("kind", "version", "stage"), CASES)
async def test_each_kind_receives_exactly_its_own_fields(kind: ServerKind, version: str | None, stage: str, streamed: bool) -> None:
    """The body is the plain one plus this kind's fields only, for a new turn and a continued one."""
    prefill = PREFILL if stage == "response" else ""
    async with FakeOpenAI(answer, kind=kind, version=version) as fake, backend_for(fake) as backend:
        async def call(p: SamplingParams) -> Generation:
            if not streamed:
                return await backend.generate(MESSAGES, prefill=prefill, params=p)
            stream = backend.stream(MESSAGES, prefill=prefill, params=p)
            text = "".join([delta async for delta in stream])
            assert text == stream.result.text
            return stream.result

        plain = await call(SamplingParams(max_tokens=50, stop=("</response>",), seed=1))
        constrained = await call(params(stage))
        assert [r.path for r in fake.received] == [fake.received[0].path] * 2
        fields = added(fake.received[0].body, fake.received[1].body)
        assert fields == expected_fields(kind, version, stage)
        assert "constraint" not in plain.extra
        assert constrained.ok and constrained.text == plain.text

        how = "vllm guided_grammar" if old_vllm(kind, version) else HOW[kind]
        record = constrained.extra["constraint"]
        assert record == constraint_record(Constraint(GRAMMAR, stage), how, record["reason"])  # type: ignore[arg-type, index]
        assert bool(record["reason"]) == (how is None)  # type: ignore[index]
        assert backend.constraint_support(stage) == how  # type: ignore[arg-type]


async def test_support_is_unknown_until_the_kind_is_detected() -> None:
    async with FakeOpenAI(answer, kind="sglang") as fake, backend_for(fake) as backend:
        assert backend.constraint_support("full") is None
        await backend.prepare()
        assert backend.constraint_support("full") == "sglang ebnf"
    async with FakeOpenAI(answer, kind="vllm") as fake, backend_for(fake, kind="vllm") as backend:
        assert backend.constraint_support("payoff") == "vllm structured_outputs.grammar"  # no version known: today's field


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(("kind", "stage", "prefill"), [
    ("openai", "full", ""), ("openai", "payoff", ""), ("ollama", "full", ""), ("ollama", "response", PREFILL),
    ("ollama", "payoff", "<thinking>Started"),  # Ollama holds a payoff stage only from the answer's start
])
async def test_a_required_constraint_the_server_cannot_enforce_fails_without_a_request(
    kind: ServerKind, stage: str, prefill: str, streamed: bool
) -> None:
    async with FakeOpenAI(answer, kind=kind) as fake, backend_for(fake) as backend:
        if streamed:
            stream = backend.stream(MESSAGES, prefill=prefill, params=params(stage, required=True))
            assert [delta async for delta in stream] == []
            result = stream.result
        else:
            result = await backend.generate(MESSAGES, prefill=prefill, params=params(stage, required=True))
        assert fake.requests == 0 and fake.received == []
        assert result.status == "failed" and result.text == ""
        assert "required" in result.reason and "cannot enforce" in result.reason and "no request was sent" in result.reason
        if kind == "ollama":
            assert (OLLAMA_PREFILLED_PAYOFF if stage == "payoff" else OLLAMA_JSON_ONLY) in result.reason
        record = result.extra["constraint"]
        assert record == {"enforced": False, "how": None, "stage": stage, "required": True, "reason": result.reason}


async def test_a_required_constraint_goes_out_where_the_server_enforces_it() -> None:
    async with FakeOpenAI(answer, kind="llama.cpp") as fake, backend_for(fake) as backend:
        result = await backend.generate(MESSAGES, params=params("full", required=True))
    assert result.ok and fake.received[0].body["grammar"] == GRAMMAR.gbnf("full")
    assert result.extra["constraint"] == {"enforced": True, "how": "llama-server grammar", "stage": "full", "required": True, "reason": ""}


async def test_unenforced_stages_and_ollamas_json_only_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.backends.http")
    async with FakeOpenAI(answer, kind="ollama") as fake, backend_for(fake) as backend:
        for _ in range(2):
            rest = await backend.generate(MESSAGES, prefill=PREFILL, params=params("response"))
            whole = await backend.generate(MESSAGES, params=params("full"))
            prefilled = await backend.generate(MESSAGES, prefill="<thinking>Started", params=params("payoff"))
        assert backend.constraint_support("payoff") == OLLAMA_PAYOFF  # from the answer's start
    messages = [record.getMessage() for record in caplog.records]
    assert sum(OLLAMA_JSON_ONLY in m for m in messages) == 2  # once per stage: response, full
    assert sum(OLLAMA_PREFILLED_PAYOFF in m for m in messages) == 1
    assert sum("constrained decoding is off for the full stage" in m for m in messages) == 1
    for result in (rest, whole):
        assert result.extra["constraint"]["reason"] == f"sent unconstrained: {OLLAMA_JSON_ONLY}"  # type: ignore[index]
    assert prefilled.extra["constraint"]["reason"] == f"sent unconstrained: {OLLAMA_PREFILLED_PAYOFF}"  # type: ignore[index]
    assert len(fake.received) == 6 and all("response_format" not in r.body for r in fake.received)


async def test_a_failed_call_still_carries_the_record() -> None:
    """Server trouble and an unreachable server: the record is there, saying what was asked."""
    async with FakeOpenAI(lambda r: Reply(fault="server_error"), kind="sglang") as fake, backend_for(fake, max_retries=0) as backend:
        broken = await backend.generate(MESSAGES, params=params("payoff"))
    assert broken.status == "failed" and fake.received[0].body["ebnf"] == GRAMMAR.gbnf("payoff")
    assert broken.extra["constraint"] == constraint_record(Constraint(GRAMMAR, "payoff"), "sglang ebnf")
    async with FakeOpenAI(lambda r: "x", kind="sglang") as fake, backend_for(fake, max_retries=0) as backend:
        await fake.stop()
        down = await backend.generate(MESSAGES, params=params("payoff"))
    assert down.status == "failed"
    assert down.extra["constraint"]["how"] is None and down.extra["constraint"]["reason"].startswith("not sent: ")  # type: ignore[index]


# -- a real llama-cpp-python server ------------------------------------------------------------------




@pytest.mark.slow
async def test_real_llama_cpp_python_server_holds_the_grammar(llama_server: tuple[str, Any]) -> None:
    """SmolLM2 untrained on the protocol writes a parsable answer when the server holds it to the
    grammar: the whole answer on the chat endpoint, and the response stage after a prefill on the
    completions endpoint."""
    base_url, gguf = llama_server
    transport = RecordingTransport()
    question = [{"role": "user", "content": "Should I bring an umbrella today?"}]
    async with HTTPBackend(base_url, "smollm2", tokenizer=gguf, transport=transport) as backend:
        assert await backend.prepare() == "llama-cpp-python"
        full = await backend.generate(question, params=SamplingParams(max_tokens=700, constraint=Constraint(GRAMMAR)))
        method, path, body = transport.requests[-1]
        assert (path, body["grammar"]) == ("/v1/chat/completions", GRAMMAR.gbnf("full"))
        assert full.ok and full.finish_reason == "stop", full
        parsed = parse_answer(full.text)
        assert parsed.problems == (), (full.text, parsed.problems)
        assert full.extra["constraint"]["how"] == "llama-cpp-python grammar"  # type: ignore[index]

        rest = await backend.generate(question, prefill=PREFILL,
                                      params=SamplingParams(max_tokens=400, constraint=Constraint(GRAMMAR, "response")))
        method, path, body = transport.requests[-1]
        assert (path, body["grammar"]) == ("/v1/completions", GRAMMAR.gbnf("response"))
        assert rest.ok and rest.finish_reason == "stop", rest
        assert rest.text.count("</analyze>") == 1 and rest.text.rstrip().endswith("</response>"), rest.text
