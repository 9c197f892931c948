"""`LlamaCppBackend` on the real SmolLM2-135M-Instruct GGUF: a caller that gives up frees the one
worker, and `stream` yields the text as it is decoded with the same `Generation` as `generate`.

Nothing here depends on the machine's speed: a spy on the worker (`Worker`) records each call it
decodes and the tokens it draws from llama.cpp, and can hold the worker before a given token while
the test cancels, closes or reads; the calls are short except the ones that get cancelled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from gtalign._chat_client import TextStream
from gtalign.backends._base import ChatBackend, Generation, SamplingParams, StreamingBackend
from gtalign.backends._llamacpp import LlamaCppBackend, _Call
from tests.backends._llamacpp_fixture import llamacpp  # noqa: F401 (a fixture)

COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon who learns to cook."}]
LONG, HOLD = 300, 12
HANG_GUARD = 60.0
"""Seconds a held worker or a waiting test gives up after: a guard against a hang, never a measure."""




def greedy(max_tokens: int, *stop: str) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, stop=stop)


def same_call(a: Generation, b: Generation) -> bool:
    """What a streamed and a plain call must agree on (timings aside)."""
    return (a.text, a.finish_reason, a.stop, a.tokens_in, a.tokens_out, a.status) == (
        b.text, b.finish_reason, b.stop, b.tokens_in, b.tokens_out, b.status)


async def read(stream: TextStream[Generation]) -> tuple[list[str], Generation]:
    deltas = [delta async for delta in stream]
    return deltas, stream.result


class Worker:
    """A spy on the backend's one worker: ``decodes`` lists every call it starts to decode, with what
    it returned and how many tokens it drew from llama.cpp (the tokens it computed).

    With ``hold_at``, the first call to get that far waits before its ``hold_at``-th token until
    `release` is set or the call is cancelled; ``held_until_guard`` records a hold that ran out
    `HANG_GUARD` instead."""

    def __init__(self, backend: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch, hold_at: int | None = None) -> None:
        self.hold_at = hold_at
        self.decodes: list[tuple[_Call, Generation, int]] = []
        self.reached = threading.Event()
        self.release = threading.Event()
        self.held_until_guard = False
        self.drawn, self._current = 0, None  # tokens drawn by the call being decoded, and that call
        decode, llm = backend._decode, backend._load().llm
        generate = llm.generate

        def decode_spy(call: _Call) -> Generation:
            self.drawn, self._current = 0, call
            result = decode(call)
            self.decodes.append((call, result, self.drawn))
            return result

        def generate_spy(*args: Any, **kwargs: Any) -> Iterator[int]:
            for token in generate(*args, **kwargs):
                self.drawn += 1
                if self.drawn == self.hold_at and not self.reached.is_set():
                    self._hold(self._current)
                yield token

        monkeypatch.setattr(backend, "_decode", decode_spy)
        monkeypatch.setattr(llm, "generate", generate_spy)

    def _hold(self, call: _Call | None) -> None:
        self.reached.set()
        for _ in range(int(HANG_GUARD / 0.005)):
            if self.release.wait(0.005) or (call is not None and call.cancelled.is_set()):
                return
        self.held_until_guard = True

    async def wait_for_hold(self) -> None:
        """Return once the worker is held (fails after `HANG_GUARD` seconds)."""
        assert await asyncio.to_thread(self.reached.wait, HANG_GUARD), f"the worker never reached token {self.hold_at}"

    def assert_freed_at_the_hold(self) -> None:
        """The abandoned call returned as cancelled right at the token where its caller gave up (not
        after the LONG tokens it asked for), and the worker then decoded the next call."""
        (abandoned, stopped, drawn), (_, after, _) = self.decodes
        assert abandoned.params.max_tokens == LONG and after.ok
        assert (stopped.status, stopped.reason) == ("failed", "cancelled by the caller")
        assert stopped.tokens_out == drawn == HOLD, f"held at token {HOLD}; it drew {drawn} and reported {stopped.tokens_out}"
        assert not self.held_until_guard


def test_the_backend_streams() -> None:
    backend = LlamaCppBackend()
    assert isinstance(backend, StreamingBackend) and isinstance(backend, ChatBackend)


# -- cancellation ----------------------------------------------------------------------------------


async def test_a_timed_out_call_frees_the_worker(llamacpp: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is held at token HOLD of the long call until it is cancelled, so the timeout always
    fires while the call is being decoded, however fast or slow the machine."""
    worker = Worker(llamacpp, monkeypatch, hold_at=HOLD)
    call = asyncio.create_task(llamacpp.generate(STORY, params=greedy(LONG)))
    await worker.wait_for_hold()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call, timeout=0.3)
    assert (await llamacpp.generate(COUNT, params=greedy(4))).ok
    worker.assert_freed_at_the_hold()


async def test_a_call_cancelled_in_the_queue_is_never_decoded(llamacpp: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = Worker(llamacpp, monkeypatch, hold_at=HOLD)
    running = asyncio.create_task(llamacpp.generate(STORY, params=greedy(LONG)))
    await worker.wait_for_hold()
    queued = asyncio.create_task(llamacpp.generate(COUNT, params=greedy(LONG)))
    await asyncio.sleep(0)  # the call is submitted while the worker is held in the running one
    queued.cancel()
    running.cancel()
    await asyncio.gather(running, queued, return_exceptions=True)
    assert running.cancelled() and queued.cancelled()
    short = await llamacpp.generate(COUNT, params=greedy(4))
    assert short.ok
    assert [call.params.max_tokens for call, _, _ in worker.decodes] == [LONG, 4], "the queued call was decoded"
    worker.assert_freed_at_the_hold()


# -- streaming -------------------------------------------------------------------------------------


async def test_deltas_arrive_while_the_model_writes(llamacpp: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is held before token 20 of 40 until the reader has its first delta: text decoded so
    far reaches the reader while the model has tokens left to write. (Text sent only at the end would
    leave the reader waiting until the hold ran out its hang guard.)"""
    worker = Worker(llamacpp, monkeypatch, hold_at=20)
    stream = llamacpp.stream(STORY, params=greedy(40))
    deltas, drawn_at_first = [], None
    async for delta in stream:
        if not deltas:
            drawn_at_first = worker.drawn
            assert not stream.done
            worker.release.set()
        deltas.append(delta)
    result = stream.result
    assert drawn_at_first is not None and drawn_at_first <= 20, f"first text after {drawn_at_first} of 40 tokens"
    assert not worker.held_until_guard, "the worker was held until the hang guard: no text reached the reader"
    assert result.ok and result.tokens_out == 40 and len(deltas) > 10


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
    worker = Worker(llamacpp, monkeypatch, hold_at=HOLD)
    stream = llamacpp.stream(STORY, params=greedy(LONG))
    deltas = []
    async for delta in stream:
        deltas.append(delta)
        if len(deltas) == 3:
            await worker.wait_for_hold()  # closed while the worker is at token HOLD
            break
    await stream.aclose()
    assert not stream.done
    assert (await llamacpp.generate(COUNT, params=greedy(4))).ok
    worker.assert_freed_at_the_hold()


async def test_a_timed_out_reader_frees_the_worker(llamacpp: LlamaCppBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = Worker(llamacpp, monkeypatch, hold_at=HOLD)
    reader = asyncio.create_task(llamacpp.stream(STORY, params=greedy(LONG)).collect())
    await worker.wait_for_hold()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader, timeout=0.3)
    assert (await llamacpp.generate(COUNT, params=greedy(4))).ok
    worker.assert_freed_at_the_hold()


async def test_count_tokens_is_the_gguf_tokenizers_count_without_bos(llamacpp: LlamaCppBackend) -> None:
    texts = ["Hello, world!", "<analyze>Chosen key: DQ_DA.</analyze>", ""]
    llm = llamacpp._load().llm
    expected = [len(llm.tokenize(text.encode(), add_bos=False, special=False)) for text in texts]
    assert await llamacpp.count_tokens(texts) == expected
    assert expected[0] == 4 and expected[2] == 0
