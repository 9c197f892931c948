"""The HTTP chat backend against the fake server impersonating each server kind, and against a real
llama-cpp-python server (slow): detection, the continuation mechanism per kind (the exact request
bodies), stop strings, token and latency reporting, failures under injected faults, streaming."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gtalign._chat_client import ChatClient, ClientConfig
from gtalign.backends._base import ChatBackend, Generation, SamplingParams
from gtalign.backends._http import (
    CONTINUATION,
    EMULATED_CONTINUATION_PROMPT,
    SERVER_KINDS,
    ChatTemplate,
    HTTPBackend,
    ServerKind,
    _root_url,
    _TextFilter,
)
from gtalign.testing import FakeOpenAI, FakeRequest, Reply, fake_openai
from tests.backends._http_helpers import ChatMLTokenizer, RecordingTransport, Sleeps, llama_server  # noqa: F401 (a fixture)

MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Will it rain today?"})
PREFILL = "<thinking>Clouds are low.</thinking>\n<payoff>"
CONTINUED = '{"DQ_DA": {"LLM": 3.0, "user": 2.5}}</payoff>\n<analyze>never shown</analyze>'
FRESH = "A fresh assistant turn."
PARAMS = SamplingParams(max_tokens=60, stop=("</payoff>",), seed=3)
SAMPLING = {"max_tokens": 60, "temperature": 0.0, "top_p": 1.0, "seed": 3, "stop": ["</payoff>"]}
CHATML = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWill it rain today?<|im_end|>\n<|im_start|>assistant\n"
TEMPLATE = ChatTemplate.from_tokenizer(ChatMLTokenizer(), source="chatml-test")
REPORTS_STOP = {"vllm", "sglang", "llama.cpp"}


def model(request: FakeRequest) -> Reply | str:
    """A model that continues a turn when the server hands it one, or answers an emulated request."""
    if request.prefill is not None:
        return CONTINUED
    if request.messages and request.messages[-1].get("content") == EMULATED_CONTINUATION_PROMPT:
        return CONTINUED
    if "|" in request.prompt:  # "question|fault": the fault on the first attempt only
        fault = request.prompt.split("|")[1]
        if request.seen == 0:
            return Reply(text=FRESH, fault=fault, retry_after=0.5 if fault == "rate_limit" else None)  # type: ignore[arg-type]
    return FRESH


def backend_for(fake: FakeOpenAI, **options: Any) -> HTTPBackend:
    options.setdefault("sleep", Sleeps())
    options.setdefault("tokenizer", TEMPLATE)
    options.setdefault("backoff_base", 0.0)
    return HTTPBackend(fake.base_url, "m", **options)


@pytest.fixture(params=SERVER_KINDS)
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(model, kind=request.param, model="served-model") as server:
        yield server


# -- detection -----------------------------------------------------------------------------------


async def test_each_kind_is_detected_once(fake: FakeOpenAI) -> None:
    async with backend_for(fake) as backend:
        assert isinstance(backend, ChatBackend) and backend.detection is None
        assert await backend.server_kind() == fake.kind
        assert backend.detection is not None and backend.detection.evidence
        probes = list(fake.probes)
        await asyncio.gather(*(backend.generate(MESSAGES) for _ in range(5)))
        generation = await backend.generate(MESSAGES)
        assert await backend.server_kind() == fake.kind and generation.extra["server_kind"] == fake.kind
        assert fake.probes == probes, "detection must be cached"


async def test_concurrent_first_calls_detect_once() -> None:
    async with FakeOpenAI(model, kind="vllm") as fake, backend_for(fake) as backend:
        results = await asyncio.gather(*(backend.generate(MESSAGES) for _ in range(8)))
        assert all(r.ok and r.text == FRESH for r in results)
        assert fake.probes.count("/v1/models") == 1


async def test_detection_evidence_names_the_probe() -> None:
    async with FakeOpenAI(model) as generic, FakeOpenAI(model, kind="llama.cpp") as llama:
        async with backend_for(generic) as generic_backend, backend_for(llama) as llama_backend:
            assert await generic_backend.server_kind() == "openai" and await llama_backend.prepare() == "llama.cpp"
            assert generic_backend.detection is not None and "no probe matched" in generic_backend.detection.evidence
            assert llama_backend.detection is not None and "owned_by 'llamacpp'" in llama_backend.detection.evidence


@pytest.mark.parametrize("kind", ["llama.cpp", "ollama", "vllm", "sglang"])
async def test_root_probes_identify_a_server_whose_models_say_nothing(kind: ServerKind, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a proxy that rewrites ``owned_by``, the server's own endpoints still tell the kind."""
    monkeypatch.setitem(fake_openai._OWNED_BY, kind, "proxy")
    async with FakeOpenAI(model, kind=kind) as fake, backend_for(fake) as backend:
        assert await backend.server_kind() == kind
        assert backend.detection is not None and "/models" not in backend.detection.evidence


async def test_a_given_kind_skips_detection() -> None:
    async with FakeOpenAI(model, kind="ollama") as fake:
        backend = backend_for(fake, kind="vllm")
        generation = await backend.generate(MESSAGES, prefill=PREFILL, params=PARAMS)
        assert await backend.server_kind() == "vllm" and fake.probes == []
        assert fake.received[0].body["continue_final_message"] is True and generation.extra["server_kind"] == "vllm"
        await backend.aclose()


async def test_unreachable_server_is_a_failed_generation_and_detection_is_retried_later() -> None:
    async with FakeOpenAI(model) as fake:
        url = fake.base_url
    backend = HTTPBackend(url, "m", probe_timeout=1.0)
    generation = await backend.generate(MESSAGES)
    assert generation.status == "failed" and "cannot tell what kind of server" in generation.reason and "kind=" in generation.reason
    assert backend.detection is None
    with pytest.raises(RuntimeError, match="is it running"):
        await backend.server_kind()


def test_bad_arguments_raise_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="valid kinds: auto, vllm, sglang"):
        HTTPBackend("http://127.0.0.1:9/v1", "m", kind="tgi")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"HTTPBackend got unknown option.*concurency"):
        HTTPBackend("http://127.0.0.1:9/v1", "m", concurency=3)
    with pytest.raises(TypeError, match="needs base_url and model"):
        HTTPBackend(model="m")
    backend = HTTPBackend(client=ClientConfig("http://127.0.0.1:9/v1", "m", concurrency=3), max_retries=1)
    assert (backend.config.concurrency, backend.config.max_retries, backend.model, backend.name) == (3, 1, "m", "http")


@pytest.mark.parametrize(
    ("base", "root"),
    [("http://h:8000/v1", "http://h:8000"), ("http://h:8000/v1/", "http://h:8000"), ("https://h/api/v1", "https://h/api"), ("http://h:1", "http://h:1")],
)
def test_root_url(base: str, root: str) -> None:
    assert _root_url(base) == root


# -- continuation, per kind ----------------------------------------------------------------------


def expected_request(kind: ServerKind) -> tuple[str, dict[str, Any]]:
    partial = {"role": "assistant", "content": PREFILL}
    chat = {"model": "m", "messages": [*MESSAGES, partial], **SAMPLING}
    if kind in ("vllm", "sglang"):
        return "/chat/completions", {**chat, "continue_final_message": True, "add_generation_prompt": False}
    if kind in ("llama.cpp", "ollama"):
        return "/chat/completions", chat
    if kind == "llama-cpp-python":
        return "/completions", {"model": "m", "prompt": CHATML + PREFILL, **SAMPLING}
    return "/chat/completions", {**chat, "messages": [*MESSAGES, partial, {"role": "user", "content": EMULATED_CONTINUATION_PROMPT}]}


async def test_continuation_request_per_kind(fake: FakeOpenAI) -> None:
    assert fake.kind is not None
    async with backend_for(fake) as backend:
        generation = await backend.generate(MESSAGES, prefill=PREFILL, params=PARAMS)
    path, body = expected_request(fake.kind)
    seen = fake.received[-1]
    assert (seen.path, dict(seen.body)) == (path, body)
    assert generation.ok and generation.text == '{"DQ_DA": {"LLM": 3.0, "user": 2.5}}'
    assert generation.extra["continuation"] == CONTINUATION[fake.kind] and generation.extra["endpoint"] == path
    if fake.kind == "openai":
        assert seen.prefill is None  # a new turn, asked to continue: emulated
    else:
        assert seen.prefill == PREFILL  # the server itself continues the partial message
    assert ("chat_template" in generation.extra) == (fake.kind == "llama-cpp-python")


async def test_without_a_prefill_every_kind_gets_a_plain_chat_request(fake: FakeOpenAI) -> None:
    async with backend_for(fake) as backend:
        generation = await backend.generate(MESSAGES, params=PARAMS)
    seen = fake.received[-1]
    assert (seen.path, dict(seen.body)) == ("/chat/completions", {"model": "m", "messages": list(MESSAGES), **SAMPLING})
    assert generation.text == FRESH and "continuation" not in generation.extra


@pytest.mark.parametrize(
    ("server", "used"), [("vllm", "llama.cpp"), ("sglang", "ollama"), ("llama-cpp-python", "llama.cpp"), ("openai", "ollama")]
)
async def test_the_wrong_mechanism_starts_a_new_turn(server: ServerKind, used: ServerKind) -> None:
    """Why the kind matters: these servers close a trailing assistant message and write a new turn."""
    async with FakeOpenAI(model, kind=server) as fake:
        async with backend_for(fake, kind=used) as backend:
            generation = await backend.generate(MESSAGES, prefill=PREFILL, params=PARAMS)
        assert fake.received[-1].prefill is None and generation.text == FRESH


async def test_vllm_refuses_continue_final_message_with_a_generation_prompt() -> None:
    async with FakeOpenAI(model, kind="vllm") as fake, ChatClient(ClientConfig(fake.base_url, "m")) as client:
        body = {"model": "m", "messages": [*MESSAGES, {"role": "assistant", "content": "x"}], "continue_final_message": True}
        result = await client.send("/chat/completions", body)
        assert result.status == "failed" and result.http_status == 400 and "add_generation_prompt" in result.reason
        assert result.attempts == 1


async def test_llama_cpp_python_needs_a_tokenizer_for_a_prefill() -> None:
    async with FakeOpenAI(model, kind="llama-cpp-python") as fake:
        backend = HTTPBackend(fake.base_url, "served-model")
        plain = await backend.generate(MESSAGES)
        continued = await backend.generate(MESSAGES, prefill=PREFILL)
        assert plain.ok and plain.text == FRESH
        assert continued.status == "failed" and "tokenizer=" in continued.reason and "/v1/completions" in continued.reason
        assert fake.requests == 1
        with pytest.raises(RuntimeError, match="tokenizer="):
            await backend.prepare()
        missing = HTTPBackend(fake.base_url, "m", tokenizer="/nonexistent/model.gguf")
        failed = await missing.generate(MESSAGES, prefill=PREFILL)
        assert failed.status == "failed" and "cannot load the chat template" in failed.reason and "/nonexistent" in failed.reason
        await backend.aclose()
        await missing.aclose()


async def test_a_conversation_the_template_refuses_is_a_failed_generation() -> None:
    class Strict(ChatMLTokenizer):
        def apply_chat_template(self, conversation: Any, **options: Any) -> str:
            raise ValueError("Conversation roles must alternate user/assistant/user/assistant/...")

    async with FakeOpenAI(model, kind="llama-cpp-python") as fake:
        async with backend_for(fake, tokenizer=ChatTemplate.from_tokenizer(Strict(), source="strict")) as backend:
            generation = await backend.generate(MESSAGES, prefill=PREFILL)
        assert generation.status == "failed" and "strict cannot render" in generation.reason and "alternate" in generation.reason
        assert fake.requests == 0


def test_chat_template_keeps_the_prefill_verbatim_and_drops_a_bos_the_server_adds() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    plain = ChatTemplate.from_tokenizer(ChatMLTokenizer())
    assert plain.leading_bos is None
    assert plain.render(messages, "Partial  \n") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nPartial  \n"
    assert plain.render(messages) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    with_bos = ChatTemplate.from_tokenizer(ChatMLTokenizer(adds_bos=True))
    assert with_bos.leading_bos == "<s>" and with_bos.render(messages).startswith("<|im_start|>user")


# -- stop strings, max_tokens, echoes ----------------------------------------------------------------


async def test_stop_string_is_cut_and_reported_where_the_server_says(fake: FakeOpenAI) -> None:
    async with backend_for(fake) as backend:
        generation = await backend.generate(MESSAGES, prefill=PREFILL, params=PARAMS)
    assert generation.finish_reason == "stop" and "</payoff>" not in generation.text
    assert generation.stop == ("</payoff>" if fake.kind in REPORTS_STOP else None)


async def test_max_tokens_ends_with_length() -> None:
    async with FakeOpenAI(model, kind="vllm") as fake, backend_for(fake) as backend:
        generation = await backend.generate(MESSAGES, params=SamplingParams(max_tokens=2, stop=("</payoff>",)))
        assert (generation.text, generation.finish_reason, generation.stop, generation.tokens_out) == ("A fresh", "length", None, 2)


def sse(*pieces: str, finish: str = "stop") -> bytes:
    events: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


async def test_a_stop_string_the_server_let_through_is_cut_here() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream"):
            events = sse("Answer: 4 </pay", "off> and more", " text")
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events)
        choice = {"index": 0, "message": {"content": "Answer: 4 </payoff> and more"}, "finish_reason": "length"}
        return httpx.Response(200, json={"choices": [choice]})

    backend = HTTPBackend("http://server.invalid/v1", "m", kind="llama.cpp", transport=httpx.MockTransport(handler))
    whole = await backend.generate(MESSAGES, params=PARAMS)
    assert (whole.text, whole.finish_reason, whole.stop) == ("Answer: 4 ", "stop", "</payoff>")
    stream = backend.stream(MESSAGES, params=PARAMS)
    deltas = [delta async for delta in stream]
    assert "".join(deltas) == "Answer: 4 " and deltas[0] == "Answer: 4 "
    assert (stream.result.text, stream.result.stop, stream.result.finish_reason) == ("Answer: 4 ", "</payoff>", "stop")


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_echoed_prefill_is_stripped(streamed: bool) -> None:
    async with FakeOpenAI(model, kind="llama.cpp", echo_prefill=True) as fake, backend_for(fake) as backend:
        if streamed:
            generation = await backend.stream(MESSAGES, prefill=PREFILL, params=PARAMS).collect()
        else:
            generation = await backend.generate(MESSAGES, prefill=PREFILL, params=PARAMS)
        assert generation.text == '{"DQ_DA": {"LLM": 3.0, "user": 2.5}}' and generation.extra["echo_stripped"] is True
        short = await backend.generate(MESSAGES, prefill="<payoff>", params=PARAMS)
        assert short.text.startswith("<payoff>") and "echo_stripped" not in short.extra  # too short to tell an echo


def filtered(text: str, prefill: str, stops: tuple[str, ...], pieces: list[int]) -> tuple[str, str | None, bool]:
    text_filter = _TextFilter(prefill, stops)
    out, start = [], 0
    for end in [*sorted(pieces), len(text)]:
        out.append(text_filter.feed(text[start:end]))
        start = max(start, end)
    out.append(text_filter.finish())
    assert "".join(out) == text_filter.text
    return text_filter.text, text_filter.matched, text_filter.echoed


@given(
    text=st.text(alphabet="ab</>", max_size=40),
    prefill=st.sampled_from(["", "ab<", "<a>b</a><a>b</a>ab", "aaaaaaaaaaaaaaaa"]),
    stops=st.lists(st.text(alphabet="ab</>", min_size=1, max_size=4), max_size=3).map(tuple),
    pieces=st.lists(st.integers(0, 40), max_size=6),
)
def test_text_filter_gives_the_same_text_however_the_reply_is_split(
    text: str, prefill: str, stops: tuple[str, ...], pieces: list[int]
) -> None:
    whole = filtered(text, prefill, stops, [])
    assert filtered(text, prefill, stops, pieces) == whole
    assert filtered(text, prefill, stops, list(range(len(text)))) == whole
    out, matched, echoed = whole
    assert not any(stop in out for stop in stops)
    rest = text[len(prefill) :] if echoed else text
    assert echoed == (len(prefill) >= 16 and text.startswith(prefill))
    assert rest.startswith(out + (matched or "")) and (matched is not None or out == rest)


# -- cost reporting --------------------------------------------------------------------------------


async def test_tokens_and_latency_are_reported(fake: FakeOpenAI) -> None:
    async with backend_for(fake) as backend:
        started = time.perf_counter()
        generation = await backend.generate(MESSAGES, params=PARAMS)
        wall = time.perf_counter() - started
    seen = fake.received[-1]
    assert generation.tokens_in == sum(len(m["content"].split()) for m in seen.messages)
    assert generation.tokens_out == len(FRESH.split())
    assert 0 < generation.latency <= wall
    assert (generation.extra["attempts"], generation.extra["http_status"]) == (1, 200)


async def test_latency_includes_the_server_time() -> None:
    async with FakeOpenAI(lambda request: Reply(text="slow", latency=0.2), kind="sglang") as fake, backend_for(fake) as backend:
        await backend.server_kind()
        assert (await backend.generate(MESSAGES)).latency >= 0.2


# -- failures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "garbage", "drop", "hang"])
async def test_transient_faults_are_retried(fault: str, streamed: bool) -> None:
    async with FakeOpenAI(model, kind="vllm") as fake:
        sleeps = Sleeps()
        async with backend_for(fake, sleep=sleeps, attempt_timeout=0.5) as backend:
            ask = [{"role": "user", "content": f"question|{fault}"}]
            if streamed:
                stream = backend.stream(ask, params=PARAMS)
                deltas = [delta async for delta in stream]
                generation = stream.result
                if fault == "drop":  # broken after text was handed out: not retried
                    assert generation.status == "failed" and "broke after" in generation.reason and deltas == ["A"]
                    assert generation.text == "" and generation.extra["attempts"] == 1
                    return
                assert "".join(deltas) == FRESH
            else:
                generation = await backend.generate(ask, params=PARAMS)
            assert generation.ok and generation.text == FRESH and generation.extra["attempts"] == 2
            assert sleeps.waits == ([0.5] if fault == "rate_limit" else [0.0])


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(("fault", "status"), [("overflow", "context_overflow"), ("content_filter", "content_filter")])
async def test_refusals_are_statuses_not_retried(fault: str, status: str, streamed: bool) -> None:
    async with FakeOpenAI(lambda request: Reply(fault=fault), kind="ollama") as fake:  # type: ignore[arg-type]
        backend = backend_for(fake)
        if streamed:
            generation = await backend.stream(MESSAGES).collect()
        else:
            generation = await backend.generate(MESSAGES)
        assert (generation.status, generation.text, generation.finish_reason) == (status, "", "error") and generation.reason
        assert fake.requests == 1
        await backend.aclose()


async def test_persistent_errors_fail_with_the_reason() -> None:
    async with FakeOpenAI(lambda request: Reply(fault="server_error", status=503), kind="llama.cpp") as fake:
        backend = backend_for(fake, max_retries=2)
        generation = await backend.generate(MESSAGES)
        streamed = await backend.stream(MESSAGES).collect()
        for result in (generation, streamed):
            assert result.status == "failed" and "gave up after 3 attempts" in result.reason and "503" in result.reason
            assert result.extra["http_status"] == 503 and result.extra["attempts"] == 3
        await backend.aclose()


async def test_total_timeout_bounds_a_stream() -> None:
    async with FakeOpenAI(lambda request: Reply(text="one two three four five six", stream_delay=0.2), kind="vllm") as fake:
        backend = backend_for(fake, total_timeout=0.5, max_retries=0)
        stream = backend.stream(MESSAGES)
        deltas = [delta async for delta in stream]
        assert stream.result.status == "failed" and 0 < len(deltas) < 6
        await backend.aclose()


# -- streaming ------------------------------------------------------------------------------------


async def test_streaming_matches_generate(fake: FakeOpenAI) -> None:
    async with backend_for(fake) as backend:
        whole = await backend.generate(MESSAGES, prefill=PREFILL, params=PARAMS)
        stream = backend.stream(MESSAGES, prefill=PREFILL, params=PARAMS)
        with pytest.raises(RuntimeError, match="has not finished"):
            stream.result  # noqa: B018
        deltas = [delta async for delta in stream]
    streamed: Generation = stream.result
    assert len(deltas) > 1 and "".join(deltas) == streamed.text == whole.text
    assert (streamed.status, streamed.finish_reason, streamed.stop) == (whole.status, whole.finish_reason, whole.stop)
    assert fake.received[-1].body["stream"] is True
    assert {k: v for k, v in fake.received[-1].body.items() if k not in ("stream", "stream_options")} == dict(fake.received[-2].body)
    if fake.kind == "llama-cpp-python":
        assert streamed.tokens_out is None  # its server ignores stream_options.include_usage
    else:
        assert (streamed.tokens_in, streamed.tokens_out) == (whole.tokens_in, whole.tokens_out)


async def test_leaving_a_stream_early_frees_its_slot() -> None:
    async with FakeOpenAI(lambda request: Reply(text="a b c d e f", stream_delay=0.01), kind="vllm") as fake:
        backend = backend_for(fake, concurrency=1)
        async with backend.stream(MESSAGES) as stream:
            async for _delta in stream:
                break
        assert not stream.done
        async with asyncio.timeout(5):
            assert (await backend.generate(MESSAGES)).text == "a b c d e f"
        await backend.aclose()


def test_one_backend_across_event_loops() -> None:
    with FakeOpenAI(model, kind="sglang") as fake:
        backend = backend_for(fake)

        async def closing(call: Any) -> Any:  # a loop's connections are closed before the loop ends
            try:
                return await call
            finally:
                await backend.aclose()

        first = asyncio.run(closing(backend.generate(MESSAGES, prefill=PREFILL, params=PARAMS)))
        second = asyncio.run(closing(backend.stream(MESSAGES, prefill=PREFILL, params=PARAMS).collect()))
        assert first.text == second.text == '{"DQ_DA": {"LLM": 3.0, "user": 2.5}}'
        assert fake.probes.count("/v1/models") == 1


# -- a real llama-cpp-python server (scripts/build-llama-cpp.sh builds and installs it) ---------------




@pytest.mark.slow
async def test_real_llama_cpp_python_server(llama_server: tuple[str, Any]) -> None:
    base_url, gguf = llama_server
    transport = RecordingTransport()
    question = [{"role": "user", "content": "What is the capital of France?"}]
    async with HTTPBackend(base_url, "smollm2", tokenizer=gguf, transport=transport) as backend:
        assert await backend.prepare() == "llama-cpp-python"

        plain = await backend.generate(question, params=SamplingParams(max_tokens=24))
        assert plain.ok and plain.text.strip() and plain.tokens_in and plain.tokens_out and plain.latency > 0
        assert transport.requests[-1][1] == "/v1/chat/completions"

        tagged = [{"role": "user", "content": "Write the word hello inside <payoff></payoff> tags."}]
        stopped = await backend.generate(tagged, prefill="<payoff>", params=SamplingParams(max_tokens=40, stop=("</payoff>",)))
        assert stopped.ok and stopped.finish_reason == "stop" and "</payoff>" not in stopped.text and stopped.text.strip()

        prefill = "The capital of France is"
        continued = await backend.generate(question, prefill=prefill, params=SamplingParams(max_tokens=12))
        method, path, body = transport.requests[-1]
        assert (method, path) == ("POST", "/v1/completions") and body["prompt"].endswith("<|im_start|>assistant\n" + prefill)
        assert continued.ok and continued.extra["continuation"] == "client_template"
        assert continued.text.lstrip().startswith("Paris") and not continued.text.lstrip().startswith("The capital")

        streamed = backend.stream(question, prefill=prefill, params=SamplingParams(max_tokens=12))
        assert "".join([delta async for delta in streamed]) == streamed.result.text == continued.text

        # The reason for /v1/completions: the chat endpoint closes the partial turn and starts over.
        partial: list[Mapping[str, str]] = [*question, {"role": "assistant", "content": prefill}]
        async with HTTPBackend(base_url, "smollm2", kind="llama.cpp") as chat_only:
            anew = await chat_only.generate(partial, params=SamplingParams(max_tokens=12))
        assert anew.ok and anew.text.lstrip().startswith("The capital")
