"""One async client for OpenAI-compatible chat servers: limits, timeouts and classified retries.

Judges and the HTTP model backend use it, so everything that keeps a batch alive against a busy or
flaky server lives here and nowhere else:

- a concurrency limit (an `asyncio.Semaphore`) shared by every client of the same
  ``(base_url, model)`` in one event loop, and an optional requests-per-minute limiter;
- a per-attempt timeout and a total budget per call;
- retries decided by a classifier: 408, 409, 425, 429, 5xx, timeouts, dropped connections and
  unreadable bodies are retried with exponential backoff and full jitter, or after the server's
  ``retry-after-ms`` / ``Retry-After`` (capped); other 4xx are final;
- a refused connection (nothing listening) is retried only ``connect_retries`` times, and once a
  call has given up on one, the ``(base_url, model)`` is marked down: later refusals are final at
  once, until an attempt gets through (see `ClientConfig`);
- an injectable `Clock` (time and sleep) behind the RPM limiter, the total timeout and every wait,
  so tests can check them exactly;
- context-length overflow and content filtering are outcomes (`ChatResult.status`), not
  exceptions, so one long or filtered row never kills a batch;
- streaming (`ChatClient.stream`, server-sent events) under the same limits: an attempt that fails
  before its first text is retried like any other, one that breaks after it is a failure (the text
  already handed out cannot be taken back);
- ``/chat/completions`` and ``/completions`` (a raw prompt, for servers whose chat endpoint cannot
  continue an assistant turn), and cheap one-shot GET probes (`ChatClient.probe`) for detecting
  what kind of server answers.

Why httpx and not ``openai.AsyncOpenAI``: the retry decision needs the status, the headers and the
raw body of every answer, successful or not. The openai client hands back a plain ``str`` for a
non-JSON body, builds unvalidated models from malformed JSON, keeps its own retry and timeout
layers (to be switched off) and exposes headers only through exceptions or raw-response wrappers.
The wire format we need (``POST /chat/completions`` and ``/completions``, with or without
``stream``, ``GET /models``) is small and stable, and
httpx lets us shape the connection pools (see `ChatClient` on why one pool per connection). The
fake server in `gtalign.testing` is tested against the openai client too, so both keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import json
import math
import os
import random
import ssl
import time
import warnings
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Generic, Literal, Protocol, TypeVar

import httpx

from gtalign._loop_connections import track

__all__ = [
    "ChatClient",
    "ChatResult",
    "ChatStatus",
    "ClientConfig",
    "Clock",
    "Endpoint",
    "Probe",
    "Sleep",
    "TextStream",
    "merge_client_config",
    "parse_retry_after",
]

ChatStatus = Literal["ok", "context_overflow", "content_filter", "failed"]
Endpoint = Literal["/chat/completions", "/completions"]
Sleep = Callable[[float], Awaitable[None]]
R = TypeVar("R")


class Clock(Protocol):
    """The client's time: ``monotonic()`` seconds and ``await sleep(seconds)``.

    It drives the RPM limiter, the total timeout, ``latency`` and every backoff or Retry-After
    wait, so a test can run them on a fake clock and assert exact times. Per-attempt and connect
    timeouts are not on it: they bound real I/O, so they stay on the event loop's clock.
    """

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class _LoopClock:
    """The real clock: the running loop's time (the one `asyncio.timeout` uses) and ``sleep``
    (`asyncio.sleep` unless a test passes its own)."""

    def __init__(self, sleep: Sleep | None = None) -> None:
        self._sleep: Sleep = sleep or asyncio.sleep

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


_SNIPPET = 300
_RETRY_STATUS = frozenset({408, 409, 425, 429})
_OVERFLOW_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "longer than the model",
    "exceeds the model",
    "reduce the length",
    "max_model_len",
)
_FILTER_HINTS = ("content_filter", "content filter", "content management policy", "content_policy", "responsibleai")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where to send chat requests and how hard to try.

    base_url: the server's OpenAI-compatible root, e.g. ``http://127.0.0.1:8000/v1``.
    model: the model name sent in every request.
    api_key_env: environment variable holding the API key; when it is unset the key ``EMPTY`` is
        sent (what local vLLM/SGLang/llama.cpp servers expect). Empty string: no Authorization header.
    concurrency: requests in flight at once for this ``(base_url, model)`` in one event loop.
    rpm: requests per minute (every attempt counts), or None for no rate limit.
    attempt_timeout: seconds one HTTP attempt may take from sending to the last byte.
    total_timeout: seconds one call may take from its first attempt, retries and waits included
        (time spent queued for a concurrency slot before the first attempt is not counted).
    connect_timeout: seconds to open a connection.
    max_retries: retries after the first attempt (so ``max_retries + 1`` attempts at most).
        ``total_timeout`` and ``max_retries`` are how to bound a slow or hanging server.
    connect_retries: retries after a refused connection (nothing listening on the port), within
        ``max_retries``; their backoff restarts from ``backoff_base``, so with the defaults a
        server that is down costs a call about 1.5 s at most, not the full retry schedule. A call
        that gives up on refused connections marks its ``(base_url, model)`` down in its event
        loop: while marked, a refused attempt is final at once (every call still makes its own
        first attempt, so nothing fails without having been refused itself). Any attempt that is
        not refused clears the mark, so a server that comes back is used again at once.
    backoff_base: seconds; retry ``k`` waits a uniform random time in ``[0, base * 2**(k-1)]``
        (full jitter), capped at ``backoff_max``. ``0`` makes every backoff wait zero (tests).
    backoff_max: cap of one backoff wait, in seconds.
    retry_after_max: cap on a wait the server asks for with ``Retry-After``/``retry-after-ms``.
    headers: extra HTTP headers sent with every request, as ``(name, value)`` pairs.
    seed: seed of the jitter's private random generator (None: nondeterministic).
    """

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 32
    rpm: float | None = None
    attempt_timeout: float = 120.0
    total_timeout: float = 600.0
    connect_timeout: float = 10.0
    max_retries: int = 8
    connect_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    headers: tuple[tuple[str, str], ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r} (e.g. http://127.0.0.1:8000/v1)")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.model:
            raise ValueError("model is empty: pass the model name the server serves (GET {base_url}/models lists them)")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.rpm is not None and not self.rpm > 0:
            raise ValueError(f"rpm must be > 0 or None, got {self.rpm}")
        for name in ("attempt_timeout", "total_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        for name in ("max_retries", "connect_retries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("backoff_base", "backoff_max", "retry_after_max"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")

    def api_key(self) -> str | None:
        """The key to send: the variable's value, ``EMPTY`` when unset, None when disabled."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or "EMPTY"


def merge_client_config(
    client: ClientConfig | None,
    base_url: str | None,
    model: str | None,
    options: Mapping[str, Any],
    *,
    owner: str,
    exclude: Sequence[str] = (),
) -> ClientConfig:
    """``client`` (or the defaults) with ``base_url``, ``model`` and ``options`` laid over it.

    ``options`` are `ClientConfig` fields by name, so callers take them as keyword arguments without
    configuring anything twice; an unknown name is a TypeError naming ``owner`` and listing the
    valid ones (``exclude`` removes fields the owner spells differently).
    """
    valid = tuple(f.name for f in fields(ClientConfig) if f.name not in ("base_url", "model", *exclude))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"{owner} got unknown option(s) {', '.join(unknown)}; client options are the ClientConfig fields {', '.join(valid)}"
        )
    overrides: dict[str, Any] = {key: value for key, value in (("base_url", base_url), ("model", model)) if value is not None}
    overrides.update(options)
    if client is not None:
        return replace(client, **overrides)
    if base_url is None or model is None:
        raise TypeError(f"{owner} needs base_url and model, or client=ClientConfig(base_url, model, ...)")
    return ClientConfig(**overrides)


@dataclass(frozen=True, slots=True)
class ChatResult:
    """What one chat call produced, successful or not, with its cost.

    ``status`` is ``ok`` (``text`` holds the reply), ``context_overflow`` or ``content_filter``
    (the server declined: record it, do not retry), or ``failed`` (``reason`` says why, after
    retries). ``latency`` is seconds from the first attempt to the end, waits included;
    ``waited`` the part of it spent in backoff or Retry-After waits.
    """

    status: ChatStatus
    text: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    reason: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency: float = 0.0
    waited: float = 0.0
    attempts: int = 0
    http_status: int | None = None
    stop: str | None = None
    """The stop string that ended the reply, when the server says (vLLM ``stop_reason``, SGLang
    ``matched_stop``, llama.cpp ``stopping_word``); None when it does not or none matched."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One attempt, classified: ``retry`` (try again), ``final`` (stop: success or not).
    ``refused``: the connection was refused, so the server is not there at all."""

    kind: Literal["retry", "final"]
    status: ChatStatus
    reason: str = ""
    refused: bool = False
    retry_after: float | None = None
    http_status: int | None = None
    text: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    stop: str | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """The answer to one GET probe. ``status`` is None when no HTTP answer came (``error`` says why);
    ``data`` is the parsed JSON body, or None when the body is not JSON."""

    url: str
    status: int | None
    data: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """A 200 answer with a JSON body."""
        return self.status == 200 and self.data is not None


class TextStream(Generic[R]):
    """Text as it arrives, then one final result: ``async for delta in stream`` yields the text
    deltas (``str``); once the iteration ends, ``stream.result`` holds the result (a `ChatResult`
    from `ChatClient.stream`, a `Generation` from a backend).

    The result is separate from the deltas so a consumer relaying text (an SSE proxy) never has to
    tell text from bookkeeping. Leaving early: ``async with stream:`` or `aclose` releases the
    connection and the concurrency slot at once (``result`` then stays unavailable).
    """

    def __init__(self, source: AsyncGenerator[str | R, None]) -> None:
        self._source = source
        self._result: R | None = None
        self._closed = False

    def __aiter__(self) -> TextStream[R]:
        return self

    async def __anext__(self) -> str:
        if self._result is not None or self._closed:
            raise StopAsyncIteration
        try:
            item = await self._source.__anext__()
        except StopAsyncIteration:
            self._closed = True
            raise RuntimeError("the stream's source ended without a final result (a bug in its producer)") from None
        if isinstance(item, str):
            return item
        self._result = item
        await self.aclose()
        raise StopAsyncIteration

    @property
    def done(self) -> bool:
        """True once the final result is in."""
        return self._result is not None

    @property
    def result(self) -> R:
        """The final result; a RuntimeError before the stream has been read to its end."""
        if self._result is None:
            raise RuntimeError("the stream has not finished: read it to the end (or `await stream.collect()`) before .result")
        return self._result

    async def collect(self) -> R:
        """Read what is left (discarding the deltas) and return the final result."""
        async for _delta in self:
            pass
        return self.result

    async def aclose(self) -> None:
        """Stop reading: close the connection and free its concurrency slot."""
        self._closed = True
        await self._source.aclose()

    async def __aenter__(self) -> TextStream[R]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _RateLimiter:
    """Spaces request starts at least ``60/rpm`` seconds apart (no burst)."""

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self._next = 0.0

    async def acquire(self, clock: Clock) -> None:
        now = clock.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await clock.sleep(slot - now)


@dataclass
class _Limits:
    """What the clients of one ``(base_url, model)`` share in one event loop. ``down``: a call gave
    up on refused connections and no attempt has got through since (see `ClientConfig`)."""

    concurrency: int
    rpm: float | None
    semaphore: asyncio.Semaphore = field(init=False)
    limiter: _RateLimiter | None = field(init=False)
    down: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(self.concurrency)
        self.limiter = _RateLimiter(self.rpm) if self.rpm else None


# Semaphores belong to one event loop, so the shared limits are kept per loop (and dropped with it).
_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], _Limits]] = weakref.WeakKeyDictionary()


def _limits_for(config: ClientConfig) -> _Limits:
    """The limits every client of ``(base_url, model)`` shares in the running loop; the first sets them."""
    per_loop = _LIMITS.setdefault(asyncio.get_running_loop(), {})
    key = (config.base_url, config.model)
    limits = per_loop.get(key)
    if limits is None:
        limits = per_loop[key] = _Limits(config.concurrency, config.rpm)
    elif (limits.concurrency, limits.rpm) != (config.concurrency, config.rpm):
        warnings.warn(
            f"{config.base_url} model {config.model!r} is already limited to concurrency={limits.concurrency}, "
            f"rpm={limits.rpm} by another client in this event loop; keeping those (asked: "
            f"concurrency={config.concurrency}, rpm={config.rpm}). Give both clients the same limits.",
            stacklevel=4,
        )
    return limits


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date).

    None when neither header is present or readable; never negative.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        seconds = _finite(raw_ms)
        if seconds is not None:
            return max(0.0, seconds / 1000.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _finite(raw)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(raw[:64])
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _finite(text: str) -> float | None:
    try:
        value = float(text.strip()[:32])
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_refused(exc: BaseException) -> bool:
    """Whether a connect error was caused by a refused connection (``ECONNREFUSED``) to at least one
    of the host's addresses, looking through the chained causes and exception groups."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ECONNREFUSED:
            return True
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
    return False


def _snippet(text: str) -> str:
    text = " ".join(text[: _SNIPPET * 4].split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _error_details(body: bytes) -> tuple[str, str]:
    """``(message, code)`` of an error body in the OpenAI shape or the common variants."""
    try:
        data = json.loads(body)
    except ValueError:
        return _snippet(body.decode("utf-8", "replace")), ""
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("msg") or json.dumps(error)[: _SNIPPET * 4]
            code = error.get("code") or error.get("type") or ""
            return _snippet(str(message)), str(code)
        if isinstance(error, str):
            return _snippet(error), str(data.get("code") or "")
    return _snippet(json.dumps(data)[: _SNIPPET * 4]), ""


def _mentions(text: str, hints: Sequence[str]) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in hints)


def _classify_error(status: int, body: bytes, headers: Mapping[str, str], api_key_env: str) -> _Outcome:
    message, code = _error_details(body)
    where = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status in (400, 413, 422, 500) and _mentions(f"{code} {message}", _OVERFLOW_HINTS):
        reason = f"the prompt does not fit the model's context ({where}); shorten it or lower max_tokens"
        return _Outcome("final", "context_overflow", reason, http_status=status)
    if status in (400, 403, 451) and _mentions(f"{code} {message}", _FILTER_HINTS):
        return _Outcome("final", "content_filter", f"the server's content filter declined the request ({where})", http_status=status)
    if status in _RETRY_STATUS or status >= 500:
        return _Outcome("retry", "failed", where, retry_after=parse_retry_after(headers), http_status=status)
    if status in (401, 403):
        key_state = "set" if api_key_env and os.environ.get(api_key_env) else "unset, so 'EMPTY' was sent"
        advice = (
            f"set the server's API key in ${api_key_env} (currently {key_state})"
            if api_key_env
            else "pass api_key_env naming the variable that holds the key"
        )
        return _Outcome("final", "failed", f"the server refused the credentials ({where}); {advice}", http_status=status)
    if status == 404:
        advice = "check base_url (it should end in /v1) and the model name (GET <base_url>/models lists them)"
        return _Outcome("final", "failed", f"not found ({where}); {advice}", http_status=status)
    return _Outcome("final", "failed", f"the server rejected the request ({where}); not retried", http_status=status)


def _text_of(content: Any) -> str | None:
    """Message content as text: a string, or the text parts of a list of content parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict) and isinstance(part.get("text", ""), str)]
        return "".join(parts)
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _classify_success(status: int, body: bytes, headers: Mapping[str, str], api_key_env: str) -> _Outcome:
    try:
        data = json.loads(body)
    except ValueError:
        shown = _snippet(body.decode("utf-8", "replace"))
        return _Outcome("retry", "failed", f"HTTP {status} with a body that is not JSON: {shown!r}", http_status=status)
    if not isinstance(data, dict):
        shown = _snippet(json.dumps(data)[:2000])
        return _Outcome("retry", "failed", f"HTTP {status} with a JSON body that is not an object: {shown!r}", http_status=status)
    if "choices" not in data and "error" in data:
        return _classify_error(500, body, headers, api_key_env)
    choice = _first_choice(data)
    message = choice.get("message")
    if isinstance(message, dict):
        text = _text_of(message.get("content"))
        reasoning = _text_of(message.get("reasoning_content") or message.get("reasoning"))
    elif isinstance(choice.get("text"), str):  # /completions
        text, reasoning = choice["text"], None
    else:
        shown = _snippet(json.dumps(data)[:2000])
        return _Outcome("retry", "failed", f"HTTP {status} without choices[0].message or choices[0].text: {shown!r}", http_status=status)
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    tokens_in, tokens_out = _usage(data)
    filtered = finish == "content_filter"
    return _Outcome(
        "final",
        "content_filter" if filtered else "ok",
        "the server's content filter stopped the reply (finish_reason=content_filter)" if filtered else "",
        http_status=status,
        text=text if filtered else text or "",
        reasoning=reasoning,
        finish_reason=finish,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        stop=_matched_stop(data, choice),
    )


def _first_choice(data: Mapping[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}


def _usage(data: Mapping[str, Any]) -> tuple[int | None, int | None]:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return _int_or_none(usage.get("prompt_tokens")), _int_or_none(usage.get("completion_tokens"))


def _matched_stop(data: Mapping[str, Any], choice: Mapping[str, Any]) -> str | None:
    """The stop string the server says ended the reply: vLLM's ``stop_reason`` (a token id when a
    stop token ended it, ignored), SGLang's ``matched_stop``, llama.cpp's ``stopping_word`` (at the
    top level or, from ``llama-server --verbose``, under ``__verbose``)."""
    verbose = data.get("__verbose")
    candidates = (
        choice.get("stop_reason"),
        choice.get("matched_stop"),
        data.get("stopping_word"),
        verbose.get("stopping_word") if isinstance(verbose, dict) else None,
    )
    return next((value for value in candidates if isinstance(value, str) and value), None)


def _encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace")


class _StreamAttempt:
    """What one streamed attempt has read so far (server-sent events, one ``data:`` line each)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.reasoning: list[str] = []
        self.outcome: _Outcome | None = None
        self.http_status: int | None = None
        self.finish_reason: str | None = None
        self.stop: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None

    def feed(self, line: str, api_key_env: str) -> str:
        """Read one line; returns the text delta it carries (``""`` for none) and sets ``outcome`` at the end."""
        if not line.startswith("data:"):
            return ""  # blank separators, ``: ping`` comments, ``event:``/``id:`` fields
        data = line[5:].strip()
        if data == "[DONE]":
            self.outcome = self._final()
            return ""
        try:
            chunk = json.loads(data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            reason = f"an event that is not a JSON object: {_snippet(data)!r}"
            self.outcome = _Outcome("retry", "failed", reason, http_status=self.http_status)
            return ""
        if "error" in chunk and not chunk.get("choices"):
            self.outcome = _classify_error(500, data.encode(), {}, api_key_env)
            return ""
        tokens_in, tokens_out = _usage(chunk)
        self.tokens_in = tokens_in if tokens_in is not None else self.tokens_in
        self.tokens_out = tokens_out if tokens_out is not None else self.tokens_out
        choice = _first_choice(chunk)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = _text_of(delta.get("content")) or ""
            self.reasoning.append(_text_of(delta.get("reasoning_content") or delta.get("reasoning")) or "")
        else:
            raw = choice.get("text")
            text = raw if isinstance(raw, str) else ""
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self.finish_reason = finish
        self.stop = _matched_stop(chunk, choice) or self.stop
        if text:
            self.parts.append(text)
        return text

    def end_of_body(self, api_key_env: str) -> _Outcome:
        """The body ended without ``[DONE]``: complete if a finish reason came, else broken."""
        if self.finish_reason is not None:
            return self._final()
        reason = "the stream ended before the reply was complete (no finish_reason, no [DONE])"
        return _Outcome("retry", "failed", reason, http_status=self.http_status)

    def _final(self) -> _Outcome:
        filtered = self.finish_reason == "content_filter"
        return _Outcome(
            "final",
            "content_filter" if filtered else "ok",
            "the server's content filter stopped the reply (finish_reason=content_filter)" if filtered else "",
            http_status=self.http_status,
            text="".join(self.parts),
            reasoning="".join(self.reasoning) or None,
            finish_reason=self.finish_reason,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            stop=self.stop,
        )


class _Attempts:
    """The attempt schedule of one call, the same for plain and streamed requests: each slot from
    `slots` is one attempt inside the concurrency slot (after the RPM limiter) and yields the seconds
    it may take; the caller sets ``outcome``. A ``retry`` outcome is waited out (backoff or
    Retry-After, outside the slot) while retries and the total timeout allow; when the slots end,
    ``result`` holds the `ChatResult`. ``deadline`` (`Clock` time) starts with the first attempt."""

    result: ChatResult

    def __init__(self, client: ChatClient) -> None:
        self._client = client
        self.deadline = math.inf
        self.outcome: _Outcome | None = None

    async def slots(self) -> AsyncGenerator[float, None]:
        """Use under `contextlib.aclosing`, so that leaving early frees the concurrency slot at once."""
        client, cfg = self._client, self._client.config
        clock = client.clock
        limits = _limits_for(cfg)
        started: float | None = None
        attempts = refused = 0
        waited = 0.0
        while True:
            async with limits.semaphore:
                if limits.limiter is not None:
                    await limits.limiter.acquire(clock)
                now = clock.monotonic()
                if started is None:
                    started, self.deadline = now, now + cfg.total_timeout
                if self.deadline - now <= 0:
                    reason = f"total timeout of {cfg.total_timeout:g}s reached after {attempts} attempts"
                    self.result = _result(_Outcome("final", "failed", reason), now - started, waited, attempts)
                    return
                attempts += 1
                yield min(cfg.attempt_timeout, self.deadline - now)
            outcome, self.outcome = self.outcome, None
            assert outcome is not None, "an attempt ended without setting its outcome"
            if outcome.refused:
                refused += 1
            else:
                limits.down = False
            if outcome.kind == "retry":
                wait = client._wait(refused if outcome.refused else attempts, outcome.retry_after)
                if outcome.refused and limits.down:
                    stop = "not retried: another call to this server already gave up on refused connections"
                elif outcome.refused and refused > cfg.connect_retries:
                    stop = f"gave up after {attempts} attempts ({refused} refused, connect_retries={cfg.connect_retries})"
                elif attempts > cfg.max_retries:
                    stop = f"gave up after {attempts} attempts (max_retries={cfg.max_retries})"
                elif clock.monotonic() + wait > self.deadline:
                    stop = f"total timeout of {cfg.total_timeout:g}s would pass during a {wait:.2f}s retry wait after {attempts} attempts"
                else:
                    await clock.sleep(wait)
                    waited += wait
                    continue
                limits.down = limits.down or outcome.refused
                outcome = _Outcome("final", "failed", f"{stop}; last error: {outcome.reason}", http_status=outcome.http_status)
            self.result = _result(outcome, clock.monotonic() - started, waited, attempts)
            return


def _result(outcome: _Outcome, latency: float, waited: float, attempts: int) -> ChatResult:
    return ChatResult(
        status=outcome.status,
        text=outcome.text,
        reasoning=outcome.reasoning,
        finish_reason=outcome.finish_reason,
        reason=outcome.reason,
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        latency=latency,
        waited=waited,
        attempts=attempts,
        http_status=outcome.http_status,
        stop=outcome.stop,
    )


class ChatClient:
    """Async chat completions against one OpenAI-compatible server and model.

    Use as ``async with ChatClient(config) as client: await client.chat(messages)``, or call
    `chat` directly and `aclose` at the end. Entering is reference-counted, so concurrent batches
    can share one client; the connections are closed when the last one leaves. One event loop at
    a time: a call from a new loop (e.g. a later `asyncio.run`) opens new connections.

    Connections are held in *lanes*, one single-connection httpx pool per request in flight,
    instead of one pool of ``concurrency`` connections: httpcore scans every connection of a pool
    on each request event, so its CPU cost per request grows with the pool (at concurrency 128,
    2048 requests of 100 ms took about 33 s through one pool and 2.6 s through lanes; see
    ``benchmarks/bench_judge.py --pool-comparison``). A lane costs the same at any concurrency.
    The lanes share one TLS context, so opening them is cheap.

    ``sleep`` replaces `asyncio.sleep` for every wait (tests pass a recorder that returns at once);
    ``clock`` replaces the time and the sleep together (a fake `Clock` makes the RPM spacing, the
    total timeout and ``latency`` exact in tests; pass one or the other). Clients sharing a
    ``(base_url, model)`` in one loop share its RPM limiter, so they should share one clock too.
    ``transport`` replaces the HTTP transport of every lane (e.g. `httpx.MockTransport`).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if sleep is not None and clock is not None:
            raise TypeError("ChatClient takes sleep or clock, not both: a Clock has its own sleep")
        self.config = config
        self.clock: Clock = clock or _LoopClock(sleep)
        self._transport = transport
        self._rng = random.Random(config.seed)
        self._tls: ssl.SSLContext | None = None
        self._lanes: list[httpx.AsyncClient] = []
        self._free: list[httpx.AsyncClient] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._users = 0

    async def __aenter__(self) -> ChatClient:
        self._users += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._users -= 1
        if self._users <= 0:
            self._users = 0
            await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (a later call opens new ones)."""
        lanes, self._lanes, self._free, self._loop = self._lanes, [], [], None
        for lane in lanes:
            await lane.aclose()

    async def release_connections(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections opened in ``loop`` (the running one, about to end)."""
        if self._loop is loop:
            await self.aclose()

    def _new_lane(self) -> httpx.AsyncClient:
        cfg = self.config
        headers = {"Content-Type": "application/json", **dict(cfg.headers)}
        key = cfg.api_key()
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        transport = self._transport or httpx.AsyncHTTPTransport(verify=self._tls, limits=one_connection)
        return httpx.AsyncClient(
            base_url=cfg.base_url,
            headers=headers,
            timeout=httpx.Timeout(cfg.attempt_timeout, connect=cfg.connect_timeout),
            verify=self._tls,
            transport=transport,
        )

    @contextlib.contextmanager
    def _lane(self) -> Iterator[httpx.AsyncClient]:
        """A connection of this loop for one request: the most recently used free one, or a new one."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._lanes, self._free, self._loop = [], [], loop
        if self._free:
            lane = self._free.pop()
        else:
            lane = self._new_lane()
            self._lanes.append(lane)
            track(self)
        try:
            yield lane
        finally:
            if self._loop is loop:
                self._free.append(lane)

    async def models(self) -> list[str]:
        """Model ids the server lists (``GET /models``); raises `RuntimeError` saying what to check."""
        try:
            with self._lane() as http:
                response = await http.get("/models")
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot reach {self.config.base_url}/models ({type(exc).__name__}: {exc}); is the server running?") from exc
        if response.status_code != 200:
            raise RuntimeError(f"{self.config.base_url}/models answered HTTP {response.status_code}: {_snippet(response.text)}")
        data = response.json()
        return [str(item.get("id")) for item in data.get("data", []) if isinstance(item, dict)]

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        """One chat completion, retried as the classifier decides; never raises for server trouble.

        ``extra_body`` is merged into the request JSON last (e.g. ``chat_template_kwargs``, ``n``,
        ``logprobs``), so it can set anything the server accepts.
        """
        payload: dict[str, Any] = {"model": self.config.model, "messages": [dict(m) for m in messages]}
        for name, value in (("temperature", temperature), ("max_tokens", max_tokens), ("top_p", top_p), ("seed", seed)):
            if value is not None:
                payload[name] = value
        if stop:
            payload["stop"] = list(stop)
        payload.update(extra_body or {})
        return await self.send("/chat/completions", payload)

    async def send(self, path: Endpoint, payload: Mapping[str, Any]) -> ChatResult:
        """POST ``payload`` (the full request JSON, ``model`` included) to ``path``, retried as the
        classifier decides; never raises for server trouble. ``/completions`` answers are read from
        ``choices[0].text``."""
        return await self._call(_encode(payload), path)

    def stream(self, path: Endpoint, payload: Mapping[str, Any]) -> TextStream[ChatResult]:
        """The same request streamed (``stream: true`` is added): text deltas, then a `ChatResult`
        whose ``text`` is the whole reply.

        Usage is asked for with ``stream_options.include_usage`` (servers that ignore it report no
        token counts). The concurrency slot is held until the stream ends or is closed. The
        attempt timeout bounds each wait for the next piece (an idle timeout), the total timeout
        the whole stream. An answer that is plain JSON instead of events is taken as one delta.
        """
        body = {**payload, "stream": True}
        body.setdefault("stream_options", {"include_usage": True})
        return TextStream(self._stream_source(_encode(body), path))

    async def probe(self, url: str, *, timeout: float = 5.0) -> Probe:
        """One GET, not retried and outside the concurrency limit: for cheap detection probes.

        ``url`` is absolute or relative to ``base_url``; it never raises for server trouble.
        """
        try:
            with self._lane() as http:
                async with asyncio.timeout(timeout):
                    response = await http.get(url, headers={"Accept": "application/json"})
        except TimeoutError:
            return Probe(url, None, error=f"no answer within {timeout:g}s")
        except httpx.HTTPError as exc:
            return Probe(url, None, error=f"{type(exc).__name__}: {_snippet(str(exc)) or 'connection failed'}")
        try:
            data = json.loads(response.content) if response.content else None
        except ValueError:
            data = None
        return Probe(url, response.status_code, data)

    async def _call(self, body: bytes, path: Endpoint = "/chat/completions") -> ChatResult:
        attempts = _Attempts(self)
        async with contextlib.aclosing(attempts.slots()) as slots:
            async for timeout in slots:
                attempts.outcome = await self._attempt(body, timeout, path)
        return attempts.result

    def _wait(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: the server's wish (capped), else full-jitter backoff."""
        cfg = self.config
        if retry_after is not None:
            return min(retry_after, cfg.retry_after_max)
        ceiling = min(cfg.backoff_max, cfg.backoff_base * 2 ** (attempts - 1))
        return self._rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0

    async def _attempt(self, body: bytes, timeout: float, path: Endpoint) -> _Outcome:
        try:
            with self._lane() as http:
                async with asyncio.timeout(timeout):
                    response = await http.post(path, content=body)
        except (TimeoutError, httpx.HTTPError) as exc:
            return self._transport_failure(exc, timeout)
        return self._classify(response.status_code, response.content, response.headers)

    def _classify(self, status: int, body: bytes, headers: Mapping[str, str]) -> _Outcome:
        key_env = self.config.api_key_env
        if 200 <= status < 300:
            return _classify_success(status, body, headers, key_env)
        return _classify_error(status, body, headers, key_env)

    def _transport_failure(self, exc: BaseException, timeout: float) -> _Outcome:
        """An attempt that got no complete HTTP answer: retried, unless the URL itself is wrong."""
        if isinstance(exc, httpx.ConnectError) and _is_refused(exc):
            reason = f"connection refused by {self.config.base_url}: nothing is listening there; is the server running?"
            return _Outcome("retry", "failed", reason, refused=True)
        if isinstance(exc, TimeoutError):
            return _Outcome("retry", "failed", f"no complete answer within {timeout:.1f}s (attempt timeout)")
        if isinstance(exc, httpx.TimeoutException):
            return _Outcome("retry", "failed", f"timed out ({type(exc).__name__})")
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)):
            return _Outcome("final", "failed", f"cannot send to {self.config.base_url} ({type(exc).__name__}: {exc}); check base_url")
        if isinstance(exc, httpx.TransportError):
            return _Outcome("retry", "failed", f"connection error ({type(exc).__name__}: {_snippet(str(exc)) or 'connection closed'})")
        return _Outcome("retry", "failed", f"HTTP error ({type(exc).__name__}: {_snippet(str(exc))})")

    async def _stream_source(self, body: bytes, path: Endpoint) -> AsyncGenerator[str | ChatResult, None]:
        """`_call` for streams: the same limits, deadline and retries; text is handed out as it comes."""
        attempts = _Attempts(self)
        async with contextlib.aclosing(attempts.slots()) as slots:
            async for _timeout in slots:
                attempt = _StreamAttempt()
                async with contextlib.aclosing(self._stream_attempt(body, path, attempts.deadline, attempt)) as deltas:
                    async for delta in deltas:
                        yield delta
                outcome = attempt.outcome or _Outcome("retry", "failed", "the stream ended without an answer")
                if outcome.kind == "retry" and attempt.parts:
                    shown = sum(map(len, attempt.parts))
                    reason = f"the stream broke after {shown} characters had been handed out, so it is not retried: {outcome.reason}"
                    outcome = _Outcome("final", "failed", reason, http_status=outcome.http_status)
                attempts.outcome = outcome
        yield attempts.result

    async def _stream_attempt(self, body: bytes, path: Endpoint, deadline: float, attempt: _StreamAttempt) -> AsyncGenerator[str, None]:
        """One streamed attempt: yields text deltas and leaves its classified end in ``attempt.outcome``."""
        clock = self.clock
        cfg = self.config
        timeout = max(0.0, min(cfg.attempt_timeout, deadline - clock.monotonic()))
        try:
            with self._lane() as http:
                request = http.build_request("POST", path, content=body, headers={"Accept": "text/event-stream"})
                async with asyncio.timeout(timeout):
                    response = await http.send(request, stream=True)
                try:
                    attempt.http_status = response.status_code
                    is_events = "text/event-stream" in response.headers.get("content-type", "")
                    if not (200 <= response.status_code < 300 and is_events):
                        timeout = max(0.0, min(cfg.attempt_timeout, deadline - clock.monotonic()))
                        async with asyncio.timeout(timeout):
                            content = await response.aread()
                        outcome = self._classify(response.status_code, content, response.headers)
                        if outcome.status == "ok" and outcome.text:
                            attempt.parts.append(outcome.text)
                            yield outcome.text
                        attempt.outcome = outcome
                        return
                    lines = response.aiter_lines()
                    while attempt.outcome is None:
                        timeout = max(0.0, min(cfg.attempt_timeout, deadline - clock.monotonic()))
                        async with asyncio.timeout(timeout):
                            line = await anext(lines, None)
                        if line is None:
                            attempt.outcome = attempt.end_of_body(cfg.api_key_env)
                            break
                        delta = attempt.feed(line, cfg.api_key_env)
                        if delta:
                            yield delta
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.HTTPError) as exc:
            attempt.outcome = self._transport_failure(exc, timeout)
