"""The LLM judge and its HTTP client against the scripted fake server: faults, limits, cache, de-dup.

Every wait goes through a recording ``sleep`` that returns at once, or a fake clock, so retries cost
no wall time and the waits themselves (never the wall clock) are asserted. The judged response text scripts the fake judge:
``"<value>"`` answers ``\\boxed{value}``; ``"<value>|<fault>[@retry_after][*times]"`` first fails
``times`` times (default 1) with that fault.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gtalign.judges._base import Judge, judge_sync
from gtalign.judges._cache import VerdictCache
from gtalign._chat_client import ChatClient, ClientConfig, parse_retry_after
from gtalign.judges._llm import JudgeStats, LLMJudge
from gtalign.reward._types import JudgeRequest
from gtalign.testing import FakeOpenAI, FakeRequest, Reply
from tests.judges._clock import FakeClock, closed_port


class Sleeps:
    """An injected ``sleep`` that records each wait and returns at once (or after ``scale`` of it)."""

    def __init__(self, scale: float = 0.0) -> None:
        self.waits: list[float] = []
        self.scale = scale

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds * self.scale)


def script(request: FakeRequest) -> Reply:
    response = request.tagged("judged_response") or ""
    value, _, fault = response.partition("|")
    if fault:
        spec, _, times = fault.partition("*")
        kind, _, retry_after = spec.partition("@")
        if request.seen < int(times or 1):
            return Reply(fault=kind, retry_after=float(retry_after) if retry_after else None)  # type: ignore[arg-type]
    if "<abg>N</abg>" in request.prompt:
        return Reply(text=f"<abg>{value}</abg>")
    return Reply(text=f"The reply is judged. \\boxed{{{value}}}")


def math(response: str) -> JudgeRequest:
    return JudgeRequest("math", response, reference="42")


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(script) as fake:
        yield fake


def judge_for(server: FakeOpenAI | str, timing: Sleeps | FakeClock | None = None, **overrides: Any) -> LLMJudge:
    """A judge of ``server`` (or a base URL) whose waits go to ``timing``: a recorder or a fake clock."""
    settings: dict[str, Any] = {"attempt_timeout": 5.0, "backoff_base": 0.0, "concurrency": 8}
    settings["clock" if isinstance(timing, FakeClock) else "sleep"] = timing or Sleeps()
    settings.update(overrides)
    return LLMJudge(server if isinstance(server, str) else server.base_url, "judge-model", **settings)


# -- the happy path --------------------------------------------------------------------------------


async def test_verdicts_in_order_for_every_task(server: FakeOpenAI) -> None:
    judge = judge_for(server)
    assert isinstance(judge, Judge)
    requests = [
        math("1"),
        math("0"),
        JudgeRequest("writing", "3", reference="article"),
        JudgeRequest("safety", "0.5", label="harmful"),
        JudgeRequest("safety", "1", label="unharmful"),
        JudgeRequest("ambiguity", "1", label="ambiguous"),
        JudgeRequest("ambiguity", "0", label="clear"),
    ]
    verdicts = await judge.judge(requests)
    assert [v.value for v in verdicts] == [1.0, 0.0, 3.0, 0.5, 1.0, 1.0, 0.0]
    assert all(v.ok and v.judge == "llm" and not v.cached and v.raw for v in verdicts)
    stats = judge.stats
    assert (stats.rows, stats.calls, stats.http_requests, stats.retries, stats.failures) == (7, 7, 7, 0, 0)
    assert stats.tokens_in > 0 and stats.tokens_out > 0 and stats.latency > 0
    assert await judge.judge([]) == []


async def test_request_carries_model_settings_and_key(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GTALIGN_TEST_KEY", "sekret")
    extra = {"chat_template_kwargs": {"enable_thinking": False}}
    judge = judge_for(server, api_key_env="GTALIGN_TEST_KEY", temperature=0.3, max_tokens=77, extra_body=extra)
    await judge.judge([math("1")])
    seen = server.received[-1]
    assert seen.model == "judge-model" and seen.headers["authorization"] == "Bearer sekret"
    assert seen.body["temperature"] == 0.3 and seen.body["max_tokens"] == 77
    assert seen.body["chat_template_kwargs"] == {"enable_thinking": False}
    monkeypatch.delenv("GTALIGN_TEST_KEY")
    await judge_for(server, api_key_env="GTALIGN_TEST_KEY").judge([math("0")])
    assert server.received[-1].headers["authorization"] == "Bearer EMPTY"


# -- faults: the verdict arrives after retries, or a recorded failure with its reason ---------------


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "garbage", "drop", "hang"])
async def test_transient_faults_are_retried(server: FakeOpenAI, fault: str) -> None:
    sleeps = Sleeps()
    judge = judge_for(server, sleeps, attempt_timeout=0.3 if fault == "hang" else 5.0)
    verdicts = await judge.judge([math(f"1|{fault}*2"), math("0")])
    assert [v.value for v in verdicts] == [1.0, 0.0]
    assert server.counts[fault] == 2 and judge.stats.retries == 2
    assert judge.stats.http_requests == 4 and len(sleeps.waits) == 2


async def test_retry_after_is_honoured(server: FakeOpenAI) -> None:
    sleeps = Sleeps()
    judge = judge_for(server, sleeps, backoff_base=10.0)
    verdicts = await judge.judge([math("1|rate_limit@2.5*2")])
    assert verdicts[0].value == 1.0
    assert sleeps.waits == [2.5, 2.5]  # the server's wish, not the (large) jittered backoff


async def test_retry_after_is_capped(server: FakeOpenAI) -> None:
    sleeps = Sleeps()
    judge = judge_for(server, sleeps, retry_after_max=3.0)
    assert (await judge.judge([math("1|rate_limit@1000")]))[0].ok
    assert sleeps.waits == [3.0]


async def test_a_wait_beyond_the_total_budget_fails_at_once(server: FakeOpenAI) -> None:
    sleeps = Sleeps()
    judge = judge_for(server, sleeps, total_timeout=10.0, retry_after_max=100.0)
    verdict = (await judge.judge([math("1|rate_limit@50")]))[0]
    assert verdict.status == "failed" and "total timeout of 10s" in verdict.reason and "HTTP 429" in verdict.reason
    assert sleeps.waits == [] and server.requests == 1


async def test_persistent_errors_become_failed_verdicts(server: FakeOpenAI) -> None:
    judge = judge_for(server, max_retries=2)
    verdicts = await judge.judge([math("1|server_error*99"), math("1")])
    assert verdicts[0].status == "failed" and verdicts[0].value is None
    assert "gave up after 3 attempts" in verdicts[0].reason and "HTTP 500" in verdicts[0].reason
    assert verdicts[1].value == 1.0
    assert server.counts["server_error"] == 3 and judge.stats.failures == 1


@pytest.mark.parametrize(("fault", "words"), [("overflow", "context"), ("content_filter", "content filter")])
async def test_overflow_and_filter_are_refusals_not_retried(server: FakeOpenAI, fault: str, words: str) -> None:
    judge = judge_for(server)
    verdicts = await judge.judge([math(f"1|{fault}*99"), math("0")])
    assert verdicts[0].status == "refused" and words in verdicts[0].reason
    assert verdicts[1].value == 0.0
    assert server.counts[fault] == 1 and judge.stats.retries == 0


async def test_unreachable_server_is_a_failure_with_reason() -> None:
    async with FakeOpenAI() as fake:
        url = fake.base_url
    judge = LLMJudge(url, "m", max_retries=1, backoff_base=0.0, sleep=Sleeps())
    verdicts = await judge.judge([math("1"), math("0")])
    assert all(v.status == "failed" and f"connection refused by {url}" in v.reason for v in verdicts)


async def test_a_judge_that_is_down_is_given_up_on_quickly_and_tried_again_later() -> None:
    """20 rows against a closed port: a few short retries each (not the full schedule), a later
    batch fails after one attempt per row, and once the server is back the next batch is judged."""
    clock, port = FakeClock(), closed_port()
    url = f"http://127.0.0.1:{port}/v1"
    judge = LLMJudge(url, "judge-model", concurrency=8, clock=clock)  # default retries and backoff
    rows = [math(str(i % 2) + " " * i) for i in range(20)]

    verdicts = await judge.judge(rows)
    assert all(v.status == "failed" and v.value is None and f"connection refused by {url}" in v.reason for v in verdicts)
    # at most connect_retries + 1 = 3 attempts a row (not max_retries + 1 = 9); fewer for a row
    # that is refused again after another row gave up
    assert 20 < judge.stats.http_requests <= 20 * 3 and judge.stats.failures == 20
    assert len(clock.waits) <= 20 * 2 and max(clock.waits) <= 1.0  # backoff_base * 2**1 at most
    waits = len(clock.waits)

    judge.reset_stats()
    later = await judge.judge(rows)
    assert all(v.status == "failed" and "already gave up on refused connections" in v.reason for v in later)
    assert judge.stats.http_requests == 20 and len(clock.waits) == waits  # one attempt a row, no waits

    async with FakeOpenAI(script, port=port):
        back = await judge.judge(rows)
    assert [v.value for v in back] == [float(i % 2) for i in range(20)]


@pytest.mark.parametrize(("status", "retried"), [(400, False), (401, False), (403, False), (404, False), (422, False),
                                                 (408, True), (409, True), (429, True), (500, True), (502, True), (503, True)])
async def test_status_classifier(status: int, retried: bool) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"error": {"message": "nope", "code": status}})

    config = ClientConfig("http://judge.invalid/v1", "m", api_key_env="GTALIGN_UNSET_KEY", max_retries=2, backoff_base=0.0)
    result = await ChatClient(config, sleep=Sleeps(), transport=httpx.MockTransport(handler)).chat([{"role": "user", "content": "x"}])
    assert result.status == "failed" and result.http_status == status
    assert calls == (3 if retried else 1)
    if status == 401:
        assert "$GTALIGN_UNSET_KEY" in result.reason and "EMPTY" in result.reason
    if status == 404:
        assert "base_url" in result.reason


async def test_error_bodies_that_mean_overflow_or_filter() -> None:
    bodies = {
        "context_overflow": {"object": "error", "message": "The input (9000 tokens) is longer than the model's context length (4096 tokens)."},
        "content_filter": {"error": {"code": "content_filter", "message": "The response was filtered due to the prompt triggering the content management policy."}},
    }
    for expected, body in bodies.items():
        transport = httpx.MockTransport(lambda request, body=body: httpx.Response(400, json=body))
        client = ChatClient(ClientConfig("http://judge.invalid/v1", "m"), transport=transport)
        assert (await client.chat([{"role": "user", "content": "x"}])).status == expected


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=1_000_000) == pytest.approx(30.0)


async def test_backoff_is_full_jitter_within_the_exponential_cap() -> None:
    sleeps = Sleeps()
    transport = httpx.MockTransport(lambda request: httpx.Response(503, json={"error": "busy"}))
    config = ClientConfig("http://judge.invalid/v1", "m", max_retries=6, backoff_base=1.0, backoff_max=8.0, seed=7)
    result = await ChatClient(config, sleep=sleeps, transport=transport).chat([{"role": "user", "content": "x"}])
    assert result.attempts == 7 and "gave up after 7 attempts" in result.reason
    caps = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert len(sleeps.waits) == 6 and all(0.0 <= w <= cap for w, cap in zip(sleeps.waits, caps))
    assert result.waited == pytest.approx(sum(sleeps.waits))


# -- verdicts the judge could not read ------------------------------------------------------------


async def test_unparsable_reply_is_retried_once_with_a_reminder() -> None:
    def flaky(request: FakeRequest) -> str:
        return "\\boxed{1}" if "Reminder" in request.prompt else "Looks right to me."

    async with FakeOpenAI(flaky) as fake:
        judge = judge_for(fake)
        assert (await judge.judge([math("x")]))[0].value == 1.0
        assert judge.stats.parse_retries == 1 and judge.stats.calls == 2


@pytest.mark.parametrize(("reply", "status"), [("no verdict at all", "unparsable"), ("\\boxed{7}", "invalid")])
async def test_unusable_verdicts_are_recorded_not_zero(reply: str, status: str) -> None:
    async with FakeOpenAI(lambda request: reply) as fake:
        judge = judge_for(fake, parse_retries=2)
        verdict = (await judge.judge([math("x")]))[0]
        assert verdict.status == status and verdict.value is None and "after 3 call(s)" in verdict.reason
        assert verdict.raw == reply and fake.requests == 3 and judge.stats.failures == 1


async def test_thinking_sections_are_ignored() -> None:
    def thinker(request: FakeRequest) -> Reply:
        if request.tagged("judged_response") == "cut":
            return Reply(text="<think>on and on \\boxed{1}", finish_reason="length")
        return Reply(think="first guess \\boxed{0}", text="\n\nFinal verdict: \\boxed{1}")

    async with FakeOpenAI(thinker) as fake:
        judge = judge_for(fake, parse_retries=0, max_tokens=64)
        good, cut = await judge.judge([math("ok"), math("cut")])
        assert good.value == 1.0
        assert cut.status == "unparsable" and "never closed" in cut.reason and "max_tokens=64" in cut.reason


async def test_bad_rows_fail_alone(server: FakeOpenAI) -> None:
    judge = judge_for(server)
    verdicts = await judge.judge([
        JudgeRequest("safety", "1"),  # no label
        JudgeRequest("chess", "1"),  # type: ignore[arg-type]
        math("1"),
    ])
    # Invalid, not failed: such rows cannot be judged, so a rerun of `gtalign score` leaves them alone.
    assert verdicts[0].status == "invalid" and "harmful" in verdicts[0].reason
    assert verdicts[1].status == "invalid" and "no judge rubric for task 'chess'" in verdicts[1].reason
    assert verdicts[2].value == 1.0 and server.requests == 1


# -- limits ----------------------------------------------------------------------------------------


async def test_concurrency_limit_holds_at_the_server() -> None:
    async with FakeOpenAI(script, latency=0.02) as fake:
        judge = judge_for(fake, concurrency=4)
        verdicts = await judge.judge([math(str(i % 2) + " " * i) for i in range(40)])
        assert all(v.ok for v in verdicts)
        assert fake.max_in_flight == 4


async def test_judges_of_one_server_and_model_share_the_limit() -> None:
    async with FakeOpenAI(script, latency=0.02) as fake:
        first, second = judge_for(fake, concurrency=3), judge_for(fake, concurrency=3)
        await asyncio.gather(first.judge([math("1" + " " * i) for i in range(15)]), second.judge([math("0" + " " * i) for i in range(15)]))
        assert fake.max_in_flight == 3
        with pytest.warns(UserWarning, match="already limited to concurrency=3"):
            await judge_for(fake, concurrency=5).judge([math("1")])


async def test_server_capacity_rejections_are_retried() -> None:
    sleeps = Sleeps(scale=0.1)  # a real 50 ms pause, so retries do not outrun the 20 ms service time
    async with FakeOpenAI(script, capacity=2, latency=0.02, capacity_retry_after=0.5) as fake:
        judge = judge_for(fake, sleeps, concurrency=6)
        verdicts = await judge.judge([math("1" + " " * i) for i in range(12)])
        assert all(v.value == 1.0 for v in verdicts)
        assert fake.counts["capacity"] > 0 and fake.max_in_flight <= 2
        assert sleeps.waits and set(sleeps.waits) == {0.5}


async def test_requests_per_minute_spacing() -> None:
    clock = FakeClock()
    arrivals: list[float] = []

    def timed(request: FakeRequest) -> Reply:
        arrivals.append(clock.monotonic())
        clock.advance(0.03)  # each request takes 30 ms, less than the 100 ms spacing
        return script(request)

    async with FakeOpenAI(timed) as fake:
        judge = judge_for(fake, clock, rpm=600, concurrency=1)
        verdicts = await judge.judge([math(str(i % 2) + " " * i) for i in range(4)])
    assert all(v.ok for v in verdicts)
    assert arrivals == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=1e-9)  # starts 60/rpm seconds apart
    assert clock.waits == pytest.approx([0.07, 0.07, 0.07], abs=1e-9)  # the spacing less the time requests took


# -- de-duplication and cache ----------------------------------------------------------------------


async def test_identical_requests_are_judged_once(server: FakeOpenAI) -> None:
    progress: list[tuple[int, int]] = []
    judge = judge_for(server, progress=lambda done, total: progress.append((done, total)))
    requests = [math("1")] * 10 + [math("0"), math("1|drop")]
    verdicts = await judge.judge(requests)
    assert [v.value for v in verdicts] == [1.0] * 10 + [0.0, 1.0]
    assert server.counts["ok"] == 3
    assert judge.stats.deduplicated == 9 and judge.stats.unique == 3
    assert progress[-1] == (12, 12) and [d for d, _ in progress] == sorted(d for d, _ in progress)


async def test_cache_hits_skip_the_server(server: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    judge = judge_for(server, cache=path)
    first = await judge.judge([math("1"), math("0"), math("1|server_error*99")])
    sent = server.requests
    assert [v.status for v in first] == ["ok", "ok", "failed"]

    again = judge_for(server, cache=path, max_retries=0)
    second = await again.judge([math("1"), math("0"), math("1|server_error*99")])
    assert [v.value for v in second[:2]] == [1.0, 0.0] and all(v.cached for v in second[:2])
    assert second[2].status == "failed" and not second[2].cached  # failures are judged again
    assert server.requests == sent + 1 and again.stats.cache_hits == 2
    await judge.aclose()
    await again.aclose()


async def test_settings_are_part_of_the_cache_key(server: FakeOpenAI, tmp_path: Path) -> None:
    with VerdictCache(tmp_path / "c.sqlite3") as cache:
        plain = judge_for(server, cache=cache)
        thinking = judge_for(server, cache=cache, extra_body={"chat_template_kwargs": {"enable_thinking": True}})
        assert plain.cache_key(math("1")) != thinking.cache_key(math("1"))
        await plain.judge([math("1")])
        await thinking.judge([math("1")])
        assert server.requests == 2 and len(cache) == 2


async def test_stats_are_frozen(server: FakeOpenAI) -> None:
    judge = judge_for(server)
    await judge.judge([math("1")])
    with pytest.raises(dataclasses.FrozenInstanceError):
        judge.stats.calls = 0  # type: ignore[misc]
    judge.reset_stats()
    assert judge.stats == JudgeStats()


# -- the fake server itself, from synchronous code and with the openai client ----------------------


def test_threaded_server_with_sync_judging() -> None:
    with FakeOpenAI(script) as fake:
        judge = LLMJudge(fake.base_url, "m", backoff_base=0.0)
        verdicts = judge_sync(judge, [math("1"), math("0|server_error")])
        assert [v.value for v in verdicts] == [1.0, 0.0]
        assert judge_sync(judge, [math("1")])[0].value == 1.0  # a second event loop, same judge
    assert fake.requests == 4


async def test_openai_client_speaks_to_the_fake_server(server: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    try:
        reply = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "<judged_response>4</judged_response>"}])
        assert reply.choices[0].message.content == "The reply is judged. \\boxed{4}"
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        assert [m.id for m in (await client.models.list()).data] == ["fake-judge"]
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "<judged_response>1|rate_limit@1</judged_response>"}])
    finally:
        await client.close()


async def test_chat_result_reports_cost() -> None:
    clock = FakeClock()

    def slow(request: FakeRequest) -> Reply:
        clock.advance(0.25)
        return script(request)

    async with FakeOpenAI(slow) as fake, ChatClient(ClientConfig(fake.base_url, "m"), clock=clock) as client:
        result = await client.chat([{"role": "user", "content": "<judged_response>1</judged_response>"}], max_tokens=5)
        assert result.ok and result.text and result.finish_reason == "stop" and result.attempts == 1
        assert result.tokens_in and result.tokens_out and result.latency == 0.25 and result.waited == 0.0
        assert await client.models() == ["fake-judge"]


async def test_connections_are_bounded_and_closed(server: FakeOpenAI) -> None:
    client = ChatClient(ClientConfig(server.base_url, "m", concurrency=4))
    async with client:
        await asyncio.gather(*(client.chat([{"role": "user", "content": f"<judged_response>{i}</judged_response>"}]) for i in range(40)))
        assert 1 <= len(client._lanes) <= 4
    assert client._lanes == [] and client._free == []


async def test_an_unexpected_error_in_one_row_is_that_row_s_failed_verdict(server: FakeOpenAI, tmp_path: Path) -> None:
    """A bug that raises while judging one row (here: the call itself) costs that row, not the batch."""
    progress: list[tuple[int, int]] = []
    judge = judge_for(server, cache=tmp_path / "cache.sqlite3", progress=lambda done, total: progress.append((done, total)))
    call = judge._call

    async def exploding(messages: list[dict[str, str]]) -> Any:
        if "<judged_response>\nboom\n</judged_response>" in messages[-1]["content"]:
            raise KeyError("choices")
        return await call(messages)

    judge._call = exploding  # type: ignore[method-assign]
    verdicts = await judge.judge([math("1"), math("boom"), math("0"), math("boom")])
    assert [v.value for v in verdicts] == [1.0, None, 0.0, None]
    assert verdicts[1] == verdicts[3] and verdicts[1].status == "failed" and verdicts[1].judge == "llm"
    assert verdicts[1].reason == "judge error KeyError: 'choices'"
    assert judge.stats.failures == 2 and progress[-1] == (4, 4)
    assert judge.cache is not None and len(judge.cache) == 2  # the failure is not cached: judged again next time
    await judge.aclose()


async def test_a_row_that_is_not_a_request_fails_alone(server: FakeOpenAI) -> None:
    progress: list[tuple[int, int]] = []
    judge = judge_for(server, progress=lambda done, total: progress.append((done, total)))
    verdicts = await judge.judge([{"task": "math"}, math("1")])  # type: ignore[list-item]
    assert verdicts[0].status == "invalid" and "not a judge request" in verdicts[0].reason
    assert verdicts[1].value == 1.0 and progress == [(1, 2), (2, 2)]


def test_client_options_are_validated_against_client_config():
    from gtalign.judges import ClientConfig, LLMJudge

    with pytest.raises(TypeError, match="concurency"):
        LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", concurency=4)
    base = ClientConfig(base_url="http://127.0.0.1:9/v1", model="m", concurrency=3, max_retries=1)
    judge = LLMJudge(client=base, max_retries=5)
    assert (judge.config.concurrency, judge.config.max_retries, judge.config.model) == (3, 5, "m")
    # how long a row may take and how soon a server that is down is given up on: ClientConfig fields
    bounded = LLMJudge(client=base, total_timeout=30.0, max_retries=2, connect_retries=0)
    assert (bounded.config.total_timeout, bounded.config.max_retries, bounded.config.connect_retries) == (30.0, 2, 0)
    assert bounded.client.config is bounded.config
