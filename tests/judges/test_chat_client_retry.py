"""Plain and streamed calls of `ChatClient` share one retry schedule: the same Retry-After handling,
backoff, retry budget, total deadline, concurrency slot and RPM limiter, with the same reason texts.

Every test runs both ways against the scripted fake server on loopback (or a closed loopback port);
waits go through a recorder or a fake clock that returns at once, so only the waits and the clock's
times are asserted, never the wall clock.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gtalign._chat_client import ChatClient, ChatResult, ClientConfig
from gtalign.testing import FakeOpenAI, FakeRequest, Reply
from tests.judges._clock import FakeClock, closed_port

TEXT = "the final answer"


class Sleeps:
    """An injected ``sleep`` that records each wait and returns at once (time stays the loop's)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def failing(times: int, **fault: Any) -> Callable[[FakeRequest], Reply]:
    """A script whose first ``times`` tries of each prompt fail with ``fault``, then answer ``TEXT``."""
    return lambda request: Reply(**fault) if request.seen < times else Reply(text=TEXT)


def client_for(fake: FakeOpenAI | str, timing: Sleeps | FakeClock, **overrides: Any) -> ChatClient:
    """A client of ``fake`` (or a base URL) whose waits go to ``timing``: a recorder or a fake clock."""
    settings: dict[str, Any] = {"attempt_timeout": 5.0, "backoff_base": 0.0, "concurrency": 8}
    settings.update(overrides)
    config = ClientConfig(fake if isinstance(fake, str) else fake.base_url, "m", **settings)
    if isinstance(timing, FakeClock):
        return ChatClient(config, clock=timing)
    return ChatClient(config, sleep=timing)


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
    clock = FakeClock()
    async with FakeOpenAI(failing(2, fault="rate_limit", retry_after=2.5)) as fake, client_for(fake, clock, backoff_base=10.0) as client:
        result = await call(client, streamed)
    assert (result.status, result.text, result.attempts, result.retries) == ("ok", TEXT, 3, 2)
    assert clock.waits == [2.5, 2.5] and result.waited == 5.0  # the server's wish, not the jittered backoff
    assert result.latency == 5.0  # on the client's clock: the waits, as the requests took no time


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
    assert result.status == "failed" and result.attempts == 1
    assert result.reason.startswith("total timeout of 0.3s would pass during a 0.00s retry wait after 1 attempts")
    assert result.reason.endswith("last error: no complete answer within 0.3s (attempt timeout)")


@both
async def test_the_total_timeout_is_checked_before_each_attempt(streamed: bool) -> None:
    clock = FakeClock(overhead=0.6)  # each (zero) backoff takes 0.6 s: the third attempt is too late
    script = failing(99, fault="server_error")
    async with FakeOpenAI(script) as fake, client_for(fake, clock, total_timeout=1.0) as client:
        result = await call(client, streamed)
        assert fake.requests == 2
    assert (result.status, result.attempts, result.reason) == ("failed", 2, "total timeout of 1s reached after 2 attempts")
    assert result.latency == pytest.approx(1.2) and result.waited == 0.0 and clock.waits == [0.0, 0.0]


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
    clock = FakeClock()
    async with FakeOpenAI(failing(1, fault="server_error")) as fake, client_for(fake, clock, rpm=60.0) as client:
        result = await call(client, streamed)
    # the retry's start is spaced one second (60/rpm) after the first, after its zero backoff
    assert result.ok and result.attempts == 2
    assert clock.waits == [0.0, 1.0] and result.latency == 1.0 and result.waited == 0.0


# -- a server that is not there: refused connections -------------------------------------------------


def refused_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/v1"


@both
async def test_a_refused_connection_is_given_up_on_after_connect_retries(streamed: bool) -> None:
    clock, url = FakeClock(), refused_url()
    async with client_for(url, clock, max_retries=8, connect_retries=2) as client:
        result = await call(client, streamed)
    assert (result.status, result.attempts, result.http_status) == ("failed", 3, None)
    assert result.reason == (
        "gave up after 3 attempts (3 refused, connect_retries=2); "
        f"last error: connection refused by {url}: nothing is listening there; is the server running?"
    )
    assert clock.waits == [0.0, 0.0]


async def test_refused_retries_wait_briefly_whatever_came_before() -> None:
    """A server that answers 503 four times and then goes away: the 503s back off as usual, the
    refused retries restart from ``backoff_base`` (so they stay quick) and have their own budget."""
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        if attempts <= 4:
            return httpx.Response(503, json={"error": "busy"})
        raise httpx.ConnectError("All connection attempts failed") from ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    clock = FakeClock()
    config = ClientConfig("http://judge.invalid/v1", "m", backoff_base=1.0, backoff_max=30.0, connect_retries=2, seed=3)
    result = await ChatClient(config, clock=clock, transport=httpx.MockTransport(handler)).chat([{"role": "user", "content": "q"}])
    assert result.attempts == 7 and result.reason.startswith("gave up after 7 attempts (3 refused, connect_retries=2); last error: connection refused")
    caps = [1.0, 2.0, 4.0, 8.0, 1.0, 2.0]  # four 503 backoffs, then two refused ones from the start again
    assert len(clock.waits) == 6 and all(0.0 <= wait <= cap for wait, cap in zip(clock.waits, caps))


async def test_connect_retries_leave_other_errors_on_the_usual_schedule() -> None:
    clock = FakeClock()
    async with FakeOpenAI(failing(5, fault="server_error", status=503)) as fake, client_for(fake, clock, connect_retries=0) as client:
        result = await call(client, streamed=False)
    assert result.ok and result.attempts == 6 and clock.waits == [0.0] * 5


@both
async def test_a_server_found_down_fails_fast_until_it_comes_back(streamed: bool) -> None:
    clock, port = FakeClock(), closed_port()
    url = f"http://127.0.0.1:{port}/v1"
    async with client_for(url, clock, connect_retries=2) as client:
        first = await call(client, streamed)
        assert first.attempts == 3 and len(clock.waits) == 2

        # the server is marked down: each later call still tries once, but is not retried
        later = await asyncio.gather(*(call(client, streamed, prompt=f"q{i}") for i in range(5)))
        assert [result.attempts for result in later] == [1] * 5 and len(clock.waits) == 2
        assert all(result.status == "failed" for result in later)
        assert later[0].reason == (
            "not retried: another call to this server already gave up on refused connections; "
            f"last error: connection refused by {url}: nothing is listening there; is the server running?"
        )

        # it comes back on the same port: the first call gets through and clears the mark
        async with FakeOpenAI(failing(0), port=port) as fake:
            assert fake.base_url == url
            back = await call(client, streamed)
            assert back.ok and back.attempts == 1

        # down again: a call gets its full connect budget again
        again = await call(client, streamed)
        assert again.attempts == 3 and "(3 refused, connect_retries=2)" in again.reason


async def test_the_down_mark_is_per_server_and_model() -> None:
    url = refused_url()
    async with client_for(url, FakeClock(), connect_retries=1) as client:
        assert (await call(client, streamed=False)).attempts == 2
        assert (await call(client, streamed=False)).attempts == 1
    other_model = ClientConfig(url, "other", backoff_base=0.0, connect_retries=1)
    async with ChatClient(other_model, clock=FakeClock()) as other:
        assert (await call(other, streamed=False)).attempts == 2


def test_connect_retries_is_validated() -> None:
    with pytest.raises(ValueError, match="connect_retries must be >= 0"):
        ClientConfig("http://127.0.0.1:9/v1", "m", connect_retries=-1)
    with pytest.raises(TypeError, match="sleep or clock, not both"):
        ChatClient(ClientConfig("http://127.0.0.1:9/v1", "m"), sleep=Sleeps(), clock=FakeClock())
