"""The OpenAI-compatible steering proxy: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``.

Ordinary clients send ordinary chat requests. For each one the proxy runs the four-block protocol
and steering (`gtalign.steering`) on its backend and answers with the ``<response>`` text as the
assistant message, the game record in the extension field ``gtalign``, and usage summed over the
engine's stages (each stage re-reads the prompt). What happens to a request, in order:

1. ``Authorization: Bearer KEY`` (when keys are configured): missing or unknown -> 401. The same
   holds for ``GET /v1/models``; ``GET /health`` is open (for load balancers and probes).
2. Body larger than ``max_request_bytes`` -> 413.
3. Not JSON, or not a valid request -> 400 naming the parameter; an unsupported feature
   (``n > 1``, tools, structured output, logprobs) -> 400; a model other than ``model_name`` -> 404.
4. ``max_tokens``/``max_completion_tokens`` above the server's ``max_tokens`` -> 400. It is the
   engine's budget for the whole four-block answer (thinking, payoff, analysis and response; the
   continuation gets what the first stage left, at least `MIN_CONTINUATION_TOKENS`), not for the
   response alone, since the model writes all four.
5. ``gtalign: {pricing, rule}`` differing from the key's own -> 403 unless the key has
   ``allow_override``; a pricing name the server did not load at start-up, or an unknown welfare
   rule -> 400 listing the valid ones.
6. No free slot (and no room in the bounded wait) -> 429 with ``Retry-After``.
7. Steering longer than ``timeout`` -> 504; a backend failure the engine could not recover from
   -> 502 with the engine's reason.

A client that disconnects before its answer begins (while its body is read, while it waits for a
slot or while steering runs, streamed or not) cancels the steering and frees its slot at once; it
is logged as ``http=499`` and counted under 499 in ``/health`` (nginx's "client closed request"),
not as a server error: nobody is left to answer.

``temperature`` defaults to 0 (greedy), not OpenAI's 1; ``top_p`` and ``seed`` are passed on.
``stop`` is applied to the final response text only (the model's internal blocks need their own
stops), cutting it at the first stop string. ``user`` is accepted and ignored.

Streaming: ``stream: true`` streams the response as the model writes it. Steering runs first (the
four-block answer up to ``</payoff>``, the decision), then the continuation is streamed and its
``<response>`` text relayed (`SteeringEngine.stream`). The HTTP answer starts with the first
response text, so everything that goes wrong before it (429, 502, 504) is still an ordinary HTTP
error; a failure after it (the backend breaking mid-response, the timeout) ends the stream with an
OpenAI-style ``data: {"error": ...}`` event, which the openai client raises as an APIError. The
chunks: one with the role, the response deltas, a final chunk with ``finish_reason`` and
``gtalign``, a usage chunk when ``stream_options.include_usage`` is set, then ``data: [DONE]``. A
client that disconnects cancels the steering and frees its slot.

Each request is logged as one line on the ``gtalign.server`` logger: key id, policy, rule, chosen
action, status, tokens and latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response, StreamingResponse

from gtalign import __version__
from gtalign._chat_client import TextStream
from gtalign._registry import REGISTRY
from gtalign.backends._base import ChatBackend, SamplingParams
from gtalign.game import welfare_rule
from gtalign.server._backend import build_backend
from gtalign.server._config import ANONYMOUS, ApiKey, ConfigError, ServerConfig, digest
from gtalign.server._errors import ProxyError, error_response
from gtalign.server._limits import ConcurrencyGate, GateFull
from gtalign.server._schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    ResponseMessage,
    Usage,
)
from gtalign.server._steer import Steered, load_policies, prompt, report, steer, steer_stream
from gtalign.steering import Fallback, SteeringResult
from gtalign.steering._steps import partial_tag

__all__ = ["CLIENT_CLOSED", "LOGGER_NAME", "ProxyStats", "create_app"]

LOGGER_NAME = "gtalign.server"
CLIENT_CLOSED = 499
"""The status a request that its client abandoned is logged and counted as (nginx's convention)."""
_log = logging.getLogger(LOGGER_NAME)
_WORDS_PER_CHUNK = 4
_WORDS = re.compile(r"\s*\S+\s*")
_DRAIN_LIMIT = 64 * 1024 * 1024
_T = TypeVar("_T")


class _ClientClosed(Exception):
    """The client disconnected before its answer began: there is nobody to answer."""


@dataclass
class ProxyStats:
    """Requests answered per HTTP status (shown by ``/health``)."""

    by_status: dict[int, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1


@dataclass
class _Proxy:
    """Everything a request needs, built once per app."""

    config: ServerConfig
    backend: ChatBackend | None
    owns_backend: bool
    policies: dict[str, Any]
    keys: dict[str, ApiKey]
    rules: frozenset[str]
    gate: ConcurrencyGate
    created: int
    fallback: Fallback = Fallback()
    stats: ProxyStats = field(default_factory=ProxyStats)

    def authenticate(self, request: Request) -> ApiKey:
        if not self.config.auth:
            return ANONYMOUS
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token.strip():
            raise ProxyError(
                401, "Missing API key: send it as 'Authorization: Bearer KEY'.", code="missing_api_key", headers=challenge
            )
        key = self.keys.get(digest(token.strip()))
        if key is None:
            raise ProxyError(401, "Incorrect API key provided.", code="invalid_api_key", headers=challenge)
        return key


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    first = exc.errors(include_url=False)[0]
    if first.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request: " + str(first.get("msg", "")), None
    loc = [str(part) for part in first.get("loc", ()) if not str(part).startswith(("function-", "union["))]
    param = ".".join(loc) or None
    where = f"'{param}': " if param else ""
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"Invalid request: {where}{message}", param


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413. An oversized body is drained (not kept) first when it is of a sane size,
    so the client gets to read the 413 instead of a connection reset mid-upload."""
    declared = request.headers.get("content-length")
    too_large = ProxyError(413, f"Request body too large: this server accepts at most {limit} bytes.", code="request_too_large")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= _DRAIN_LIMIT:
            async for _ in request.stream():
                pass
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _parse(body: bytes) -> ChatCompletionRequest:
    if not body.strip():
        raise ProxyError(400, "The request body is empty: send a JSON chat completion request.", code="invalid_json")
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        message, param = _validation_message(exc)
        code = "invalid_json" if param is None and message.startswith("We could not parse") else "invalid_value"
        raise ProxyError(400, message, code=code, param=param) from None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one validated request will run."""

    key: ApiKey
    messages: tuple[dict[str, str], ...]
    pricing: str
    rule: str
    params: SamplingParams
    stops: tuple[str, ...]
    constrain: str = "off"


def _plan(proxy: _Proxy, key: ApiKey, chat: ChatCompletionRequest) -> _Plan:
    config = proxy.config
    if chat.model != config.model_name:
        raise ProxyError(404, f"The model '{chat.model}' does not exist; this server serves '{config.model_name}'.",
                         code="model_not_found", param="model")
    unsupported = chat.unsupported()
    if unsupported is not None:
        raise ProxyError(400, unsupported[1], code="unsupported_parameter", param=unsupported[0])
    requested = chat.requested_max_tokens
    if requested is not None and requested > config.max_tokens:
        param = "max_completion_tokens" if chat.max_completion_tokens is not None else "max_tokens"
        raise ProxyError(
            400, f"{param} is {requested}, but this server allows at most {config.max_tokens} tokens per request.",
            code="max_tokens_exceeded", param=param,
        )
    pricing = key.pricing or config.pricing
    rule = config.rule
    options = chat.gtalign
    if options is not None:
        own = {"pricing": pricing, "rule": rule}
        asked = {"pricing": options.pricing, "rule": options.rule}
        changes = sorted(name for name, value in asked.items() if value is not None and value != own[name])
        if changes and not key.allow_override:
            raise ProxyError(
                403, f"This API key may not choose its own {' or '.join(changes)}; ask for a key with allow_override.",
                code="override_not_allowed", param=f"gtalign.{changes[0]}",
            )
        if options.pricing is not None:
            if options.pricing not in proxy.policies:
                raise ProxyError(
                    400, f"Unknown pricing policy '{options.pricing}'; this server offers: {', '.join(proxy.policies)}.",
                    code="invalid_value", param="gtalign.pricing",
                )
            pricing = options.pricing
        if options.rule is not None:
            if options.rule not in proxy.rules:
                raise ProxyError(
                    400, f"Unknown welfare rule '{options.rule}'; valid: {', '.join(sorted(proxy.rules))}.",
                    code="invalid_value", param="gtalign.rule",
                )
            rule = options.rule
    try:
        messages = tuple(prompt([message.as_plain() for message in chat.messages], rule))
    except ValueError as exc:
        raise ProxyError(400, f"Invalid messages: {exc}.", code="invalid_value", param="messages") from None
    sampling: dict[str, Any] = {"max_tokens": requested or config.default_max_tokens}
    if chat.temperature is not None:
        sampling["temperature"] = chat.temperature
    if chat.top_p is not None:
        sampling["top_p"] = chat.top_p
    if chat.seed is not None:
        sampling["seed"] = chat.seed
    constrain = options.constrain if options is not None and options.constrain is not None else config.constrain
    return _Plan(key, messages, pricing, rule, SamplingParams(**sampling), chat.stops, constrain)


def _apply_stops(text: str, stops: tuple[str, ...]) -> str:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text


async def _acquire(proxy: _Proxy) -> None:
    config = proxy.config
    try:
        await proxy.gate.acquire()
    except GateFull:
        raise ProxyError(
            429,
            f"The server is at capacity ({config.max_concurrency} requests in progress); retry after {config.retry_after} s.",
            code="server_busy", headers={"Retry-After": str(config.retry_after)},
        ) from None


async def _hangup(request: Request) -> None:
    """Returns when the client disconnects. Only called once the body has been read, so the ASGI
    server has nothing else to hand over."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_hangup(request: Request, work: Awaitable[_T]) -> _T:
    """``work``, cancelled when the client disconnects first (then `_ClientClosed`): steering that
    nobody will read must not hold its slot until it ends. A result that is ready wins a tie."""
    task = asyncio.ensure_future(work)
    hangup = asyncio.ensure_future(_hangup(request))
    try:
        await asyncio.wait({task, hangup}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hangup.cancel()
        if not task.done():
            task.cancel()
        await asyncio.wait({task, hangup})  # the work's own cleanup (its slot) runs before we go on
    if task.cancelled() and not hangup.cancelled():
        hangup.result()  # a failing receive is a bug to report, not a client that left
        raise _ClientClosed
    return task.result()


def _timeout_error(proxy: _Proxy) -> ProxyError:
    return ProxyError(504, f"Steering did not finish within the server's {proxy.config.timeout:g} s timeout.", code="timeout")


async def _run(proxy: _Proxy, plan: _Plan) -> Steered:
    assert proxy.backend is not None
    await _acquire(proxy)
    try:
        return await asyncio.wait_for(
            steer(proxy.backend, plan.messages, policy=proxy.policies[plan.pricing], rule=plan.rule, params=plan.params,
                  fallback=proxy.fallback, constrain=plan.constrain),
            proxy.config.timeout,
        )
    except TimeoutError:
        raise _timeout_error(proxy) from None
    finally:
        await proxy.gate.release()


@dataclass
class _Live:
    """A streamed steering whose response has begun. It holds a gate slot until `end`, which runs
    once however the stream ends (finished, failed, client gone, body never started)."""

    proxy: _Proxy
    steering: TextStream[SteeringResult]
    first: str
    deadline: float
    log: Callable[[Steered | None, int], None] = lambda steered, status: None
    steered: Steered | None = None
    status: int = 200
    ended: bool = False

    async def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            await self.steering.aclose()
        finally:
            await self.proxy.gate.release()
            self.log(self.steered, self.status)


class _LiveResponse(StreamingResponse):
    """A `StreamingResponse` that ends its `_Live` stream when the response is done, also when the
    body iterator never started (a client gone before the first byte) or was never closed."""

    def __init__(self, content: AsyncIterator[bytes], live: _Live, **options: Any) -> None:
        super().__init__(content, **options)
        self.live = live

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.live.end()


async def _open_stream(proxy: _Proxy, plan: _Plan) -> _Live | Steered:
    """Steer until the response's first text (a `_Live` stream), or to the end when the steering
    finished without any (its `Steered`, reported like a whole answer)."""
    assert proxy.backend is not None
    await _acquire(proxy)
    steering: TextStream[SteeringResult] | None = None
    deadline = asyncio.get_running_loop().time() + proxy.config.timeout
    try:
        steering = steer_stream(proxy.backend, plan.messages, policy=proxy.policies[plan.pricing], rule=plan.rule,
                                params=plan.params, fallback=proxy.fallback, constrain=plan.constrain)
        async with asyncio.timeout_at(deadline):
            first = await anext(steering, None)
    except BaseException as exc:
        try:
            if steering is not None:
                await steering.aclose()
        finally:
            await proxy.gate.release()
        if isinstance(exc, TimeoutError):
            raise _timeout_error(proxy) from None
        raise
    if first is None:
        await proxy.gate.release()
        return report(steering.result)
    return _Live(proxy, steering, first, deadline)


class _StopFilter:
    """The client's ``stop`` strings on streamed text, cutting exactly where `_apply_stops` cuts the
    whole text: nothing from the first stop string on is sent, and text from the earliest place a
    stop string could still begin waits for the next piece (a longer stop string starting earlier
    can win over a shorter one already complete)."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = tuple(stop for stop in stops if stop)
        self.pending = ""
        self.hit = False

    def feed(self, piece: str) -> str:
        if self.hit or not self.stops:
            return "" if self.hit else piece
        text = self.pending + piece
        cuts = [i for i in (text.find(stop) for stop in self.stops) if i >= 0]
        cut = min(cuts) if cuts else len(text)
        hold = len(text) - max(partial_tag(text, stop) for stop in self.stops)
        if cuts and cut <= hold:
            self.hit, self.pending = True, ""
            return text[:cut]
        self.pending = text[hold:]
        return text[:hold]

    def flush(self) -> str:
        rest, self.pending = ("" if self.hit else _apply_stops(self.pending, self.stops)), ""
        return rest


def _usage(steered: Steered) -> Usage:
    return Usage(prompt_tokens=steered.prompt_tokens, completion_tokens=steered.completion_tokens,
                 total_tokens=steered.prompt_tokens + steered.completion_tokens)


def _chunks(text: str) -> Iterator[str]:
    words = _WORDS.findall(text)
    for start in range(0, len(words), _WORDS_PER_CHUNK):
        yield "".join(words[start : start + _WORDS_PER_CHUNK])


def _sse(chunk: ChatCompletionChunk) -> bytes:
    data = chunk.model_dump(exclude_none=True)
    for choice in data["choices"]:
        choice.setdefault("finish_reason", None)
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def _stream(ident: str, created: int, model: str, text: str, steered: Steered, extension: dict[str, Any],
                  include_usage: bool) -> AsyncIterator[bytes]:
    def chunk(delta: Delta, finish: str | None = None, **extra: Any) -> ChatCompletionChunk:
        return ChatCompletionChunk(id=ident, created=created, model=model,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish)], **extra)

    yield _sse(chunk(Delta(role="assistant", content="")))
    for piece in _chunks(text):
        yield _sse(chunk(Delta(content=piece)))
    yield _sse(chunk(Delta(), steered.finish_reason, gtalign=extension))
    if include_usage:
        yield _sse(ChatCompletionChunk(id=ident, created=created, model=model, choices=[], usage=_usage(steered)))
    yield b"data: [DONE]\n\n"


def _sse_error(error: ProxyError) -> bytes:
    return b"data: " + error.response().body + b"\n\n"


async def _relay(live: _Live, ident: str, created: int, plan: _Plan, include_usage: bool) -> AsyncIterator[bytes]:
    """The SSE body of a live stream: the response deltas as they come, then the record; records
    the outcome on ``live`` for its `_Live.end` (a client that goes away cancels this generator)."""
    proxy = live.proxy
    model = proxy.config.model_name

    def chunk(delta: Delta, finish: str | None = None, **extra: Any) -> bytes:
        return _sse(ChatCompletionChunk(id=ident, created=created, model=model,
                                        choices=[ChunkChoice(delta=delta, finish_reason=finish)], **extra))

    stops = _StopFilter(plan.stops)
    try:
        yield chunk(Delta(role="assistant", content=""))
        if text := stops.feed(live.first):
            yield chunk(Delta(content=text))
        while True:
            try:
                async with asyncio.timeout_at(live.deadline):  # never around a yield: the client's pace is not ours
                    delta = await anext(live.steering, None)
            except TimeoutError:
                live.status = 504
                yield _sse_error(_timeout_error(proxy))
                yield b"data: [DONE]\n\n"
                return
            if delta is None:
                break
            if text := stops.feed(delta):
                yield chunk(Delta(content=text))
        live.steered = steered = report(live.steering.result)
        if steered.status == "failed":
            live.status = 502
            yield _sse_error(ProxyError(502, f"The model backend failed: {steered.reason or 'no reason given'}",
                                        code="backend_failed"))
            yield b"data: [DONE]\n\n"
            return
        if text := stops.flush():
            yield chunk(Delta(content=text))
        yield chunk(Delta(), steered.finish_reason, gtalign=dict(steered.record))
        if include_usage:
            yield _sse(ChatCompletionChunk(id=ident, created=created, model=model, choices=[], usage=_usage(steered)))
        yield b"data: [DONE]\n\n"
    finally:
        await live.end()


def _internal_error(exc: Exception) -> Response:
    return error_response(500, f"Internal server error ({type(exc).__name__}); see the server log.", code="internal_error")


def _log_request(
    key: ApiKey | None, plan: _Plan | None, steered: Steered | None, status: int, started: float, stream: bool
) -> None:
    if not _log.isEnabledFor(logging.INFO):
        return
    tokens = f"{steered.prompt_tokens}+{steered.completion_tokens}" if steered else "-"
    _log.info(
        "chat key=%s policy=%s rule=%s action=%s steering=%s http=%d tokens=%s latency_ms=%.1f stream=%s",
        key.id if key else "-", plan.pricing if plan else "-", plan.rule if plan else "-",
        (steered.action or "-") if steered else "-", steered.status if steered else "-", status, tokens,
        (time.perf_counter() - started) * 1000, str(stream).lower(),
    )


def create_app(config: ServerConfig, backend: ChatBackend | None = None, *, close_backend: bool | None = None) -> FastAPI:
    """The proxy as a FastAPI app. With ``backend=None`` it builds ``config.backend`` at start-up.
    ``close_backend``: close the backend at shutdown (default: only one the app built itself).

    Pricing policies are loaded here, so a bad policy name fails before anything listens.
    """
    try:
        welfare_rule(config.rule)
    except (LookupError, ValueError) as exc:
        raise ConfigError(f"rule {config.rule!r}: {exc}") from None
    proxy = _Proxy(
        config=config,
        backend=backend,
        owns_backend=backend is None if close_backend is None else close_backend,
        policies=load_policies(config.pricing_names()),
        keys={digest(key.secret): key for key in config.keys},
        rules=frozenset(REGISTRY.names("welfare")),
        gate=ConcurrencyGate(config.max_concurrency, max_queue=config.max_queue, queue_timeout=config.queue_timeout),
        created=int(time.time()),
        fallback=Fallback.when_ignored(config.on_ignored),  # type: ignore[arg-type]
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if proxy.backend is None:
            proxy.backend = await asyncio.to_thread(build_backend, config)
        try:
            yield
        finally:
            if proxy.owns_backend and proxy.backend is not None:
                await proxy.backend.aclose()
                proxy.backend = None

    app = FastAPI(title="gtalign steering proxy", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.proxy = proxy

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = f"No route {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        return error_response(exc.status_code, message, code=code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(400, f"Invalid request: {exc.errors()[0].get('msg', 'invalid value')}", code="invalid_value")

    @app.exception_handler(ProxyError)
    async def proxy_error(request: Request, exc: ProxyError) -> Response:
        return exc.response()

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        return _internal_error(exc)  # the server logs the traceback (Starlette re-raises after this)

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({
            "status": "ok",
            "model": config.model_name,
            "backend": proxy.backend.name if proxy.backend is not None else None,
            "in_flight": proxy.gate.in_flight,
            "max_concurrency": config.max_concurrency,
            "requests": {str(status): n for status, n in sorted(proxy.stats.by_status.items())},
            "version": __version__,
        })

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        proxy.authenticate(request)
        listing = ModelList(data=[ModelCard(id=config.model_name, created=proxy.created)])
        return Response(listing.model_dump_json(), media_type="application/json")

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> Response:
        proxy.authenticate(request)
        if model_id != config.model_name:
            raise ProxyError(404, f"The model '{model_id}' does not exist; this server serves '{config.model_name}'.",
                             code="model_not_found", param="model")
        return Response(ModelCard(id=config.model_name, created=proxy.created).model_dump_json(), media_type="application/json")

    def _live_response(live: _Live, chat: ChatCompletionRequest, plan: _Plan, key: ApiKey, started: float) -> Response:
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        proxy.stats.count(200)
        live.log = lambda steered, status: _log_request(key, plan, steered, status, started, True)
        return _LiveResponse(
            _relay(live, ident, int(time.time()), plan, include_usage), live,
            media_type="text/event-stream", headers={"x-request-id": ident, "Cache-Control": "no-cache"},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        started = time.perf_counter()
        key: ApiKey | None = None
        plan: _Plan | None = None
        steered: Steered | None = None
        stream = False
        try:
            key = proxy.authenticate(request)
            chat = _parse(await _read_body(request, config.max_request_bytes))
            stream = chat.stream
            plan = _plan(proxy, key, chat)
            if stream:
                opened = await _unless_hangup(request, _open_stream(proxy, plan))
                if isinstance(opened, _Live):
                    return _live_response(opened, chat, plan, key, started)
                steered = opened
            else:
                steered = await _unless_hangup(request, _run(proxy, plan))
            if steered.status == "failed":
                raise ProxyError(502, f"The model backend failed: {steered.reason or 'no reason given'}", code="backend_failed")
        except (ClientDisconnect, _ClientClosed):  # gone while sending its body, or before its answer began
            proxy.stats.count(CLIENT_CLOSED)
            _log_request(key, plan, steered, CLIENT_CLOSED, started, stream)
            return error_response(CLIENT_CLOSED, "The client closed the request.", code="client_closed")  # never read
        except ProxyError as exc:
            proxy.stats.count(exc.status)
            _log_request(key, plan, steered, exc.status, started, stream)
            return exc.response()
        except Exception as exc:  # a bug: answered here, so the client still gets an OpenAI-style body
            _log.exception("chat request failed")
            proxy.stats.count(500)
            _log_request(key, plan, steered, 500, started, stream)
            return _internal_error(exc)
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        text = _apply_stops(steered.text, plan.stops)
        extension = dict(steered.record)
        proxy.stats.count(200)
        _log_request(key, plan, steered, 200, started, stream)
        headers = {"x-request-id": ident}
        if stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return StreamingResponse(
                _stream(ident, created, config.model_name, text, steered, extension, include_usage),
                media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"},
            )
        completion = ChatCompletion(
            id=ident, created=created, model=config.model_name,
            choices=[Choice(message=ResponseMessage(content=text), finish_reason=steered.finish_reason)],
            usage=_usage(steered), gtalign=extension,
        )
        return Response(completion.model_dump_json(), media_type="application/json", headers=headers)

    return app
