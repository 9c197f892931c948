"""The proxy with real backends around it: gtalign's own `HTTPBackend` as a client of the proxy, the
proxy in front of an HTTP model server, and one request end to end on the embedded SmolLM2."""

from __future__ import annotations

import importlib
import importlib.util

import openai
import pytest

from gtalign.backends._base import SamplingParams
from gtalign.server import ApiKey, ServerConfig
from tests.server._helpers import KEY, MODEL, response_for, script, serve

http = pytest.importorskip("gtalign.backends._http", reason="the HTTP backend (gtalign.backends._http) is not in this tree yet")

QUESTION = [{"role": "user", "content": "What is 2+2?"}]


async def test_http_backend_pointed_at_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy is a real OpenAI-compatible server: gtalign's own HTTP client detects and uses it."""
    monkeypatch.setenv("TEST_PROXY_KEY", KEY)
    with serve() as served:
        backend = http.HTTPBackend(served.base_url, MODEL, api_key_env="TEST_PROXY_KEY", max_retries=0)
        try:
            assert await backend.server_kind() == "openai"
            plain = await backend.generate(QUESTION)
            assert plain.ok and plain.text == response_for("DQ_DA") and plain.finish_reason == "stop"
            assert plain.tokens_in and plain.tokens_out
            cut = await backend.generate(QUESTION, params=SamplingParams(max_tokens=200, stop=(" because",)))
            assert cut.ok and cut.text == "The answer is four,"
            stream = backend.stream(QUESTION)
            deltas = [delta async for delta in stream]
            assert len(deltas) > 1 and "".join(deltas) == response_for("DQ_DA") and stream.result.ok
        finally:
            await backend.aclose()
        monkeypatch.setenv("TEST_PROXY_KEY", "sk-wrong")
        refused = http.HTTPBackend(served.base_url, MODEL, kind="openai", api_key_env="TEST_PROXY_KEY", max_retries=0)
        try:
            failed = await refused.generate(QUESTION)
        finally:
            await refused.aclose()
        assert not failed.ok and "401" in failed.reason


def test_proxy_in_front_of_an_http_model_server() -> None:
    """``--backend URL``: the proxy builds its own HTTPBackend, which continues the turn vLLM's way."""
    from gtalign.testing import FakeOpenAI

    def upstream(request):
        return script(request.messages, request.prefill or "")

    with FakeOpenAI(upstream, kind="vllm", model="upstream-model") as model_server:
        config = ServerConfig(model_name=MODEL, keys=(ApiKey(KEY, pricing="research-llm-shift"),),
                              backend=model_server.base_url, backend_model="upstream-model", backend_kind="vllm")
        with serve(config, from_config=True) as served:
            with openai.OpenAI(base_url=served.base_url, api_key=KEY, max_retries=0) as client:
                completion = client.chat.completions.create(model=MODEL, messages=QUESTION)  # type: ignore[arg-type]
            assert served.app.state.proxy.backend.name == "http"
        continued = [r for r in model_server.received if r.prefill]
    assert completion.gtalign["chosen_key"] == "DQ_AQ" and completion.gtalign["backend"] == "http"
    assert completion.choices[0].message.content == response_for("DQ_AQ")
    assert len(continued) == 1 and continued[0].body.get("continue_final_message") is True
    assert "Chosen key: DQ_AQ." in continued[0].prefill


@pytest.mark.slow
@pytest.mark.timeout(900)  # a few CPU generations of a ~700-token prompt: slow on a busy 2-core machine
def test_end_to_end_on_the_embedded_model() -> None:
    """One real steered request on SmolLM2-135M-Instruct (CPU), streamed: the mechanics and the
    record, not the tiny model's wisdom."""
    if importlib.util.find_spec("gtalign.backends._embedded") is None:
        pytest.skip("the embedded backend (gtalign.backends._embedded) is not in this tree yet")
    embedded = importlib.import_module("gtalign.backends._embedded")
    try:
        backend = embedded.EmbeddedBackend()
    except (ImportError, OSError, RuntimeError) as exc:
        pytest.skip(f"the embedded model cannot be loaded here: {exc}")
    with serve(backend=backend, timeout=600) as served:
        with openai.OpenAI(base_url=served.base_url, api_key=KEY, max_retries=0, timeout=600) as client:
            chunks = list(client.chat.completions.create(  # type: ignore[call-overload]
                model=MODEL, messages=QUESTION, max_tokens=64, seed=0, stream=True, stream_options={"include_usage": True}
            ))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(final) == 1 and chunks[-1].usage is not None
    record = final[0].gtalign
    assert record["status"] in ("ok", "fallback"), record["reason"]
    assert record["chosen_key"] and record["backend"] == backend.name
    stages = record["stages"]
    assert stages[0]["name"] == "payoff" and stages[-1]["name"] in ("continue", "response")
    assert f"Chosen key: {record['chosen_key']}." in record["text"]
    assert content == record["response"] and record["response"].strip()
    assert chunks[-1].usage.completion_tokens == sum(s["tokens_out"] or 0 for s in stages) > 0
