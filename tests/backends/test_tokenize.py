"""`HTTPBackend.count_tokens` against real loopback servers: counts from a vLLM-style and a
llama.cpp-style tokenize endpoint, one probe of a server without one (remembered), and transient
failures that give None without failing anything."""

from __future__ import annotations

import asyncio
import json

import pytest

from gtalign.backends import HTTPBackend, TokenCounter
from gtalign.backends._tokenize import PROBE_TRIES
from gtalign.testing import FakeOpenAI
from tests.backends._http_helpers import RecordingTransport
from tests.backends._tokenize_server import tokenize_server

TEXTS = ["the payoff matrix holds six cells", "", "one", "a b c d"]


def in_any_order(bodies: list[dict[str, object]]) -> list[str]:
    """Request bodies after the probe arrive concurrently, so in no fixed order."""
    return sorted(json.dumps(body, sort_keys=True) for body in bodies)


async def count(backend: HTTPBackend, texts: list[str]) -> list[int] | None:
    try:
        return await backend.count_tokens(texts)
    finally:
        await backend.aclose()


def test_vllm_and_sglang_count_at_the_root_tokenize_without_special_tokens() -> None:
    with tokenize_server(style="vllm") as server:
        backend = HTTPBackend(server.base_url, "served-model", kind="vllm")
        assert isinstance(backend, TokenCounter)
        assert asyncio.run(count(backend, TEXTS)) == [6, 0, 1, 4]
    assert in_any_order(server.tokenized) == in_any_order(
        [{"model": "served-model", "prompt": text, "add_special_tokens": False} for text in TEXTS])
    with tokenize_server(style="vllm") as server:
        assert asyncio.run(count(HTTPBackend(server.base_url, "m", kind="sglang"), ["x y"])) == [2]


def test_llama_server_counts_the_tokens_it_lists() -> None:
    with tokenize_server(style="llama.cpp") as server:
        assert asyncio.run(count(HTTPBackend(server.base_url, "m", kind="llama.cpp"), TEXTS)) == [6, 0, 1, 4]
    assert in_any_order(server.tokenized) == in_any_order([{"content": text, "add_special": False} for text in TEXTS])


def test_a_server_without_tokenize_is_asked_once_however_many_rows_ask() -> None:
    async def scenario(server: FakeOpenAI) -> tuple[list[list[int] | None], list[tuple[str, str, object]]]:
        transport = RecordingTransport()
        backend = HTTPBackend(server.base_url, server.model, kind="vllm", transport=transport)
        try:
            first = await asyncio.gather(*(backend.count_tokens(["a b", "c"]) for _ in range(5)))
            later = [await backend.count_tokens(["d"]) for _ in range(3)]
        finally:
            await backend.aclose()
        return [*first, *later], transport.requests

    async def main() -> tuple[list[list[int] | None], list[tuple[str, str, object]]]:
        async with FakeOpenAI(kind="vllm") as server:  # answers 404 at /tokenize
            return await scenario(server)

    results, requests = asyncio.run(main())
    assert results == [None] * 8
    assert [(method, path) for method, path, _ in requests] == [("POST", "/tokenize")]


def test_kinds_without_a_tokenize_endpoint_send_nothing() -> None:
    async def main() -> tuple[list[list[int] | None], int]:
        async with FakeOpenAI(kind="ollama") as server:
            transport = RecordingTransport()
            results = [await count(HTTPBackend(server.base_url, server.model, kind=kind, transport=transport), ["a"])
                       for kind in ("ollama", "openai", "llama-cpp-python")]
            return results, len(transport.requests)

    assert asyncio.run(main()) == ([None, None, None], 0)


def test_an_unreachable_server_gives_none() -> None:
    backend = HTTPBackend("http://127.0.0.1:9/v1", "m", kind="auto", probe_timeout=1, max_retries=0)
    assert asyncio.run(count(backend, ["a"])) is None


@pytest.mark.parametrize("status", [500, 503])
def test_a_failing_tokenize_gives_none_then_is_given_up_after_a_few_probes(status: int) -> None:
    with tokenize_server(style="vllm", tokenize_status=status) as server:
        async def main() -> list[list[int] | None]:
            backend = HTTPBackend(server.base_url, "m", kind="vllm")
            try:
                return [await backend.count_tokens(["a", "b"]) for _ in range(PROBE_TRIES + 2)]
            finally:
                await backend.aclose()

        assert asyncio.run(main()) == [None] * (PROBE_TRIES + 2)
    assert len(server.tokenized) == PROBE_TRIES  # one probe per call until it gives up; never the second text


def test_a_transient_failure_does_not_mark_the_endpoint_unsupported() -> None:
    with tokenize_server(style="vllm", tokenize_status=500) as server:
        async def main() -> tuple[list[int] | None, list[int] | None]:
            backend = HTTPBackend(server.base_url, "m", kind="vllm")
            try:
                failed = await backend.count_tokens(["a b"])
                server.tokenize_status = 200
                return failed, await backend.count_tokens(["a b", "c"])
            finally:
                await backend.aclose()

        assert asyncio.run(main()) == (None, [2, 1])
