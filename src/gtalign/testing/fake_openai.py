"""A scripted OpenAI-compatible HTTP server on loopback, for tests and benchmarks of judges and clients.

It is a real server (asyncio streams, HTTP/1.1 with keep-alive), so the whole client stack runs:
connection pools, timeouts, retries. It speaks enough of ``POST /v1/chat/completions`` and
``GET /v1/models`` for httpx and the openai client. A script maps each request to a `Reply`,
which can carry a fault: 429 with Retry-After, a 5xx, a hang, a non-JSON body, a connection
dropped mid-response, a context overflow or a content filter. A capacity limit answers 429 with
Retry-After beyond ``capacity`` requests in flight, as busy inference servers do.

Start it in the running event loop (``async with FakeOpenAI(script) as server``) or in its own
thread (``with FakeOpenAI(script) as server``, for synchronous code). It listens on 127.0.0.1 only,
on a free port, and stops (closing every connection) when the block exits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["FakeOpenAI", "FakeRequest", "Fault", "Reply", "Script", "echo_script"]

Fault = Literal["rate_limit", "server_error", "hang", "garbage", "drop", "overflow", "content_filter"]

_HOST = "127.0.0.1"
_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server does with one request.

    text: the assistant message (``think`` is prepended as ``<think>...</think>``).
    fault: a failure to inject instead of a normal answer (see the module docstring).
    retry_after: seconds sent as ``Retry-After`` and ``retry-after-ms`` with a ``rate_limit``
        (None: no header). status: HTTP status of a ``server_error`` (default 500).
    latency: seconds before answering (None: the server's default).
    finish_reason: of a normal answer (e.g. ``length`` to simulate a cut reply).
    """

    text: str = ""
    think: str | None = None
    fault: Fault | None = None
    retry_after: float | None = None
    status: int = 500
    latency: float | None = None
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One chat request as the script sees it.

    index: arrival order among chat requests (0-based). seen: how many earlier requests had the
    same messages (0 on the first try, 1 on its first retry, ...).
    """

    index: int
    seen: int
    model: str
    messages: tuple[Mapping[str, Any], ...]
    body: Mapping[str, Any]
    headers: Mapping[str, str]

    @property
    def prompt(self) -> str:
        """The last user message's text."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return ""

    def tagged(self, tag: str) -> str | None:
        """The text between ``<tag>`` and ``</tag>`` in the prompt (first pair, stripped), or None."""
        prompt = self.prompt
        start = prompt.find(f"<{tag}>")
        end = prompt.find(f"</{tag}>", start + 1)
        if start < 0 or end < 0:
            return None
        return prompt[start + len(tag) + 2 : end].strip()


Script = Callable[[FakeRequest], "Reply | str"]


def echo_script(request: FakeRequest) -> Reply:
    """Answers ``\\boxed{X}`` where X is the judged response text (``<judged_response>`` block)."""
    return Reply(text=f"\\boxed{{{request.tagged('judged_response') or ''}}}")


def _response(status: int, body: bytes, headers: Mapping[str, str] | None = None, *, keep_alive: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _error(status: int, message: str, code: str | None = None, kind: str = "BadRequestError") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code if code is not None else status}}).encode()


class FakeOpenAI:
    """A scripted chat-completions server on ``127.0.0.1`` (see the module docstring).

    script: request -> `Reply` or reply text (default: `echo_script`).
    capacity: most requests in flight at once; beyond it the answer is 429 with
        ``capacity_retry_after`` seconds (None: unlimited).
    latency: default seconds before each scripted answer.
    model: the id listed by ``/v1/models`` and echoed in completions.

    Counters (read them after or during a run): ``requests`` chat requests received,
    ``counts`` per outcome (``ok``, ``capacity`` and each fault kind), ``in_flight`` and
    ``max_in_flight`` (accepted requests being processed), ``received`` every `FakeRequest`.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        capacity: int | None = None,
        latency: float = 0.0,
        capacity_retry_after: float = 0.05,
        model: str = "fake-judge",
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1 or None, got {capacity}")
        self.script: Script = script or echo_script
        self.capacity = capacity
        self.latency = latency
        self.capacity_retry_after = capacity_retry_after
        self.model = model
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.counts: Counter[str] = Counter()
        self.received: list[FakeRequest] = []
        self._seen: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._port = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the fake server is not running: use it as `async with` or `with`")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it as an OpenAI-compatible base URL."""
        return f"http://{_HOST}:{self.port}/v1"

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> FakeOpenAI:
        """Listen on a free loopback port in the running loop."""
        self._stopping = False
        self._server = await asyncio.start_server(self._connection, _HOST, 0, limit=_MAX_HEAD)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening, drop every connection (hung requests included) and wait for the handlers."""
        server, self._server = self._server, None
        self._stopping = True
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> FakeOpenAI:
        """Run the server in a daemon thread with its own event loop."""
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread_loop = loop
        self._thread = threading.Thread(target=run, name="gtalign-fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._thread_loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        self._thread_loop = self._thread = None

    # -- HTTP ---------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                method, path, headers = self._parse_head(head)
                length = int(headers.get("content-length", "0") or 0)
                if length > _MAX_BODY:
                    writer.write(_response(413, _error(413, "request body too large"), keep_alive=False))
                    return
                try:
                    body = await reader.readexactly(length) if length else b""
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if not await self._dispatch(method, path, headers, body, reader, writer):
                    return
        except (ConnectionError, ValueError):
            return
        except asyncio.CancelledError:
            if self._stopping:
                return  # stop() ends handlers this way; finishing quietly keeps asyncio from logging it
            raise
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
        lines = head.decode("latin-1").split("\r\n")
        method, path, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return method, path.split("?", 1)[0], headers

    async def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must end."""
        route = path[3:] if path.startswith("/v1/") else path
        if route == "/models":
            listing = {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "gtalign-testing"}]}
            await self._send(writer, 200, json.dumps(listing).encode())
            return True
        if route != "/chat/completions":
            await self._send(writer, 404, _error(404, f"no route {path}", kind="NotFoundError"))
            return True
        if method != "POST":
            await self._send(writer, 405, _error(405, "use POST"))
            return True
        return await self._chat(headers, body, reader, writer)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        writer.write(_response(status, body, headers))
        await writer.drain()

    async def _chat(self, headers: dict[str, str], body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        index = self.requests
        self.requests += 1
        try:
            payload = json.loads(body)
            messages = tuple(payload["messages"])
        except (ValueError, KeyError, TypeError):
            self.counts["bad_request"] += 1
            await self._send(writer, 400, _error(400, "body must be JSON with a 'messages' list"))
            return True
        if payload.get("stream"):
            self.counts["bad_request"] += 1
            await self._send(writer, 400, _error(400, "the fake server does not stream"))
            return True
        if self.capacity is not None and self.in_flight >= self.capacity:
            self.counts["capacity"] += 1
            busy = _error(429, "server at capacity, retry later", kind="RateLimitError")
            await self._send(writer, 429, busy, self._retry_headers(self.capacity_retry_after))
            return True
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fingerprint = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
            model = str(payload.get("model", ""))
            request = FakeRequest(index, self._seen[fingerprint], model, messages, MappingProxyType(payload), MappingProxyType(headers))
            self._seen[fingerprint] += 1
            self.received.append(request)
            try:
                scripted = self.script(request)
            except Exception as exc:  # a script bug is a 500 the test will see
                self.counts["script_error"] += 1
                await self._send(writer, 500, _error(500, f"script raised {type(exc).__name__}: {exc}", kind="InternalServerError"))
                return True
            reply = Reply(text=scripted) if isinstance(scripted, str) else scripted
            latency = self.latency if reply.latency is None else reply.latency
            if latency > 0:
                await asyncio.sleep(latency)
            return await self._answer(request, reply, payload, reader, writer)
        finally:
            self.in_flight -= 1

    @staticmethod
    def _retry_headers(seconds: float | None) -> dict[str, str]:
        if seconds is None:
            return {}
        return {"Retry-After": f"{seconds:g}", "retry-after-ms": f"{seconds * 1000:g}"}

    async def _answer(
        self, request: FakeRequest, reply: Reply, payload: Mapping[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        fault = reply.fault
        self.counts[fault or "ok"] += 1
        if fault == "rate_limit":
            await self._send(writer, 429, _error(429, "rate limit reached", kind="RateLimitError"), self._retry_headers(reply.retry_after))
        elif fault == "server_error":
            await self._send(writer, reply.status, _error(reply.status, "scripted server error", kind="InternalServerError"))
        elif fault == "hang":
            await reader.read(1)  # returns when the client gives up and closes (or the server stops)
            return False
        elif fault == "garbage":
            await self._send(writer, 200, b"<html>502 upstream hiccup, not JSON {{{")
        elif fault == "drop":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
            writer.write(head + b'{"id": "chatcmpl-dropped", "choices": [{"message": {"content": "')
            await writer.drain()
            writer.transport.abort()  # mid-body: the client sees a truncated response
            return False
        elif fault == "overflow":
            message = (
                "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens. "
                "Please reduce the length of the messages."
            )
            await self._send(writer, 400, _error(400, message))
        elif fault == "content_filter":
            await self._send(writer, 200, self._completion(request, None, "content_filter", payload))
        else:
            text = reply.text if reply.think is None else f"<think>{reply.think}</think>{reply.text}"
            await self._send(writer, 200, self._completion(request, text, reply.finish_reason, payload))
        return True

    def _completion(self, request: FakeRequest, text: str | None, finish_reason: str, payload: Mapping[str, Any]) -> bytes:
        tokens_in = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        tokens_out = len(text.split()) if text else 0
        return json.dumps(
            {
                "id": f"chatcmpl-fake-{request.index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(payload.get("model", self.model)),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason, "logprobs": None}
                ],
                "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
            }
        ).encode()

