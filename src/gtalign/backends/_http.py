"""The HTTP chat backend: any OpenAI-compatible server, continued the way its kind of server can.

Steering needs the model to go on with its *own* partial assistant turn. Servers disagree on how
to ask for that, so the backend sends a prefill the way each kind supports (`CONTINUATION`):

=================== ======================================================================
kind                how a prefill is sent
=================== ======================================================================
``vllm``            a trailing assistant message, with ``continue_final_message: true`` and
``sglang``          ``add_generation_prompt: false`` in the body
``llama.cpp``       a trailing assistant message (``llama-server`` prefills it by default;
``ollama``          Ollama's templates leave a final assistant message open)
``llama-cpp-python`` ``POST /v1/completions`` with the chat template rendered here from the
                    model's tokenizer (its chat endpoint closes the turn and starts a new one)
``openai``          emulated: the partial message as an assistant turn, then a user turn
                    asking to continue it verbatim (`EMULATED_CONTINUATION_PROMPT`); the
                    result is marked ``continuation="emulated"`` in `Generation.extra`
=================== ======================================================================

Without a prefill every kind gets a plain ``/v1/chat/completions`` request. ``kind="auto"``
asks the server once per backend with cheap GET probes (`HTTPBackend.server_kind`).
`HTTPBackend.count_tokens` counts with the server's own tokenizer where its kind has a tokenize
endpoint (`gtalign.backends._tokenize`).

A `Constraint` in `SamplingParams.constraint` (protocol-constrained decoding) goes out in the field
each kind reads (`HTTPBackend.constraint_support` names it; the request body is otherwise the same):

==================== =====================================================================
kind                 constraint field
==================== =====================================================================
``vllm``             ``structured_outputs: {"grammar": GBNF}`` from 0.12 (or an unknown
                     version); ``guided_grammar`` before 0.12, which dropped it silently
``sglang``           ``ebnf`` (GBNF, read by its xgrammar backend)
``llama.cpp``        ``grammar`` (llama-server's GBNF)
``llama-cpp-python`` ``grammar`` (its server compiles it with ``LlamaGrammar.from_string``)
``ollama``           the ``payoff`` stage only, in two calls (`OLLAMA_PAYOFF`, below); the
                     whole answer and the ``response`` stage: none, since Ollama constrains
                     JSON only (`OLLAMA_JSON_ONLY`) and they are tagged text
``openai``           none: sent unconstrained
==================== =====================================================================

A kind that cannot enforce the stage sends the request unconstrained, or, when the constraint is
``required``, sends nothing and fails with the reason. Each `Generation` of a constrained call says
which in ``extra["constraint"]`` (`constraint_record`).

Ollama holds output to a JSON schema (its ``format``, which its ``/v1/chat/completions`` reads from
``response_format: {"type": "json_schema", "json_schema": {"schema": ...}}``), and continues a
trailing assistant message with that format applied to the new text only. So its ``payoff`` stage
(from the answer's start, no prefill) is two calls, the way Ollama itself gives thinking models a
format: (1) the thinking, free, continuing a prefilled ``<thinking>`` up to ``</thinking>``, with at
most the stage's ``max_tokens`` less a reserve for the payoff (`_thinking_budget`); a thinking cut
there is closed by the backend, as the grammar's cap would close it; (2) the turn so far plus
``</thinking>\n<payoff>``, continued under ``response_format`` with `ProtocolGrammar.payoff_schema`
and the rest of the budget (what call 1 left, by its reported usage). The stage's text is the
whole of it, ``<thinking>`` first, with ``</payoff>`` at the end: cut as the stop string when it is
one (``stop="</payoff>"``, as a server that wrote it reports), appended otherwise. Tokens and
attempts are the two calls' sums; a failure of either call fails the stage and says which. The
stop strings are applied here, not sent (Ollama does not say which one it hit): call 1 sends only
``</thinking>``, so a stop string of the caller's inside the thinking ends the stage there with
the payoff not reached. The record says the thinking was free and whether the payoff was held
(``extra["constraint"]["thinking"]``, ``["payoff"]``). Ollama turns the schema into a grammar with
llama.cpp's converter, which holds the six keys and each cell's two numbers but not a number's range
or precision (its converter bounds integers only), so the parser still reads what the numbers are.
Streamed, the stage comes as one piece at its end. A ``payoff`` stage that continues a prefill
goes out unconstrained (`OLLAMA_PREFILLED_PAYOFF`).

Whatever the server does, `Generation.text` is only the new text: a reply that repeats a whole
prefill of at least 16 characters is taken as an echo and the repeat is dropped (shorter prefills
are left alone, since a real continuation could begin the same way), and text from a stop string
on is cut even if the server let it through. Server trouble never raises: it becomes a
`Generation` with a non-``ok`` status, after the shared client's retries and timeouts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import httpx

from gtalign._chat_client import ChatClient, ChatResult, ClientConfig, Endpoint, Sleep, TextStream, merge_client_config
from gtalign.backends._base import Constraint, Generation, Message, SamplingParams, constraint_record
from gtalign.backends._tokenize import TOKENIZE, ServerTokenizer
from gtalign.protocol import ProtocolGrammar, Stage

__all__ = [
    "CONTINUATION",
    "EMULATED_CONTINUATION_PROMPT",
    "OLLAMA_JSON_ONLY",
    "OLLAMA_PAYOFF",
    "OLLAMA_PREFILLED_PAYOFF",
    "SERVER_KINDS",
    "ChatTemplate",
    "Continuation",
    "Detection",
    "HTTPBackend",
    "ServerKind",
    "TextStream",
]

ServerKind = Literal["vllm", "sglang", "llama.cpp", "ollama", "llama-cpp-python", "openai"]
SERVER_KINDS: tuple[ServerKind, ...] = ("vllm", "sglang", "llama.cpp", "ollama", "llama-cpp-python", "openai")

Continuation = Literal["continue_final_message", "trailing_assistant", "client_template", "emulated"]
CONTINUATION: Mapping[ServerKind, Continuation] = MappingProxyType(
    {
        "vllm": "continue_final_message",
        "sglang": "continue_final_message",
        "llama.cpp": "trailing_assistant",
        "ollama": "trailing_assistant",
        "llama-cpp-python": "client_template",
        "openai": "emulated",
    }
)
"""How each server kind is asked to continue a partial assistant message (see the module docstring)."""

EMULATED_CONTINUATION_PROMPT = (
    "Continue your last message from exactly where it stops, as if you had not been interrupted. "
    "Do not repeat any of it and add no preamble: what you write is appended to it verbatim."
)
"""The user turn sent after the partial assistant message when the server cannot continue one."""

OLLAMA_PAYOFF = "ollama format (payoff JSON)"
"""How an Ollama server enforces the ``payoff`` stage: the thinking free, then the payoff's JSON
under ``response_format`` json_schema (Ollama's ``format``), in two calls (see the module docstring)."""

OLLAMA_JSON_ONLY = (
    "Ollama constrains JSON only (its format, from response_format json_schema): the whole answer and the "
    "response stage are tagged text around free text, so they go out unconstrained (only the payoff stage "
    "is held, its JSON to the payoff's schema)"
)
"""Why an Ollama ``full`` or ``response`` stage goes out unconstrained."""

OLLAMA_PREFILLED_PAYOFF = (
    "Ollama holds the payoff stage in two calls that start the answer (<thinking> first, then the payoff's JSON "
    "under its schema); this payoff stage continues a prefill, so it goes out unconstrained"
)
"""Why an Ollama ``payoff`` stage that continues a prefill goes out unconstrained."""

_THINKING_OPEN = "<thinking>"
_THINKING_CLOSE = "</thinking>"
_PAYOFF_OPEN = "\n<payoff>"
_PAYOFF_CLOSE = "</payoff>"
_FREE_THINKING = "free: written without a grammar up to </thinking>"
_HELD_PAYOFF = ("enforced: its keys and cells held by the payoff's JSON schema (response_format json_schema), "
                "not its numbers' range")

_VLLM_STRUCTURED_OUTPUTS = (0, 12)
"""vLLM 0.12 removed the ``guided_*`` request fields (ignored silently since), leaving ``structured_outputs``."""

_log = logging.getLogger("gtalign.backends.http")

_ECHO_MIN = 16
_SENTINEL = "GTALIGN_PREFILL_SENTINEL_5f1c"
# ``owned_by`` in /v1/models, as each server sets it for itself.
_OWNERS: Mapping[str, ServerKind] = MappingProxyType(
    {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama.cpp", "me": "llama-cpp-python"}
)


@dataclass(frozen=True, slots=True)
class Detection:
    """Which kind of server answers, and the evidence (or ``set by the caller``); ``version`` as the
    server reports it where its kind's request fields depend on it (vLLM), else None."""

    kind: ServerKind
    evidence: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """A model's chat template rendered on the client, for servers that only continue raw prompts.

    tokenizer: anything with transformers' ``apply_chat_template`` (a loaded tokenizer).
    source: where it came from, for records and messages.
    leading_bos: a BOS text the template writes and the server's tokenizer adds by itself; it
        is dropped from the rendered prompt so the model does not see two (None: keep the text).
    """

    tokenizer: Any
    source: str = "tokenizer"
    leading_bos: str | None = None

    @classmethod
    def load(cls, source: str | os.PathLike[str]) -> ChatTemplate:
        """Load the tokenizer of a local Hugging Face model folder or a ``.gguf`` file (offline)."""
        path = Path(source).expanduser()
        if not (path.is_dir() or (path.is_file() and path.suffix == ".gguf")):
            raise FileNotFoundError(f"no tokenizer at {path}: pass a local Hugging Face model folder or a .gguf file")
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            need = "rendering a chat template needs transformers (and gguf for a .gguf file): pip install 'gtalign[embedded]'"
            raise RuntimeError(need) from exc
        if path.is_dir():
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"the tokenizer at {path} has no chat template, so a conversation cannot be rendered for it")
        return cls.from_tokenizer(tokenizer, source=str(path))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, source: str = "tokenizer") -> ChatTemplate:
        """Wrap a loaded tokenizer; works out whether its encoding adds the BOS token itself."""
        bos, bos_id = getattr(tokenizer, "bos_token", None), getattr(tokenizer, "bos_token_id", None)
        adds_bos = False
        if isinstance(bos, str) and bos and bos_id is not None and callable(getattr(tokenizer, "encode", None)):
            try:
                adds_bos = list(tokenizer.encode("x"))[:1] == [bos_id]
            except (TypeError, ValueError):
                adds_bos = False
        return cls(tokenizer, source, bos if adds_bos else None)

    def render(self, messages: Sequence[Message], prefill: str = "") -> str:
        """The prompt for ``messages``: ending in an open assistant turn that holds ``prefill`` verbatim.

        The template renders a placeholder assistant message that is cut off, so the prefill keeps
        every character (transformers' ``continue_final_message`` may trim trailing whitespace).
        """
        conversation = [dict(m) for m in messages]
        if prefill:
            conversation.append({"role": "assistant", "content": _SENTINEL})
            text = str(self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=False))
            cut = text.rfind(_SENTINEL)
            if cut < 0:
                raise ValueError(f"the chat template of {self.source} drops a final assistant message, so it cannot continue one")
            text = text[:cut] + prefill
        else:
            text = str(self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True))
        if self.leading_bos and text.startswith(self.leading_bos):
            text = text[len(self.leading_bos) :]
        return text


class _Unavailable(Exception):
    """A call that cannot be sent (server kind unknown, no chat template, a required constraint the
    server cannot enforce); its text is the reason, ``constraint`` the record of a constrained call."""

    def __init__(self, reason: str, constraint: Mapping[str, object] | None = None) -> None:
        super().__init__(reason)
        self.constraint = constraint


def _unavailable_generation(exc: _Unavailable, params: SamplingParams, latency: float) -> Generation:
    record = exc.constraint
    if record is None and params.constraint is not None:
        record = constraint_record(params.constraint, None, f"not sent: {exc}")
    return Generation("", "error", status="failed", reason=str(exc), latency=latency,
                      extra={} if record is None else {"constraint": record})


@dataclass(frozen=True, slots=True)
class _Request:
    path: Endpoint
    payload: Mapping[str, Any]
    kind: ServerKind
    continuation: Continuation | None
    template: str | None = None
    constraint: Mapping[str, object] | None = None


def _vllm_version(version: str | None) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(match[1]), int(match[2])) if match else None


def _constraint_support(detection: Detection, stage: Stage, prefill: str = "") -> tuple[str | None, str]:
    """How this server enforces a constraint at ``stage`` continuing ``prefill`` (None: it cannot)
    and, if not, why."""
    kind = detection.kind
    if kind == "vllm":
        version = _vllm_version(detection.version)
        old = version is not None and version < _VLLM_STRUCTURED_OUTPUTS
        return ("vllm guided_grammar" if old else "vllm structured_outputs.grammar"), ""
    if kind == "sglang":
        return "sglang ebnf", ""
    if kind == "llama.cpp":
        return "llama-server grammar", ""
    if kind == "llama-cpp-python":
        return "llama-cpp-python grammar", ""
    if kind == "ollama":
        if stage != "payoff":
            return None, OLLAMA_JSON_ONLY
        return (None, OLLAMA_PREFILLED_PAYOFF) if prefill else (OLLAMA_PAYOFF, "")
    return None, f"a plain OpenAI-compatible server takes no grammar in its requests ({detection.evidence})"


@functools.lru_cache(maxsize=64)
def _gbnf(grammar: ProtocolGrammar, stage: Stage) -> str:
    return grammar.gbnf(stage)


def _constraint_fields(how: str, constraint: Constraint) -> dict[str, Any]:
    """The request fields that carry ``constraint`` the way ``how`` names (for `OLLAMA_PAYOFF`: those
    of its second call, the payoff's JSON)."""
    if how == OLLAMA_PAYOFF:
        schema = constraint.grammar.payoff_schema()
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "payoff", "schema": schema}}}
    gbnf = _gbnf(constraint.grammar, constraint.stage)
    if how == "vllm structured_outputs.grammar":
        return {"structured_outputs": {"grammar": gbnf}}
    if how == "vllm guided_grammar":
        return {"guided_grammar": gbnf}
    if how == "sglang ebnf":
        return {"ebnf": gbnf}
    return {"grammar": gbnf}


def _payoff_reserve(grammar: ProtocolGrammar) -> int:
    """Tokens Ollama's payoff call may need: a token per character of the widest payoff JSON the
    grammar allows (a token of ASCII text covers at least one character), and the end of turn."""
    skeleton = grammar.skeleton("payoff")
    start = skeleton.index(_PAYOFF_OPEN) + len(_PAYOFF_OPEN)
    return len(skeleton[start : skeleton.rindex(_PAYOFF_CLOSE)].strip()) + 1


def _thinking_budget(max_tokens: int, grammar: ProtocolGrammar) -> int:
    """``max_tokens`` of Ollama's thinking call: what the payoff's reserve leaves of the stage's
    budget (half of it when the budget cannot hold the reserve, so the payoff may end at the limit),
    never more than a thinking the grammar allows could take (``thinking_tokens``, or a token per
    character of ``thinking_chars``) with its closing tag."""
    reserve = _payoff_reserve(grammar)
    share = max_tokens - reserve if max_tokens > reserve else max(1, max_tokens // 2)
    most = grammar.thinking_tokens if grammar.thinking_tokens is not None else grammar.thinking_chars
    return max(1, min(share, most + len(_THINKING_CLOSE)))


def _total(counts: Iterable[int | None]) -> int | None:
    """The sum of token counts, None when one is unknown."""
    known = list(counts)
    return None if None in known else sum(c for c in known if c is not None)


def _partial_suffix(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` begin ``tag`` (a tag cut off by a token limit)."""
    return max((k for k in range(1, len(tag)) if text.endswith(tag[:k])), default=0)


@dataclass
class _TextFilter:
    """Turns the server's text into new text only: drops an echoed prefill, cuts at a stop string.

    Fed piece by piece (a stream) it holds back just what could still turn out to be an echo or
    the start of a stop string, so streamed and whole replies come out the same.
    """

    prefill: str
    stops: tuple[str, ...]
    matched: str | None = None
    echoed: bool = False
    emitted: list[str] = field(default_factory=list)
    _held: str = ""
    _echo_pending: bool = field(init=False)

    def __post_init__(self) -> None:
        self._echo_pending = len(self.prefill) >= _ECHO_MIN

    @property
    def stopped(self) -> bool:
        return self.matched is not None

    @property
    def text(self) -> str:
        return "".join(self.emitted)

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        held = self._held + piece
        if self._echo_pending:
            if len(held) < len(self.prefill) and self.prefill.startswith(held):
                self._held = held
                return ""
            self._echo_pending = False
            if held.startswith(self.prefill):
                held, self.echoed = held[len(self.prefill) :], True
        # The stop a server would hit first writing token by token: the one that ends first.
        hits = [(held.find(stop) + len(stop), held.find(stop), stop) for stop in self.stops if stop and stop in held]
        if hits:
            _, cut, self.matched = min(hits)
            return self._emit(held[:cut], "")
        keep = max((k for stop in self.stops for k in range(1, len(stop)) if held.endswith(stop[:k])), default=0)
        return self._emit(held[: len(held) - keep], held[len(held) - keep :])

    def finish(self) -> str:
        """What is still held back once the reply has ended (never a stop string)."""
        self._echo_pending = False
        held, self._held = self._held, ""
        out = self.feed(held) if held else ""
        return out + self._emit(self._held, "")

    def _emit(self, out: str, held: str) -> str:
        self._held = held
        if out:
            self.emitted.append(out)
        return out


def _root_url(base_url: str) -> str:
    """The server root under an OpenAI-style base URL (``http://h:p/v1`` -> ``http://h:p``)."""
    url = httpx.URL(base_url)
    path = url.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return str(url.copy_with(path=path or "/", query=None)).rstrip("/")


def _owned_by(listing: Any) -> str | None:
    if isinstance(listing, dict) and isinstance(listing.get("data"), list):
        for entry in listing["data"]:
            if isinstance(entry, dict) and isinstance(entry.get("owned_by"), str):
                return str(entry["owned_by"])
    return None


def _has(data: Any, *keys: str) -> bool:
    return isinstance(data, dict) and any(key in data for key in keys)


class HTTPBackend:
    """A `ChatBackend` over an OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, ...).

    base_url / model: the server's OpenAI root (``.../v1``) and the served model name; optional
        when ``client`` is given (if given too, they override it).
    kind: ``"auto"`` (detect once, on first use) or one of `SERVER_KINDS`, which skips detection.
    client: a `ClientConfig` to start from (concurrency, timeouts, retries, API key variable).
    tokenizer: for ``llama-cpp-python`` only: the model's local Hugging Face folder or ``.gguf``
        file, or a `ChatTemplate`, used to render prompts for a prefill. None: the model name,
        when it is a local path (llama-cpp-python serves the model under its file path).
    probe_timeout: seconds each detection probe may take.
    sleep, transport: test hooks passed to `ChatClient` (zero waits, mock transports).
    **client_options: any other `ClientConfig` field by name, overriding ``client``.

    Calls from several event loops are fine (one after another, e.g. successive `asyncio.run`).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        *,
        kind: ServerKind | Literal["auto"] = "auto",
        client: ClientConfig | None = None,
        tokenizer: str | os.PathLike[str] | ChatTemplate | None = None,
        probe_timeout: float = 5.0,
        sleep: Sleep | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        **client_options: Any,
    ) -> None:
        if kind != "auto" and kind not in SERVER_KINDS:
            raise ValueError(f"unknown server kind {kind!r}; valid kinds: auto, {', '.join(SERVER_KINDS)}")
        if not probe_timeout > 0:
            raise ValueError(f"probe_timeout must be > 0 seconds, got {probe_timeout}")
        self.config = merge_client_config(client, base_url, model, client_options, owner="HTTPBackend")
        self.name = "http"
        self.model = self.config.model
        self.kind: ServerKind | Literal["auto"] = kind
        self.probe_timeout = probe_timeout
        self._client = ChatClient(self.config, sleep=sleep, transport=transport)
        self._detection: Detection | None = None if kind == "auto" else Detection(kind, "set by the caller")
        self._tokenizer = tokenizer
        self._template: ChatTemplate | str | None = tokenizer if isinstance(tokenizer, ChatTemplate) else None
        self._locks: dict[str, asyncio.Lock] = {}
        self._logged: set[str] = set()
        self._locks_loop: asyncio.AbstractEventLoop | None = None
        key = self.config.api_key()
        self._tokenizer_endpoint = ServerTokenizer(
            _root_url(self.config.base_url), self.model, limit=self.config.concurrency, timeout=probe_timeout,
            headers={"Content-Type": "application/json", **dict(self.config.headers),
                     **({"Authorization": f"Bearer {key}"} if key is not None else {})},
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"HTTPBackend({self.config.base_url!r}, {self.model!r}, kind={self.kind!r})"

    @property
    def detection(self) -> Detection | None:
        """The server kind and why, once known (None before the first call with ``kind="auto"``)."""
        return self._detection

    async def server_kind(self) -> ServerKind:
        """The kind of server, detected once and cached; a RuntimeError when the server cannot be reached."""
        try:
            return (await self._detect()).kind
        except _Unavailable as exc:
            raise RuntimeError(str(exc)) from None

    async def prepare(self) -> ServerKind:
        """Detect the server kind and load what continuing a turn needs (the chat template for
        llama-cpp-python, several seconds from a GGUF file) now instead of on the first call.

        Raises RuntimeError saying what is missing; a server or proxy calls it at startup.
        """
        kind = await self.server_kind()
        if CONTINUATION[kind] == "client_template":
            try:
                await self._chat_template()
            except _Unavailable as exc:
                raise RuntimeError(str(exc)) from None
        return kind

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> Generation:
        """The next text after ``messages`` (and after ``prefill``, continuing that assistant turn)."""
        started = time.perf_counter()
        try:
            if await self._in_two_calls(prefill, params):
                return await self._payoff_in_two_calls(messages, params, started)
            request = await self._request(messages, prefill, params)
        except _Unavailable as exc:
            return _unavailable_generation(exc, params, time.perf_counter() - started)
        result, text_filter = await self._send(request, prefill, params.stop)
        return self._generation(result, request, text_filter, time.perf_counter() - started)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> TextStream[Generation]:
        """`generate`, streamed: ``async for delta in backend.stream(...)`` yields the new text as it
        comes; ``.result`` then holds the `Generation` (the same one `generate` would return).

        A stream that breaks after some text was yielded ends with a ``failed`` Generation (its
        ``text`` empty, as for every failure): the deltas already yielded cannot be recalled.
        """
        return TextStream(self._stream_source(messages, prefill, params))

    def constraint_support(self, stage: Stage) -> str | None:
        """How this server enforces a `Constraint` at ``stage`` (the request field, e.g. ``"sglang
        ebnf"``), or None where it cannot; also None while the kind is not known yet (``kind="auto"``
        before the first call: `prepare` or `server_kind` detects it)."""
        if self._detection is None:
            return None
        return _constraint_support(self._detection, stage)[0]

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Each text's token count by the server's tokenizer (no special tokens added), or None
        where it cannot count: a kind without a tokenize endpoint, a server that answers 404/405
        there (remembered, so it is asked once), a server that cannot be reached or a failed call.
        Never raises for server trouble."""
        try:
            kind = (await self._detect()).kind
        except _Unavailable:
            return None
        route = TOKENIZE.get(kind)
        if route is None:
            return None
        return await self._tokenizer_endpoint.count(route, texts)

    async def aclose(self) -> None:
        """Close the connections (a later call opens new ones)."""
        await self._client.aclose()
        await self._tokenizer_endpoint.aclose()

    async def __aenter__(self) -> HTTPBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------------

    async def _stream_source(
        self, messages: Sequence[Message], prefill: str, params: SamplingParams
    ) -> AsyncGenerator[str | Generation, None]:
        started = time.perf_counter()
        try:
            split = await self._in_two_calls(prefill, params)
            request = None if split else await self._request(messages, prefill, params)
        except _Unavailable as exc:
            yield _unavailable_generation(exc, params, time.perf_counter() - started)
            return
        if request is None:  # Ollama's payoff stage: two calls, handed out whole at the end
            generation = await self._payoff_in_two_calls(messages, params, started)
            if generation.text:
                yield generation.text
            yield generation
            return
        text_filter = _TextFilter(prefill, params.stop)
        result: ChatResult | None = None
        async with self._client.stream(request.path, request.payload) as deltas:
            async for delta in deltas:
                out = text_filter.feed(delta)
                if out:
                    yield out
                if text_filter.stopped:
                    break  # the server let a stop string through: stop reading instead of paying for the rest
            if deltas.done:
                result = deltas.result
        if result is None or result.ok:
            tail = text_filter.finish()
            if tail:
                yield tail
        if result is None:  # closed early at a stop string the server did not apply
            result = ChatResult("ok", text=text_filter.text, finish_reason="stop", attempts=1)
        yield self._generation(result, request, text_filter, time.perf_counter() - started)

    def _generation(self, result: ChatResult, request: _Request, text_filter: _TextFilter, latency: float) -> Generation:
        extra: dict[str, object] = {
            "server_kind": request.kind,
            "endpoint": request.path,
            "attempts": result.attempts,
            "waited": result.waited,
            "http_status": result.http_status,
        }
        if request.continuation is not None:
            extra["continuation"] = request.continuation
        if request.template is not None:
            extra["chat_template"] = request.template
        if text_filter.echoed:
            extra["echo_stripped"] = True
        if request.constraint is not None:
            extra["constraint"] = request.constraint
        if not result.ok:
            return Generation(
                "", "error", status=result.status, reason=result.reason,
                tokens_in=result.tokens_in, tokens_out=result.tokens_out, latency=latency, extra=extra,
            )
        if text_filter.stopped:
            finish, stop = "stop", text_filter.matched
        elif result.finish_reason == "length":
            finish, stop = "length", None
        else:
            finish, stop = "stop", result.stop if result.stop in text_filter.stops else None
        return Generation(
            text_filter.text, finish, stop,
            tokens_in=result.tokens_in, tokens_out=result.tokens_out, latency=latency, extra=extra,
        )

    async def _send(self, request: _Request, prefill: str, stops: tuple[str, ...]) -> tuple[ChatResult, _TextFilter]:
        """One call, not streamed; its text as new text only (`_TextFilter`)."""
        result = await self._client.send(request.path, request.payload)
        text_filter = _TextFilter(prefill, stops)
        if result.ok:
            text_filter.feed(result.text or "")
            text_filter.finish()
        return result, text_filter

    async def _in_two_calls(self, prefill: str, params: SamplingParams) -> bool:
        """Whether this call is Ollama's payoff stage, held in two calls (`OLLAMA_PAYOFF`)."""
        constraint = params.constraint
        if constraint is None or constraint.stage != "payoff":
            return False
        return _constraint_support(await self._detect(), "payoff", prefill)[0] == OLLAMA_PAYOFF

    async def _payoff_in_two_calls(self, messages: Sequence[Message], params: SamplingParams, started: float) -> Generation:
        """Ollama's payoff stage: the thinking free, then the payoff's JSON under its schema (the
        module docstring says how, and why the stop strings are applied here)."""
        constraint = params.constraint
        assert constraint is not None
        budget, stops = params.max_tokens, params.stop
        record: dict[str, object] = {**constraint_record(constraint, OLLAMA_PAYOFF), "thinking": _FREE_THINKING}
        calls: list[tuple[ChatResult, _TextFilter]] = []

        def done(text: str, finish: str = "stop", stop: str | None = None, failed: str = "") -> Generation:
            last = calls[-1][0]
            extra: dict[str, object] = {
                "server_kind": "ollama", "endpoint": "/chat/completions", "continuation": CONTINUATION["ollama"],
                "calls": len(calls), "attempts": sum(r.attempts for r, _ in calls), "waited": sum(r.waited for r, _ in calls),
                "http_status": last.http_status, "constraint": record,
            }
            if any(f.echoed for _, f in calls):
                extra["echo_stripped"] = True
            # A failed call that reports no usage returned nothing: it counts 0, not unknown.
            tokens_in = _total(r.tokens_in if r.ok else r.tokens_in or 0 for r, _ in calls)
            tokens_out = _total(r.tokens_out if r.ok else r.tokens_out or 0 for r, _ in calls)
            latency = time.perf_counter() - started
            if failed:
                return Generation("", "error", status=last.status, reason=failed, tokens_in=tokens_in,
                                  tokens_out=tokens_out, latency=latency, extra=extra)
            return Generation(text, finish, stop, tokens_in=tokens_in, tokens_out=tokens_out, latency=latency, extra=extra)

        thinking_budget = _thinking_budget(budget, constraint.grammar)
        first = replace(params, max_tokens=thinking_budget, stop=(_THINKING_CLOSE,), constraint=None)
        calls.append(await self._send(await self._request(messages, _THINKING_OPEN, first), _THINKING_OPEN,
                                      (_THINKING_CLOSE, *stops)))
        result, text_filter = calls[-1]
        if not result.ok:
            record["payoff"] = "not reached: the thinking call failed"
            return done("", failed=f"the first of Ollama's two payoff-stage calls (the thinking) failed: {result.reason}")
        thinking = text_filter.text
        if text_filter.stopped and text_filter.matched != _THINKING_CLOSE:  # the caller's stop, inside the thinking
            record["payoff"] = f"not reached: the thinking ended at the stop string {text_filter.matched!r}"
            return done(_THINKING_OPEN + thinking, "stop", text_filter.matched)
        if result.finish_reason == "length" and not text_filter.stopped:
            thinking = thinking[: len(thinking) - _partial_suffix(thinking, _THINKING_CLOSE)]
            record["thinking"] = f"{_FREE_THINKING}, cut at {thinking_budget} tokens and closed by the backend"
        left = budget - (result.tokens_out if result.tokens_out is not None else thinking_budget)
        if left < 1:
            record["payoff"] = f"not reached: the thinking used the whole budget of {budget} tokens"
            return done(_THINKING_OPEN + thinking, "length")
        head = _THINKING_OPEN + thinking + _THINKING_CLOSE + _PAYOFF_OPEN
        second = replace(params, max_tokens=left, stop=(), constraint=None)
        request = await self._request(messages, head, second)
        request = replace(request, payload={**request.payload, **_constraint_fields(OLLAMA_PAYOFF, constraint)})
        calls.append(await self._send(request, head, stops))
        result, text_filter = calls[-1]
        if not result.ok:
            record["payoff"] = "failed: the payoff call failed"
            return done("", failed=f"the second of Ollama's two payoff-stage calls (the payoff's JSON under its "
                                   f"schema, after a thinking of {len(thinking)} characters) failed: {result.reason}")
        held = _HELD_PAYOFF
        text = head + text_filter.text
        if text_filter.stopped:  # the caller's stop string inside the JSON
            record["payoff"] = f"{held}, cut at the stop string {text_filter.matched!r}"
            return done(text, "stop", text_filter.matched)
        if result.finish_reason == "length":
            record["payoff"] = f"{held}, cut at max_tokens ({left} tokens were left after the thinking)"
            return done(text, "length")
        record["payoff"] = held
        if _PAYOFF_CLOSE in stops:
            return done(text, "stop", _PAYOFF_CLOSE)
        return done(text + _PAYOFF_CLOSE)

    async def _request(self, messages: Sequence[Message], prefill: str, params: SamplingParams) -> _Request:
        """The request body for this server kind (detecting the kind first when needed)."""
        detection = await self._detect()
        kind = detection.kind
        constraint, record = self._constrain(detection, params.constraint, prefill)
        conversation: list[dict[str, Any]] = [dict(m) for m in messages]
        sampling: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature, "top_p": params.top_p}
        if params.seed is not None:
            sampling["seed"] = params.seed
        if params.stop:
            sampling["stop"] = list(params.stop)
        sampling.update(constraint)
        if not prefill:
            return _Request("/chat/completions", {"model": self.model, "messages": conversation, **sampling}, kind, None,
                            constraint=record)
        continuation = CONTINUATION[kind]
        if continuation == "client_template":
            template = await self._chat_template()
            try:
                prompt = template.render(conversation, prefill)
            except Exception as exc:  # the template's own checks (jinja2 raise_exception, ValueError) refuse it
                refused = f"the chat template of {template.source} cannot render this conversation: {type(exc).__name__}: {exc}"
                raise _Unavailable(refused) from exc
            payload = {"model": self.model, "prompt": prompt, **sampling}
            return _Request("/completions", payload, kind, continuation, template.source, record)
        conversation.append({"role": "assistant", "content": prefill})
        flags: dict[str, Any] = {}
        if continuation == "continue_final_message":
            flags = {"continue_final_message": True, "add_generation_prompt": False}
        elif continuation == "emulated":
            conversation.append({"role": "user", "content": EMULATED_CONTINUATION_PROMPT})
        return _Request("/chat/completions", {"model": self.model, "messages": conversation, **sampling, **flags}, kind,
                        continuation, constraint=record)

    def _constrain(
        self, detection: Detection, constraint: Constraint | None, prefill: str
    ) -> tuple[dict[str, Any], Mapping[str, object] | None]:
        """The request fields for ``constraint`` on this server and its record; raises `_Unavailable`
        (nothing is sent) when it is required and this server cannot enforce it."""
        if constraint is None:
            return {}, None
        how, reason = _constraint_support(detection, constraint.stage, prefill)
        if how is None:
            if constraint.required:
                refused = f"the constraint is required but this {detection.kind} server cannot enforce it: {reason}; no request was sent"
                raise _Unavailable(refused, constraint_record(constraint, None, refused))
            self._log_once(f"{detection.kind} {constraint.stage}", f"constrained decoding is off for the {constraint.stage} stage: {reason}")
            return {}, constraint_record(constraint, None, f"sent unconstrained: {reason}")
        return _constraint_fields(how, constraint), constraint_record(constraint, how)

    def _log_once(self, key: str, message: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            _log.warning("%s: %s", self.config.base_url, message)

    def _lock(self, name: str) -> asyncio.Lock:
        """A lock of the running loop (an asyncio.Lock cannot be shared between loops)."""
        loop = asyncio.get_running_loop()
        if self._locks_loop is not loop:
            self._locks, self._locks_loop = {}, loop
        return self._locks.setdefault(name, asyncio.Lock())

    async def _detect(self) -> Detection:
        if self._detection is not None:
            return self._detection
        async with self._lock("detect"):
            if self._detection is None:
                self._detection = await self._probe()
        return self._detection

    async def _probe(self) -> Detection:
        """Ask the server what it is (`_identify`), with vLLM's version, on which its request fields depend."""
        detection, probes = await self._identify()
        if detection.kind == "vllm":
            answer = probes["vllm"].data if probes["vllm"].ok else None
            version = answer.get("version") if isinstance(answer, dict) else None
            if isinstance(version, str):
                detection = replace(detection, version=version)
        return detection

    async def _identify(self) -> tuple[Detection, dict[str, Any]]:
        """The kind from the server's own endpoints first, then who owns its models; and every probe's answer."""
        root = _root_url(self.config.base_url)
        urls = {
            "models": "/models",
            "props": f"{root}/props",
            "sglang": f"{root}/get_model_info",
            "ollama": f"{root}/api/version",
            "vllm": f"{root}/version",
        }
        answers = await asyncio.gather(*(self._client.probe(url, timeout=self.probe_timeout) for url in urls.values()))
        probes = dict(zip(urls, answers, strict=True))
        if all(probe.status is None for probe in answers):
            raise _Unavailable(
                f"cannot tell what kind of server {self.config.base_url} is: no answer ({probes['models'].error}); "
                f"is it running? (pass kind=one of {', '.join(SERVER_KINDS)} to skip detection)"
            )
        owner = _owned_by(probes["models"].data) if probes["models"].ok else None
        if owner is not None and owner in _OWNERS:
            return Detection(_OWNERS[owner], f"GET {self.config.base_url}/models lists owned_by {owner!r}"), probes
        if probes["props"].ok and _has(probes["props"].data, "default_generation_settings", "total_slots"):
            return Detection("llama.cpp", f"GET {root}/props answers like llama.cpp's llama-server"), probes
        if probes["sglang"].ok and _has(probes["sglang"].data, "model_path"):
            return Detection("sglang", f"GET {root}/get_model_info answers like SGLang"), probes
        if probes["ollama"].ok and _has(probes["ollama"].data, "version"):
            return Detection("ollama", f"GET {root}/api/version answers like Ollama"), probes
        if probes["vllm"].ok and _has(probes["vllm"].data, "version"):
            return Detection("vllm", f"GET {root}/version answers like vLLM"), probes
        seen = f"owned_by {owner!r}" if owner else "no owned_by"
        return Detection("openai", f"no probe matched a known server kind ({seen}); treated as a plain OpenAI-compatible server"), probes

    async def _chat_template(self) -> ChatTemplate:
        if isinstance(self._template, ChatTemplate):
            return self._template
        async with self._lock("template"):
            if self._template is None:
                self._template = await self._load_template()
        if isinstance(self._template, str):
            raise _Unavailable(self._template)
        return self._template

    async def _load_template(self) -> ChatTemplate | str:
        """The chat template, or why there is none (kept, so a bad path is not reloaded every call)."""
        source = self._tokenizer
        if isinstance(source, ChatTemplate):
            return source
        served = Path(self.model)
        if source is None and (served.is_dir() or (served.suffix == ".gguf" and served.is_file())):
            source = self.model
        if source is None:
            return (
                "llama-cpp-python's /v1/chat/completions does not continue a partial assistant message (it closes the "
                "turn and starts a new one), so a prefill goes to /v1/completions with the chat template rendered here, "
                "which needs the model's tokenizer: pass tokenizer=<the model's local Hugging Face folder or the .gguf "
                "file the server runs> to HTTPBackend"
            )
        try:
            return await asyncio.to_thread(ChatTemplate.load, source)
        except (OSError, ValueError, RuntimeError) as exc:
            return f"cannot load the chat template for llama-cpp-python from {source}: {type(exc).__name__}: {exc}"
