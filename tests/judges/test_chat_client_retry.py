"""Plain and streamed calls of `ChatClient` share one retry schedule: the same Retry-After handling,
backoff, retry budget, total deadline, concurrency slot and RPM limiter, with the same reason texts.

Every test runs both ways against the scripted fake server on loopback; waits go through a recorder
that returns at once, so only the waits themselves are asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gtalign._chat_client import ChatClient, ChatResult, ClientConfig
from gtalign.testing import FakeOpenAI, FakeRequest, Reply

TEXT = "the final answer"


class Sleeps:
    """An injected ``sleep`` that records each wait and returns at once (or after ``pause`` seconds)."""

    def __init__(self, pause: float = 0.0) -> None:
        self.waits: list[float] = []
        self.pause = pause

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(self.pause)


def failing(times: int, **fault: Any) -> Callable[[FakeRequest], Reply]:
    """A script whose first ``times`` tries of each prompt fail with ``fault``, then answer ``TEXT``."""
    return lambda request: Reply(**fault) if request.seen < times else Reply(text=TEXT)


def client_for(fake: FakeOpenAI, sleeps: Sleeps, **overrides: Any) -> ChatClient:
    settings: dict[str, Any] = {"attempt_timeout": 5.0, "backoff_base": 0.0, "concurrency": 8}
    settings.update(overrides)
    return ChatClient(ClientConfig(fake.base_url, "m", **settings), sleep=sleeps)


async def call(client: ChatClient, streamed: bool, prompt: str = "q") -> ChatResult:
    payload = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    if not streamed:
        return await client.send("/chat/completions", payload)
    stream = client.stream("/chat/completions", payload)
    deltas = [delta async for delta in stream]
    assert "".join(deltas) == (stream.result.text or "")
    return stream.result


both = pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])


@both
async def test_retry_after_is_honoured_and_counted(streamed: bool) -> None:
    sleeps = Sleeps()
    async with FakeOpenAI(failing(2, fault="rate_limit", retry_after=2.5)) as fake, client_for(fake, sleeps, backoff_base=10.0) as client:
        result = await call(client, streamed)
    assert (result.status, result.text, result.attempts, result.retries) == ("ok", TEXT, 3, 2)
    assert sleeps.waits == [2.5, 2.5] and result.waited == 5.0  # the server's wish, not the jittered backoff
    assert result.latency > 0


@both
async def test_retry_after_is_capped(streamed: bool) -> None:
    sleeps = Sleeps()
    script = failing(1, fault="rate_limit", retry_after=1000)
    async with FakeOpenAI(script) as fake, client_for(fake, sleeps, retry_after_max=3.0) as client:
        result = await call(client, streamed)
    assert result.ok and sleeps.waits == [3.0] and result.waited == 3.0 and result.attempts == 2


@both
async def test_a_wait_beyond_the_total_timeout_fails_at_once(streamed: bool) -> None:
    sleeps = Sleeps()
    script = failing(1, fault="rate_limit", retry_after=50)
    async with FakeOpenAI(script) as fake, client_for(fake, sleeps, total_timeout=10.0, retry_after_max=100.0) as client:
        result = await call(client, streamed)
        assert fake.requests == 1
    assert result.status == "failed" and result.http_status == 429 and result.attempts == 1
    assert result.reason.startswith("total timeout of 10s would pass during a 50.00s retry wait after 1 attempts; last error: HTTP 429")
    assert sleeps.waits == [] and result.waited == 0.0


@both
async def test_retries_run_out(streamed: bool) -> None:
    sleeps = Sleeps()
    script = failing(99, fault="server_error", status=503)
    async with FakeOpenAI(script) as fake, client_for(fake, sleeps, max_retries=2) as client:
        result = await call(client, streamed)
        assert fake.requests == 3
    assert result.status == "failed" and result.http_status == 503 and result.attempts == 3
    assert result.reason.startswith("gave up after 3 attempts (max_retries=2); last error: HTTP 503")
    assert sleeps.waits == [0.0, 0.0]


@both
async def test_the_first_attempt_is_bounded_by_the_total_timeout(streamed: bool) -> None:
    async with FakeOpenAI(failing(99, fault="hang")) as fake, client_for(fake, Sleeps(), total_timeout=0.3) as client:
        result = await call(client, streamed)
    assert result.status == "failed" and result.attempts == 1 and 0.3 <= result.latency < 2.0
    assert result.reason.startswith("total timeout of 0.3s would pass during a 0.00s retry wait after 1 attempts")
    assert result.reason.endswith("last error: no complete answer within 0.3s (attempt timeout)")


@both
async def test_the_total_timeout_is_checked_before_each_attempt(streamed: bool) -> None:
    sleeps = Sleeps(pause=0.6)  # each (zero) backoff takes 0.6 s of real time: the third attempt is too late
    script = failing(99, fault="server_error")
    async with FakeOpenAI(script) as fake, client_for(fake, sleeps, total_timeout=1.0) as client:
        result = await call(client, streamed)
        assert fake.requests == 2
    assert (result.status, result.attempts, result.reason) == ("failed", 2, "total timeout of 1s reached after 2 attempts")
    assert result.latency >= 1.0 and result.waited == 0.0 and sleeps.waits == [0.0, 0.0]


async def test_plain_and_streamed_calls_share_the_concurrency_slot() -> None:
    script = failing(1, fault="rate_limit", retry_after=0.01)
    async with FakeOpenAI(script, latency=0.02) as fake, client_for(fake, Sleeps(), concurrency=1) as client:
        results = await asyncio.gather(*(call(client, streamed=i % 2 == 1, prompt=f"q{i}") for i in range(6)))
        assert fake.max_in_flight == 1
    assert all(result.ok and result.attempts == 2 for result in results)


async def test_a_streamed_call_holds_its_slot_until_the_stream_is_closed() -> None:
    slow = FakeOpenAI(lambda request: Reply(text="a b c d", stream_delay=0.01))
    async with slow as fake, client_for(fake, Sleeps(), concurrency=1) as client:
        stream = client.stream("/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "q"}]})
        await anext(stream)
        plain = asyncio.create_task(call(client, streamed=False))
        await asyncio.sleep(0.1)
        assert not plain.done() and fake.requests == 1  # queued behind the open stream
        await stream.aclose()
        async with asyncio.timeout(5):
            assert (await plain).ok


async def test_a_cancelled_plain_call_frees_its_slot() -> None:
    def script(request: FakeRequest) -> Reply:
        return Reply(fault="hang") if request.prompt == "hang" else Reply(text=TEXT)

    async with FakeOpenAI(script) as fake, client_for(fake, Sleeps(), concurrency=1) as client:
        hung = asyncio.create_task(call(client, streamed=False, prompt="hang"))
        await asyncio.sleep(0.1)
        hung.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hung
        async with asyncio.timeout(5):
            assert (await call(client, streamed=True)).text == TEXT


@both
async def test_every_attempt_goes_through_the_rpm_limiter(streamed: bool) -> None:
    sleeps = Sleeps()
    async with FakeOpenAI(failing(1, fault="server_error")) as fake, client_for(fake, sleeps, rpm=60.0) as client:
        result = await call(client, streamed)
    # the retry's start is spaced one second (60/rpm) after the first, after its zero backoff
    assert result.ok and result.attempts == 2
    assert len(sleeps.waits) == 2 and sleeps.waits[0] == 0.0 and 0.5 < sleeps.waits[1] <= 1.0
