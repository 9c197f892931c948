"""A scripted OpenAI-compatible HTTP server on loopback, for tests and benchmarks of judges and clients.

It is a real server (asyncio streams, HTTP/1.1 with keep-alive), so the whole client stack runs:
connection pools, timeouts, retries. It speaks enough of ``POST /v1/chat/completions``,
``POST /v1/completions`` (both also streamed as server-sent events) and ``GET /v1/models`` for
httpx and the openai client. A script maps each request to a `Reply`, which can carry a fault:
429 with Retry-After, a 5xx, a hang, a non-JSON body, a connection dropped mid-response, a
context overflow or a content filter. A capacity limit answers 429 with Retry-After beyond
``capacity`` requests in flight, as busy inference servers do.

Like a model server, it applies ``stop`` strings (the stop string is not returned) and
``max_tokens`` (counted in whitespace-separated words) to the scripted text, and reports usage
in words (none when a `Reply` says ``usage=False``). With ``kind`` it impersonates one server
kind: it answers that kind's detection probes
(``GET /props`` for llama.cpp, ``/api/version`` for Ollama, ``/version`` for vLLM,
``/get_model_info`` for SGLang, its ``owned_by`` in ``/v1/models``), treats a trailing assistant
message the way that server does (`FakeRequest.prefill`: continued or a new turn), and reports the
matched stop string where that server does (vLLM ``stop_reason``, SGLang ``matched_stop``,
llama.cpp ``stopping_word`` as ``llama-server --verbose`` does), and reports ``version`` where that
server does (vLLM ``/version``, Ollama ``/api/version``, SGLang ``/get_server_info``), since a
client may choose request fields by it. A ``/v1/completions`` prompt in ChatML is read back into
messages and a partial assistant turn. Every request body is kept as received
(`FakeRequest.body` in ``received``), so a test can check exactly which fields a client sent.

Start it in the running event loop (``async with FakeOpenAI(script) as server``) or in its own
thread (``with FakeOpenAI(script) as server``, for synchronous code). It listens on 127.0.0.1 only,
on a free port (or a given one: a server coming back where one was down), and stops (closing every
connection) when the block exits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["FAKE_KINDS", "FakeKind", "FakeOpenAI", "FakeRequest", "Fault", "Reply", "Script", "echo_script"]

Fault = Literal["rate_limit", "server_error", "hang", "garbage", "drop", "overflow", "content_filter"]
FakeKind = Literal["vllm", "sglang", "llama.cpp", "ollama", "llama-cpp-python", "openai"]
FAKE_KINDS: tuple[FakeKind, ...] = ("vllm", "sglang", "llama.cpp", "ollama", "llama-cpp-python", "openai")

_VERSIONS: dict[FakeKind, str] = {"vllm": "0.11.0", "ollama": "0.12.6", "sglang": "0.5.0"}
"""The version each kind reports unless ``version`` is given."""

_OWNED_BY: dict[FakeKind | None, str] = {
    None: "gtalign-testing",
    "vllm": "vllm",
    "sglang": "sglang",
    "llama.cpp": "llamacpp",
    "ollama": "library",
    "llama-cpp-python": "me",
    "openai": "system",
}
# Kinds whose chat endpoint continues a trailing assistant message without being asked to.
_PREFILLS_TRAILING_ASSISTANT = frozenset({None, "llama.cpp", "ollama"})
_CHATML = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>\n?|$)", re.S)
_ASSISTANT_OPEN = "<|im_start|>assistant\n"
_PIECES = re.compile(r"\s*\S+|\s+")

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
    finish_reason: of a normal answer (e.g. ``length`` to simulate a cut reply); the server's own
        ``stop``/``max_tokens`` cuts override it.
    stream_delay: seconds between the events of a streamed answer.
    usage: report token usage (False: the answer has none, as some proxies and servers send it).

    In a streamed answer, ``drop`` breaks the connection after the first text event and
    ``garbage`` sends an event that is not JSON.
    """

    text: str = ""
    think: str | None = None
    fault: Fault | None = None
    retry_after: float | None = None
    status: int = 500
    latency: float | None = None
    finish_reason: str = "stop"
    stream_delay: float = 0.0
    usage: bool = True


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One chat or completion request as the script sees it.

    index: arrival order among generation requests (0-based). seen: how many earlier requests had
    the same messages or prompt (0 on the first try, 1 on its first retry, ...).
    messages: the chat messages; for ``/v1/completions``, those read back from a ChatML prompt.
    path: ``/chat/completions`` or ``/completions``.
    prefill: the partial assistant message the impersonated server continues (the script writes
        what follows it), or None when the model starts a new assistant turn.
    """

    index: int
    seen: int
    model: str
    messages: tuple[Mapping[str, Any], ...]
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    path: str = "/chat/completions"
    prefill: str | None = None

    @property
    def prompt(self) -> str:
        """The last user message's text (for a completion without ChatML: the raw prompt)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        raw = self.body.get("prompt")
        return raw if isinstance(raw, str) else ""

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


def _parse_chatml(prompt: str) -> tuple[tuple[dict[str, str], ...], str | None]:
    """Messages of a ChatML prompt and the open assistant turn at its end (None: a new turn)."""
    messages = tuple({"role": role, "content": content} for role, content in _CHATML.findall(prompt))
    start = prompt.rfind(_ASSISTANT_OPEN)
    if start >= 0 and "<|im_end|>" not in prompt[start:]:
        return messages[:-1], prompt[start + len(_ASSISTANT_OPEN) :] or None
    return messages, None


def _words(text: str) -> int:
    return len(text.split())


def _response(status: int, body: bytes, headers: Mapping[str, str] | None = None, *, keep_alive: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _error(status: int, message: str, code: str | None = None, kind: str = "BadRequestError") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": code if code is not None else status}}).encode()


class FakeOpenAI:
    """A scripted chat-completions server on ``127.0.0.1`` (see the module docstring).

    script: request -> `Reply` or reply text (default: `echo_script`). The text is what the model
        writes next: after `FakeRequest.prefill` when the server continues one.
    capacity: most requests in flight at once; beyond it the answer is 429 with
        ``capacity_retry_after`` seconds (None: unlimited).
    latency: default seconds before each scripted answer.
    model: the id listed by ``/v1/models`` and echoed in completions.
    kind: the server kind to impersonate (None: a generic server that continues a trailing
        assistant message and answers no probes).
    echo_prefill: answer with the continued prefill followed by the new text, as some servers do.
    version: the version the impersonated server reports (None: a fixed one per kind).
    port: the loopback port to listen on (0: a free one), e.g. one that refused connections
        before, to test a client against a server that comes back.

    Counters (read them after or during a run): ``requests`` generation requests received,
    ``counts`` per outcome (``ok``, ``capacity`` and each fault kind), ``in_flight`` and
    ``max_in_flight`` (accepted requests being processed), ``received`` every `FakeRequest`,
    ``probes`` the path of every GET.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        capacity: int | None = None,
        latency: float = 0.0,
        capacity_retry_after: float = 0.05,
        model: str = "fake-judge",
        kind: FakeKind | None = None,
        echo_prefill: bool = False,
        version: str | None = None,
        port: int = 0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (a free one) or a port number up to 65535, got {port}")
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1 or None, got {capacity}")
        if kind is not None and kind not in FAKE_KINDS:
            raise ValueError(f"unknown kind {kind!r}; the fake impersonates {', '.join(FAKE_KINDS)} (or None)")
        self.script: Script = script or echo_script
        self.capacity = capacity
        self.latency = latency
        self.capacity_retry_after = capacity_retry_after
        self.model = model
        self.kind: FakeKind | None = kind
        self.echo_prefill = echo_prefill
        self.version = version
        self.probes: list[str] = []
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.counts: Counter[str] = Counter()
        self.received: list[FakeRequest] = []
        self._seen: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._listen_port = port
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
        """Listen on the loopback port (a free one unless ``port`` was given) in the running loop."""
        self._stopping = False
        self._server = await asyncio.start_server(self._connection, _HOST, self._listen_port, limit=_MAX_HEAD)
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
        if method == "GET":
            self.probes.append(path)
        if route == "/models":
            entry = {"id": self.model, "object": "model", "created": 0, "owned_by": _OWNED_BY[self.kind]}
            await self._send(writer, 200, json.dumps({"object": "list", "data": [entry]}).encode())
            return True
        if route not in ("/chat/completions", "/completions"):
            answer = self._probe_answer(path) if method == "GET" else None
            if answer is None:
                await self._send(writer, 404, _error(404, f"no route {path}", kind="NotFoundError"))
            else:
                await self._send(writer, 200, json.dumps(answer).encode())
            return True
        if method != "POST":
            await self._send(writer, 405, _error(405, "use POST"))
            return True
        return await self._generate(route, headers, body, reader, writer)

    def _probe_answer(self, path: str) -> dict[str, Any] | None:
        """What the impersonated server answers to a GET at its root (None: 404)."""
        kind, model = self.kind, self.model
        version = self.version or (_VERSIONS.get(kind, "0.0.0") if kind is not None else "0.0.0")
        if path == "/health" and kind in ("llama.cpp", "vllm", "sglang"):
            return {"status": "ok"}
        if kind == "llama.cpp" and path == "/props":
            return {
                "default_generation_settings": {"n_ctx": 4096, "params": {"temperature": 0.8}},
                "total_slots": 1,
                "model_path": f"/models/{model}.gguf",
                "chat_template": "{{ messages }}",
                "build_info": "b0000-fake",
            }
        if kind == "ollama" and path == "/api/version":
            return {"version": version}
        if kind == "ollama" and path == "/api/tags":
            return {"models": [{"name": model, "model": model}]}
        if kind == "vllm" and path == "/version":
            return {"version": version}
        if kind == "sglang" and path == "/get_model_info":
            return {"model_path": model, "tokenizer_path": model, "is_generation": True}
        if kind == "sglang" and path in ("/get_server_info", "/server_info"):
            return {"model_path": model, "version": version}
        return None

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        writer.write(_response(status, body, headers))
        await writer.drain()

    async def _generate(
        self, route: str, headers: dict[str, str], body: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        index = self.requests
        self.requests += 1
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise TypeError("not an object")
            if route == "/completions":
                prompt = payload["prompt"]
                prompt = prompt[0] if isinstance(prompt, list) and len(prompt) == 1 else prompt
                if not isinstance(prompt, str):
                    raise TypeError("prompt is not a string")
                messages, prefill = _parse_chatml(prompt)
                fingerprint_of: Any = prompt
            else:
                messages = tuple(payload["messages"])
                prefill = self._chat_prefill(messages, payload)
                fingerprint_of = messages
        except (ValueError, KeyError, TypeError):
            self.counts["bad_request"] += 1
            need = "a 'prompt' string" if route == "/completions" else "a 'messages' list"
            await self._send(writer, 400, _error(400, f"body must be JSON with {need}"))
            return True
        except _Rejected as exc:
            self.counts["bad_request"] += 1
            await self._send(writer, 400, _error(400, str(exc)))
            return True
        if self.capacity is not None and self.in_flight >= self.capacity:
            self.counts["capacity"] += 1
            busy = _error(429, "server at capacity, retry later", kind="RateLimitError")
            await self._send(writer, 429, busy, self._retry_headers(self.capacity_retry_after))
            return True
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            fingerprint = hashlib.sha256(json.dumps(fingerprint_of, sort_keys=True).encode()).hexdigest()
            model = str(payload.get("model", ""))
            request = FakeRequest(
                index, self._seen[fingerprint], model, messages, MappingProxyType(payload), MappingProxyType(headers), route, prefill
            )
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

    def _chat_prefill(self, messages: tuple[Mapping[str, Any], ...], payload: Mapping[str, Any]) -> str | None:
        """The partial assistant message this kind of server continues, or None (a new turn)."""
        last = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
        content = last.get("content")
        trailing = content if last.get("role") == "assistant" and isinstance(content, str) else None
        if self.kind in ("vllm", "sglang"):
            if payload.get("continue_final_message"):
                if payload.get("add_generation_prompt", True):
                    raise _Rejected("Cannot set both `continue_final_message` and `add_generation_prompt` to True.")
                if trailing is None:
                    raise _Rejected("continue_final_message is set but the final message is not from the assistant")
                return trailing
            return None
        return trailing if self.kind in _PREFILLS_TRAILING_ASSISTANT else None

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
        elif fault == "overflow":
            message = (
                "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens. "
                "Please reduce the length of the messages."
            )
            await self._send(writer, 400, _error(400, message))
        elif payload.get("stream"):
            return await self._stream(request, reply, payload, writer)
        elif fault == "garbage":
            await self._send(writer, 200, b"<html>502 upstream hiccup, not JSON {{{")
        elif fault == "drop":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
            writer.write(head + b'{"id": "chatcmpl-dropped", "choices": [{"message": {"content": "')
            await writer.drain()
            writer.transport.abort()  # mid-body: the client sees a truncated response
            return False
        elif fault == "content_filter":
            await self._send(writer, 200, self._completion(request, _Output(None, "content_filter", None), payload))
        else:
            await self._send(writer, 200, self._completion(request, self._output(request, reply, payload), payload, reply.usage))
        return True

    def _output(self, request: FakeRequest, reply: Reply, payload: Mapping[str, Any]) -> _Output:
        """The scripted text as the server returns it: echo, then ``stop`` and ``max_tokens`` cuts."""
        text = reply.text if reply.think is None else f"<think>{reply.think}</think>{reply.text}"
        if self.echo_prefill and request.prefill:
            text = request.prefill + text
        finish, matched = reply.finish_reason, None
        raw_stop = payload.get("stop")
        stops = [raw_stop] if isinstance(raw_stop, str) else [s for s in raw_stop or () if isinstance(s, str) and s]
        hits = [(text.find(s), s) for s in stops if s and s in text]
        if hits:
            cut, matched = min(hits)
            text, finish = text[:cut], "stop"
        limit = payload.get("max_tokens")
        if isinstance(limit, int) and _words(text) > limit:
            kept = [m.group() for m in _PIECES.finditer(text) if m.group().strip()][:limit]
            text, finish, matched = "".join(kept), "length", None
        return _Output(text, finish, matched)

    def _choice_extras(self, output: _Output) -> dict[str, Any]:
        if self.kind == "vllm":
            return {"stop_reason": output.stop}
        if self.kind == "sglang":
            return {"matched_stop": output.stop}
        return {}

    def _top_extras(self, output: _Output) -> dict[str, Any]:
        if self.kind == "llama.cpp":
            return {"__verbose": {"stopping_word": output.stop or "", "stopped_word": output.stop is not None}}
        return {}

    def _usage(self, request: FakeRequest, text: str | None) -> dict[str, int]:
        if request.path == "/completions":
            tokens_in = _words(str(request.body.get("prompt", "")))
        else:
            tokens_in = sum(_words(str(m.get("content", ""))) for m in request.messages)
        tokens_out = _words(text) if text else 0
        return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}

    def _completion(self, request: FakeRequest, output: _Output, payload: Mapping[str, Any], usage: bool = True) -> bytes:
        choice: dict[str, Any] = {"index": 0, "finish_reason": output.finish_reason, "logprobs": None}
        if request.path == "/completions":
            choice["text"] = output.text or ""
            obj, prefix = "text_completion", "cmpl"
        else:
            choice["message"] = {"role": "assistant", "content": output.text}
            obj, prefix = "chat.completion", "chatcmpl"
        choice.update(self._choice_extras(output))
        return json.dumps(
            {
                "id": f"{prefix}-fake-{request.index}",
                "object": obj,
                "created": int(time.time()),
                "model": str(payload.get("model", self.model)),
                "choices": [choice],
                **({"usage": self._usage(request, output.text)} if usage else {}),
                **self._top_extras(output),
            }
        ).encode()

    async def _stream(self, request: FakeRequest, reply: Reply, payload: Mapping[str, Any], writer: asyncio.StreamWriter) -> bool:
        """Server-sent events, chunked: a role event (chat), text pieces, the finish, usage, [DONE]."""
        filtered = reply.fault == "content_filter"
        output = _Output(None, "content_filter", None) if filtered else self._output(request, reply, payload)
        chat = request.path == "/chat/completions"
        base = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-fake-{request.index}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": str(payload.get("model", self.model)),
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

        def piece(text: str) -> dict[str, Any]:
            if chat:
                return {"index": 0, "delta": {"content": text}, "finish_reason": None}
            return {"index": 0, "text": text, "finish_reason": None}

        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        writer.write(head)
        if chat:
            await self._chunk(writer, event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]))
        if reply.fault == "garbage":
            await self._chunk(writer, b"data: <html>502 upstream hiccup, not JSON {{{\n\n")
        if reply.fault == "drop" and not output.text:
            writer.transport.abort()
            return False
        for number, match in enumerate(_PIECES.finditer(output.text or "")):
            if reply.stream_delay:
                await asyncio.sleep(reply.stream_delay)
            await self._chunk(writer, event([piece(match.group())]))
            if reply.fault == "drop" and number == 0:
                writer.transport.abort()
                return False
        end: dict[str, Any] = {"index": 0, "finish_reason": output.finish_reason, **self._choice_extras(output)}
        if chat:
            end["delta"] = {}
        else:
            end["text"] = ""
        await self._chunk(writer, event([end], **self._top_extras(output)))
        options = payload.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") and self.kind != "llama-cpp-python" and reply.usage:
            await self._chunk(writer, event([], usage=self._usage(request, output.text)))
        await self._chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()


class _Rejected(Exception):
    """A request the impersonated server refuses with 400 (its message is the error text)."""


@dataclass(frozen=True, slots=True)
class _Output:
    text: str | None
    finish_reason: str
    stop: str | None
