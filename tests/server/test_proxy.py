"""The steering proxy served by uvicorn on 127.0.0.1 and called with the official ``openai`` client
(and raw httpx where the client would hide the wire format). The model is a `ScriptedBackend`."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import httpx
import openai
import pytest

from gtalign.server import ApiKey, ServerConfig
from tests.server._helpers import KEY, MODEL, response_for, scripted, serve

QUESTION = [{"role": "user", "content": "What is 2+2?"}]


_OPEN: list[openai.OpenAI] = []


def client(base_url: str, key: str = KEY) -> openai.OpenAI:
    """An openai client that fails fast (no retries), closed after the test."""
    made = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=20)
    _OPEN.append(made)
    return made


@pytest.fixture(autouse=True)
def close_clients():
    yield
    while _OPEN:
        _OPEN.pop().close()


def error_of(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture(scope="module")
def proxy():
    with serve() as served:
        yield served


# -- completions -------------------------------------------------------------------------------


def test_plain_completion_returns_the_response_block_and_the_game_record(proxy) -> None:
    completion = client(proxy.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == response_for("DQ_DA")
    assert choice.finish_reason == "stop"
    assert completion.model == MODEL and completion.object == "chat.completion"
    record = completion.gtalign  # the extension field, kept by the client as an extra attribute
    assert record["status"] == "ok" and record["chosen_key"] == "DQ_DA" and record["chosen_by"] == "rule"
    assert record["policy"]["kind"] == "none" and record["rule"] == "sum"
    assert record["matrix"]["raw"]["DQ_DA"] == {"LLM": 3.0, "user": 3.1}
    assert record["response"] == choice.message.content
    stages = record["stages"]
    assert [s["name"] for s in stages] == ["payoff", "continue"]
    assert completion.usage.prompt_tokens == sum(s["tokens_in"] for s in stages)
    assert completion.usage.completion_tokens == sum(s["tokens_out"] for s in stages)
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_the_model_sees_the_four_block_prompt_and_continues_its_own_turn() -> None:
    backend = scripted()
    with serve(backend=backend) as served:
        client(served.base_url).chat.completions.create(
            model=MODEL, messages=QUESTION, max_tokens=300, temperature=0.5, top_p=0.9, seed=7
        )
    first, second = backend.calls
    assert first.prefill == "" and "</payoff>" in first.params.stop
    assert first.messages[-1]["content"].endswith("Question: What is 2+2?")
    assert "<payoff>" in first.messages[-1]["content"] and first.messages[0]["role"] == "system"
    assert second.prefill.startswith("<thinking>") and "Chosen key: DQ_DA." in second.prefill
    assert first.params.max_tokens == 300 and first.params.temperature == 0.5
    assert first.params.top_p == 0.9 and first.params.seed == 7


def test_a_clients_own_system_message_and_text_parts_are_kept() -> None:
    backend = scripted()
    parts = [{"type": "text", "text": "What is "}, {"type": "text", "text": "2+2?"}]
    messages = [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": parts}]
    with serve(backend=backend) as served:
        client(served.base_url).chat.completions.create(model=MODEL, messages=messages)
    sent = backend.calls[0].messages
    assert sent[0] == {"role": "system", "content": "Be terse."} and len(sent) == 2
    assert sent[1]["content"].endswith("Question: What is 2+2?")


def test_streamed_completion_in_openai_chunks(proxy) -> None:
    stream = client(proxy.base_url).chat.completions.create(
        model=MODEL, messages=QUESTION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == response_for("DQ_DA")
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and final[0].choices[0].finish_reason == "stop"
    assert final[0].gtalign["chosen_key"] == "DQ_DA" and final[0].gtalign["response"] == text
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_stream_wire_format_ends_with_done(proxy) -> None:
    body = {"model": MODEL, "messages": QUESTION, "stream": True}
    with httpx.stream("POST", f"{proxy.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events[:-1])
    payloads = [json.loads(e[6:]) for e in events[:-2]]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert "usage" not in payloads[-1]  # only with stream_options.include_usage
    assert all("finish_reason" in p["choices"][0] for p in payloads)


async def test_async_client_and_concurrent_requests(proxy) -> None:
    async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key=KEY, max_retries=0) as aclient:
        answers = await asyncio.gather(*(aclient.chat.completions.create(model=MODEL, messages=QUESTION) for _ in range(4)))
    assert {a.choices[0].message.content for a in answers} == {response_for("DQ_DA")}
    assert len({a.id for a in answers}) == 4


def test_stop_is_applied_to_the_response(proxy) -> None:
    completion = client(proxy.base_url).chat.completions.create(model=MODEL, messages=QUESTION, stop=[" because", "zzz"])
    assert completion.choices[0].message.content == "The answer is four,"
    assert completion.gtalign["response"] == response_for("DQ_DA")  # the record keeps what the model wrote


# -- pricing policies per key and per request ----------------------------------------------------


def test_the_keys_pricing_policy_steers_the_answer(proxy) -> None:
    completion = client(proxy.base_url, "sk-test-bob").chat.completions.create(model=MODEL, messages=QUESTION)
    record = completion.gtalign
    assert record["policy"]["kind"] == "research-llm-shift"
    assert record["unsteered"]["key"] == "DQ_DA" and record["chosen_key"] == "DQ_AQ" and record["flipped"] is True
    assert completion.choices[0].message.content == response_for("DQ_AQ")


def test_a_request_may_override_only_when_its_key_allows(proxy) -> None:
    body = {"gtalign": {"pricing": "research-llm-shift"}}
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client(proxy.base_url).chat.completions.create(model=MODEL, messages=QUESTION, extra_body=body)
    error = error_of(denied.value)
    assert error["code"] == "override_not_allowed" and error["param"] == "gtalign.pricing"
    own = {"gtalign": {"pricing": "none"}}
    same = client(proxy.base_url).chat.completions.create(model=MODEL, messages=QUESTION, extra_body=own)
    assert same.gtalign["policy"]["kind"] == "none"  # naming its own policy is not an override

    bob = client(proxy.base_url, "sk-test-bob")
    chosen = {"gtalign": {"pricing": "none", "rule": "egalitarian"}}
    plain = bob.chat.completions.create(model=MODEL, messages=QUESTION, extra_body=chosen)
    assert plain.gtalign["policy"]["kind"] == "none" and plain.gtalign["rule"] == "egalitarian"
    assert plain.gtalign["chosen_key"] == "DQ_DA"


def test_unknown_policy_or_rule_lists_the_valid_ones(proxy) -> None:
    bob = client(proxy.base_url, "sk-test-bob")
    with pytest.raises(openai.BadRequestError) as bad:
        bob.chat.completions.create(model=MODEL, messages=QUESTION, extra_body={"gtalign": {"pricing": "/etc/passwd.yaml"}})
    assert error_of(bad.value)["param"] == "gtalign.pricing" and "none, research-llm-shift" in error_of(bad.value)["message"]
    with pytest.raises(openai.BadRequestError) as bad_rule:
        bob.chat.completions.create(model=MODEL, messages=QUESTION, extra_body={"gtalign": {"rule": "os:system"}})
    assert error_of(bad_rule.value)["param"] == "gtalign.rule" and "egalitarian" in error_of(bad_rule.value)["message"]


def test_an_open_server_lets_requests_choose() -> None:
    config = ServerConfig(model_name=MODEL, allowed_pricing=("research-llm-shift",))
    with serve(config) as served:
        answer = client(served.base_url, "anything").chat.completions.create(
            model=MODEL, messages=QUESTION, extra_body={"gtalign": {"pricing": "research-llm-shift"}}
        )
    assert answer.gtalign["chosen_key"] == "DQ_AQ"


# -- errors ----------------------------------------------------------------------------------------


def test_missing_and_wrong_keys_get_401(proxy) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        client(proxy.base_url, "sk-wrong").chat.completions.create(model=MODEL, messages=QUESTION)
    assert error_of(wrong.value)["code"] == "invalid_api_key"
    assert wrong.value.response.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError):
        client(proxy.base_url, "sk-wrong").chat.completions.create(model=MODEL, messages=QUESTION, stream=True)
    missing = httpx.post(f"{proxy.base_url}/chat/completions", json={"model": MODEL, "messages": QUESTION})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{proxy.base_url}/models").status_code == 401


def test_oversized_request_gets_413() -> None:
    with serve(max_request_bytes=4096) as served:
        big = [{"role": "user", "content": "x" * 10_000}]
        with pytest.raises(openai.APIStatusError) as too_big:
            client(served.base_url).chat.completions.create(model=MODEL, messages=big)
        assert too_big.value.status_code == 413 and error_of(too_big.value)["code"] == "request_too_large"

        def chunked():  # no Content-Length: the limit is enforced while reading
            yield b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}'

        r = httpx.post(f"{served.base_url}/chat/completions", content=chunked(), headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 413
        ok = client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
        assert ok.choices[0].message.content


def test_token_limit_gets_400_with_a_clear_message(proxy) -> None:
    with pytest.raises(openai.BadRequestError) as over:
        client(proxy.base_url).chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=100_000)
    error = error_of(over.value)
    assert error["param"] == "max_tokens" and error["code"] == "max_tokens_exceeded"
    assert "100000" in error["message"] and "at most 2048" in error["message"]
    with pytest.raises(openai.BadRequestError) as over2:
        client(proxy.base_url).chat.completions.create(model=MODEL, messages=QUESTION, max_completion_tokens=4096)
    assert error_of(over2.value)["param"] == "max_completion_tokens"
    with pytest.raises(openai.BadRequestError) as zero:
        client(proxy.base_url).chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=0)
    assert error_of(zero.value)["param"] == "max_tokens"


def test_bad_json_and_invalid_requests_get_openai_style_400(proxy) -> None:
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = f"{proxy.base_url}/chat/completions"
    def body(**fields: object) -> bytes:
        return json.dumps({"model": MODEL, **fields}).encode()

    cases = {
        b"{not json": (None, "invalid_json"),
        b"": (None, "invalid_json"),
        body(): ("messages", "invalid_value"),
        body(messages=[]): ("messages", "invalid_value"),
        body(messages=QUESTION, temperature="hot"): ("temperature", "invalid_value"),
        body(messages=[{"role": "wizard", "content": "hi"}]): ("messages.0.role", "invalid_value"),
        body(messages=[{"role": "assistant", "content": "hi"}]): ("messages", "invalid_value"),
        body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]):
            ("messages.0.content", "invalid_value"),
        body(messages=QUESTION, n=2): ("n", "unsupported_parameter"),
        body(messages=QUESTION, tools=[{"type": "function"}]): ("tools", "unsupported_parameter"),
        body(messages=QUESTION, gtalign={"price": 1}): ("gtalign.price", "invalid_value"),
        b"[1, 2]": (None, "invalid_value"),
    }
    for sent, (param, code) in cases.items():
        r = httpx.post(url, content=sent, headers=auth)
        assert r.status_code == 400, (sent, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["code"] == code, (sent, error)
        assert error["param"] == param, (sent, error)
    ignored = {"model": MODEL, "messages": QUESTION, "presence_penalty": 0.5, "user": "u-1", "metadata": {"a": "b"}}
    assert httpx.post(url, json=ignored, headers=auth).status_code == 200


def test_unknown_model_and_unknown_route_get_404(proxy) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client(proxy.base_url).chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert error_of(missing.value)["code"] == "model_not_found" and MODEL in error_of(missing.value)["message"]
    with pytest.raises(openai.NotFoundError):
        client(proxy.base_url).models.retrieve("gpt-4o")
    r = httpx.get(f"{proxy.root}/v2/anything")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(f"{proxy.base_url}/chat/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_concurrency_limit_gets_429_with_retry_after() -> None:
    backend = scripted(latency=0.3)
    with serve(backend=backend, max_concurrency=1, retry_after=3) as served:
        gate = served.app.state.proxy.gate
        results: list[object] = []
        worker = threading.Thread(
            target=lambda: results.append(client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION))
        )
        worker.start()
        deadline = time.monotonic() + 5
        while gate.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        with pytest.raises(openai.RateLimitError) as busy:
            client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
        worker.join()
    assert busy.value.response.headers["retry-after"] == "3"
    error = error_of(busy.value)
    assert error["type"] == "rate_limit_error" and error["code"] == "server_busy"
    assert len(results) == 1 and gate.max_in_flight == 1 and gate.in_flight == 0


async def test_a_bounded_queue_waits_then_refuses() -> None:
    backend = scripted(latency=0.15)
    with serve(backend=backend, max_concurrency=1, max_queue=1, queue_timeout=5) as served:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key=KEY, max_retries=0) as aclient:
            first = asyncio.ensure_future(aclient.chat.completions.create(model=MODEL, messages=QUESTION))
            gate = served.app.state.proxy.gate
            while gate.in_flight == 0:
                await asyncio.sleep(0.005)
            second = asyncio.ensure_future(aclient.chat.completions.create(model=MODEL, messages=QUESTION))
            while gate.waiting == 0:
                await asyncio.sleep(0.005)
            with pytest.raises(openai.RateLimitError):
                await aclient.chat.completions.create(model=MODEL, messages=QUESTION)
            done = await asyncio.gather(first, second)
    assert [d.choices[0].message.content for d in done] == [response_for("DQ_DA")] * 2
    assert gate.max_in_flight == 1


def test_per_request_timeout_gets_504() -> None:
    with serve(backend=scripted(latency=2.0), timeout=0.2) as served:
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as slow:
            client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
        assert time.perf_counter() - started < 1.5
        assert slow.value.status_code == 504 and error_of(slow.value)["code"] == "timeout"
        assert served.app.state.proxy.gate.in_flight == 0  # the slot is given back


def test_backend_failure_gets_502_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gtalign.server"), serve(backend=scripted(fail_calls=frozenset({0, 1}))) as served:
        with pytest.raises(openai.InternalServerError) as failed:
            client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
    assert failed.value.status_code == 502
    error = error_of(failed.value)
    assert error["code"] == "backend_failed" and "scripted failure" in error["message"]
    assert any("steering=failed http=502" in r.getMessage() for r in caplog.records)


def test_a_bug_in_the_proxy_is_an_openai_style_500(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from gtalign.server import _app

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_app, "steer", broken)
    with caplog.at_level(logging.INFO, logger="gtalign.server"), serve() as served:
        with pytest.raises(openai.InternalServerError) as crashed:
            client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
        assert served.app.state.proxy.gate.in_flight == 0
    assert crashed.value.status_code == 500 and error_of(crashed.value)["code"] == "internal_error"
    assert any("http=500" in r.getMessage() for r in caplog.records)


# -- models, health, logging ----------------------------------------------------------------------


def test_models_and_health(proxy) -> None:
    models = client(proxy.base_url).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert client(proxy.base_url).models.retrieve(MODEL).id == MODEL
    health = httpx.get(f"{proxy.root}/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["model"] == MODEL and health.json()["backend"] == "scripted"


def test_each_request_is_logged_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    keys = (ApiKey(KEY, id="alice"),)
    with caplog.at_level(logging.INFO, logger="gtalign.server"), serve(ServerConfig(model_name=MODEL, keys=keys)) as served:
        client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
        with pytest.raises(openai.AuthenticationError):
            client(served.base_url, "sk-nope").chat.completions.create(model=MODEL, messages=QUESTION)
    lines = [r.getMessage() for r in caplog.records if r.name == "gtalign.server"]
    assert len(lines) == 2
    assert "key=alice policy=none rule=sum action=DQ_DA steering=ok http=200 tokens=" in lines[0]
    assert "latency_ms=" in lines[0]
    assert "key=- " in lines[1] and "http=401" in lines[1]
    assert KEY not in "".join(lines)


def test_constrained_decoding_is_the_servers_default_or_the_requests_choice() -> None:
    backend = scripted(constraining=True)
    with serve(backend=backend) as served:  # auto by default
        client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
        client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION, extra_body={"gtalign": {"constrain": "off"}})
        client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION, extra_body={"gtalign": {"constrain": "on"}})
        with pytest.raises(openai.BadRequestError) as bad:
            client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION, extra_body={"gtalign": {"constrain": "yes"}})
    asked = [None if c.params.constraint is None else (c.params.constraint.stage, c.params.constraint.required) for c in backend.calls]
    assert asked == [("payoff", False), ("response", False), None, None, ("payoff", True), ("response", True)]
    assert "gtalign.constrain" in json.dumps(error_of(bad.value))
    backend = scripted(constraining=True)
    with serve(backend=backend, constrain="off") as served:
        client(served.base_url).chat.completions.create(model=MODEL, messages=QUESTION)
    assert all(c.params.constraint is None for c in backend.calls)
