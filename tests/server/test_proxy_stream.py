"""Streaming through the proxy: the response relayed as the model writes it, errors before and
after the first text, timeouts, client stops and disconnects. Served by uvicorn on 127.0.0.1 and
read with the official openai client (raw httpx where the wire matters)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator

import httpx
import openai
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gtalign.backends._base import Generation
from gtalign.server._app import _apply_stops, _StopFilter
from gtalign.testing import ScriptedBackend
from tests.server._helpers import KEY, MODEL, response_for, script, scripted, serve

QUESTION = [{"role": "user", "content": "What is 2+2?"}]


def _client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=20)


def _timed_chunks(base_url: str, **options) -> list[tuple[float, object]]:
    started = time.perf_counter()
    with _client(base_url) as client:
        stream = client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True, **options)
        return [(time.perf_counter() - started, chunk) for chunk in stream]


def _released(gate, within: float = 2.0) -> bool:
    """The gate slot comes back once the server's stream has ended, a moment after the client's."""
    deadline = time.monotonic() + within
    while gate.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    return gate.in_flight == 0


def _content(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for _, c in chunks if c.choices)


def test_the_response_arrives_while_the_model_is_still_writing() -> None:
    """With the model writing a word every 50 ms, the first words reach the client long before
    the last: the proxy relays the continuation, it does not wait for the whole answer."""
    with serve(backend=scripted(word_delay=0.05)) as served:
        chunks = _timed_chunks(served.base_url)
    content = [(at, c) for at, c in chunks if c.choices and c.choices[0].delta.content]
    assert _content(chunks) == response_for("DQ_DA")
    assert len(content) >= 5
    first, last = content[0][0], content[-1][0]
    words = len(response_for("DQ_DA").split())
    assert last - first >= 0.5 * 0.05 * (words - 1), "the words came in one burst"
    final = [c for _, c in chunks if c.choices and c.choices[0].finish_reason]
    assert final[0].gtalign["response"] == response_for("DQ_DA")


def test_client_stop_strings_cut_the_stream_like_the_whole_text(proxy_stops=("is four", "zzz")) -> None:
    with serve(backend=scripted()) as served:
        chunks = _timed_chunks(served.base_url, stop=list(proxy_stops))
        with _client(served.base_url) as client:
            whole = client.chat.completions.create(model=MODEL, messages=QUESTION, stop=list(proxy_stops))
    assert _content(chunks) == whole.choices[0].message.content == "The answer "


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="abXY", max_size=40), stops=st.lists(st.text(alphabet="abXY", max_size=4), max_size=3),
       cuts=st.lists(st.integers(0, 40), max_size=10))
@example(text="abXYZ", stops=["X", "bXY"], cuts=[3])  # a longer stop string that starts earlier wins
def test_stop_filter_equals_cutting_the_whole_text(text, stops, cuts) -> None:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in zip(points, points[1:], strict=False)]
    stop_filter = _StopFilter(tuple(stops))
    shown = "".join(stop_filter.feed(piece) for piece in pieces) + stop_filter.flush()
    assert shown == _apply_stops(text, tuple(s for s in stops if s))


def test_a_failure_before_the_response_is_an_http_error() -> None:
    with serve(backend=scripted(fail_calls=frozenset({0, 1}))) as served, _client(served.base_url) as client:
        with pytest.raises(openai.InternalServerError) as failed:
            list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))
        assert failed.value.status_code == 502
        assert _released(served.app.state.proxy.gate)


def test_a_timeout_before_the_response_is_an_http_504() -> None:
    with serve(backend=scripted(latency=2.0), timeout=0.2) as served, _client(served.base_url) as client:
        with pytest.raises(openai.APIStatusError) as slow:
            list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))
        assert slow.value.status_code == 504
        assert _released(served.app.state.proxy.gate)


class _BreaksMidResponse(ScriptedBackend):
    """Continuations stream two words, then the connection 'breaks' (a failed Generation)."""

    async def _stream_source(self, messages, prefill, params) -> AsyncGenerator[str | Generation, None]:
        generation = await self.generate(messages, prefill=prefill, params=params)
        if "</payoff>" not in prefill:
            yield generation.text
            yield generation
            return
        for piece in generation.text.partition("<response>")[0] + "<response>\nThe answer", " is":
            yield piece
        yield Generation("", "error", status="failed", reason="connection reset by peer")


def test_a_failure_after_the_response_began_ends_the_stream_with_an_error_event(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="gtalign.server"), \
            serve(backend=_BreaksMidResponse(script)) as served, _client(served.base_url) as client:
        received: list[str] = []
        with pytest.raises(openai.APIError) as broken:
            for chunk in client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True):
                received.append(chunk.choices[0].delta.content or "")
        assert "".join(received) == "The answer is"
        assert "connection reset by peer" in str(broken.value)
        assert _released(served.app.state.proxy.gate)
    assert any("http=502" in r.getMessage() and "stream=true" in r.getMessage() for r in caplog.records)


class _SlowResponse(ScriptedBackend):
    """Continuations stream at once up to the response, then one word every 0.3 s."""

    async def _stream_source(self, messages, prefill, params) -> AsyncGenerator[str | Generation, None]:
        generation = await self.generate(messages, prefill=prefill, params=params)
        head, opening, response = generation.text.partition("<response>")
        yield head + opening
        for word in response.split(" "):
            await asyncio.sleep(0.3)
            yield word + " "
        yield generation


def test_a_timeout_after_the_response_began_is_an_error_event() -> None:
    with serve(backend=_SlowResponse(script), timeout=1.0) as served:
        body = {"model": MODEL, "messages": QUESTION, "stream": True}
        started = time.perf_counter()
        with httpx.stream("POST", f"{served.base_url}/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=20) as r:
            assert r.status_code == 200
            events = [e for e in r.read().decode().split("\n\n") if e]
        assert time.perf_counter() - started < 2.5
        assert events[-1] == "data: [DONE]"
        error = json.loads(events[-2][6:])["error"]
        assert error["code"] == "timeout" and error["type"]
        assert any('"content":"The' in e for e in events), "the response had begun"
        assert _released(served.app.state.proxy.gate)


def test_a_client_that_goes_away_frees_its_slot_and_stops_the_model() -> None:
    backend = scripted(word_delay=0.2)
    with serve(backend=backend, max_concurrency=1) as served:
        gate = served.app.state.proxy.gate
        body = {"model": MODEL, "messages": QUESTION, "stream": True}
        with httpx.stream("POST", f"{served.base_url}/chat/completions", json=body,
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=20) as r:
            for line in r.iter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    break  # the response has begun: hang up
        assert _released(gate), "the slot was not given back after the client left"
        with _client(served.base_url) as client:  # and the next request gets the slot
            assert client.chat.completions.create(model=MODEL, messages=QUESTION).choices[0].message.content


def test_on_ignored_keep_answers_with_the_models_own_text() -> None:
    """A model that ignores the protocol: with ``on_ignored=keep`` the proxy returns its answer,
    plain and streamed, and the record says it was not steered."""
    plain = ScriptedBackend(lambda messages, prefill: "Four.")
    with serve(backend=plain, on_ignored="keep") as served, _client(served.base_url) as client:
        completion = client.chat.completions.create(model=MODEL, messages=QUESTION)
        chunks = list(client.chat.completions.create(model=MODEL, messages=QUESTION, stream=True))
    assert completion.choices[0].message.content == "Four."
    assert [f["kind"] for f in completion.gtalign["fallbacks"]] == ["unstructured"]
    assert completion.gtalign["chosen_key"] is None and len(completion.gtalign["stages"]) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Four."


def test_a_client_gone_before_the_first_byte_still_frees_the_slot() -> None:
    """The ASGI server fails to send the response start (the client left): the body iterator
    never runs, and the slot must come back anyway."""
    from gtalign.server import ServerConfig, create_app

    app = create_app(ServerConfig(model_name=MODEL, port=0), scripted(word_delay=0.01))
    body = json.dumps({"model": MODEL, "messages": QUESTION, "stream": True}).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def main() -> int:
        sent = False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)

        async def send(message):
            if message["type"] == "http.response.start":
                raise OSError("client gone")

        async with app.router.lifespan_context(app):
            with pytest.raises(OSError):
                await app(scope, receive, send)
            return app.state.proxy.gate.in_flight

    assert asyncio.run(main()) == 0
