"""One async client for OpenAI-compatible chat servers: limits, timeouts and classified retries.

Judges use it now and model backends will later, so everything that keeps a batch alive against a
busy or flaky server lives here and nowhere else:

- a concurrency limit (an `asyncio.Semaphore`) shared by every client of the same
  ``(base_url, model)`` in one event loop, and an optional requests-per-minute limiter;
- a per-attempt timeout and a total budget per call;
- retries decided by a classifier: 408, 409, 425, 429, 5xx, timeouts, refused or dropped
  connections and unreadable bodies are retried with exponential backoff and full jitter, or after
  the server's ``retry-after-ms`` / ``Retry-After`` (capped); other 4xx are final;
- context-length overflow and content filtering are outcomes (`ChatResult.status`), not
  exceptions, so one long or filtered row never kills a batch.

Why httpx and not ``openai.AsyncOpenAI``: the retry decision needs the status, the headers and the
raw body of every answer, successful or not. The openai client hands back a plain ``str`` for a
non-JSON body, builds unvalidated models from malformed JSON, keeps its own retry and timeout
layers (to be switched off) and exposes headers only through exceptions or raw-response wrappers.
The wire format we need (``POST /chat/completions``, ``GET /models``) is small and stable, and
httpx lets us shape the connection pools (see `ChatClient` on why one pool per connection). The
fake server in `gtalign.testing` is tested against the openai client too, so both keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import math
import os
import random
import ssl
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

__all__ = [
    "ChatClient",
    "ChatResult",
    "ChatStatus",
    "ClientConfig",
    "Sleep",
    "parse_retry_after",
]

ChatStatus = Literal["ok", "context_overflow", "content_filter", "failed"]
Sleep = Callable[[float], Awaitable[None]]

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
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("backoff_base", "backoff_max", "retry_after_max"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")

    def api_key(self) -> str | None:
        """The key to send: the variable's value, ``EMPTY`` when unset, None when disabled."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or "EMPTY"


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One attempt, classified: ``retry`` (try again), ``final`` (stop: success or not)."""

    kind: Literal["retry", "final"]
    status: ChatStatus
    reason: str = ""
    retry_after: float | None = None
    http_status: int | None = None
    text: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None


class _RateLimiter:
    """Spaces request starts at least ``60/rpm`` seconds apart (no burst)."""

    def __init__(self, rpm: float) -> None:
        self.interval = 60.0 / rpm
        self._next = 0.0

    async def acquire(self, sleep: Sleep) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await sleep(slot - now)


@dataclass
class _Limits:
    concurrency: int
    rpm: float | None
    semaphore: asyncio.Semaphore = field(init=False)
    limiter: _RateLimiter | None = field(init=False)

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
            stacklevel=3,
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
    choices = data.get("choices")
    choice: dict[str, Any] = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    if not isinstance(message, dict):
        shown = _snippet(json.dumps(data)[:2000])
        return _Outcome("retry", "failed", f"HTTP {status} without choices[0].message: {shown!r}", http_status=status)
    text = _text_of(message.get("content"))
    reasoning = _text_of(message.get("reasoning_content") or message.get("reasoning"))
    finish = choice.get("finish_reason")
    finish = finish if isinstance(finish, str) else None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens_in = _int_or_none(usage.get("prompt_tokens"))
    tokens_out = _int_or_none(usage.get("completion_tokens"))
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
    ``transport`` replaces the HTTP transport of every lane (e.g. `httpx.MockTransport`).
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        sleep: Sleep | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._sleep: Sleep = sleep or asyncio.sleep
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
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8", "replace")
        return await self._call(body)

    async def _call(self, body: bytes) -> ChatResult:
        cfg = self.config
        limits = _limits_for(cfg)
        loop = asyncio.get_running_loop()
        started: float | None = None
        deadline = math.inf
        attempts = 0
        waited = 0.0
        while True:
            async with limits.semaphore:
                if limits.limiter is not None:
                    await limits.limiter.acquire(self._sleep)
                now = loop.time()
                if started is None:
                    started, deadline = now, now + cfg.total_timeout
                if deadline - now <= 0:
                    reason = f"total timeout of {cfg.total_timeout:g}s reached after {attempts} attempts"
                    return self._result(_Outcome("final", "failed", reason), now - started, waited, attempts)
                attempts += 1
                outcome = await self._attempt(body, min(cfg.attempt_timeout, deadline - now))
            if outcome.kind == "final":
                return self._result(outcome, loop.time() - started, waited, attempts)
            wait = self._wait(attempts, outcome.retry_after)
            if attempts > cfg.max_retries:
                stop = f"gave up after {attempts} attempts (max_retries={cfg.max_retries})"
            elif loop.time() + wait > deadline:
                stop = f"total timeout of {cfg.total_timeout:g}s would pass during a {wait:.2f}s retry wait after {attempts} attempts"
            else:
                await self._sleep(wait)
                waited += wait
                continue
            failure = _Outcome("final", "failed", f"{stop}; last error: {outcome.reason}", http_status=outcome.http_status)
            return self._result(failure, loop.time() - started, waited, attempts)

    def _wait(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: the server's wish (capped), else full-jitter backoff."""
        cfg = self.config
        if retry_after is not None:
            return min(retry_after, cfg.retry_after_max)
        ceiling = min(cfg.backoff_max, cfg.backoff_base * 2 ** (attempts - 1))
        return self._rng.uniform(0.0, ceiling) if ceiling > 0 else 0.0

    async def _attempt(self, body: bytes, timeout: float) -> _Outcome:
        try:
            with self._lane() as http:
                async with asyncio.timeout(timeout):
                    response = await http.post("/chat/completions", content=body)
        except TimeoutError:
            return _Outcome("retry", "failed", f"no complete answer within {timeout:.1f}s (attempt timeout)")
        except httpx.TimeoutException as exc:
            return _Outcome("retry", "failed", f"timed out ({type(exc).__name__})")
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
            return _Outcome("final", "failed", f"cannot send to {self.config.base_url} ({type(exc).__name__}: {exc}); check base_url")
        except httpx.TransportError as exc:
            return _Outcome("retry", "failed", f"connection error ({type(exc).__name__}: {_snippet(str(exc)) or 'connection closed'})")
        except httpx.HTTPError as exc:
            return _Outcome("retry", "failed", f"HTTP error ({type(exc).__name__}: {_snippet(str(exc))})")
        key_env = self.config.api_key_env
        if 200 <= response.status_code < 300:
            return _classify_success(response.status_code, response.content, response.headers, key_env)
        return _classify_error(response.status_code, response.content, response.headers, key_env)

    @staticmethod
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
        )
