"""A small loopback model server with a tokenize endpoint, for the token-count tests.

`gtalign.testing.FakeOpenAI` has no ``/tokenize`` route (it answers 404 there, which the tests use
as "a server without one"), so this one speaks just enough: ``POST /tokenize`` the way vLLM/SGLang
(``prompt`` -> ``count`` and ``tokens``) or llama.cpp's server (``content`` -> ``tokens``) answer,
and ``POST /v1/chat/completions`` with a scripted reply. A token is a whitespace-separated word.
``tokenize_status`` other than 200 makes every ``/tokenize`` answer that status.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Reply = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], str]


@dataclass
class TokenizeServer:
    style: Literal["vllm", "llama.cpp"] = "vllm"
    reply: Reply = lambda messages, body: "ok"
    tokenize_status: int = 200
    tokenized: list[dict[str, Any]] = field(default_factory=list)
    """Every ``/tokenize`` body received, in order."""
    chats: int = 0
    base_url: str = ""

    def words(self, body: Mapping[str, Any]) -> int:
        return len(str(body.get("prompt" if self.style == "vllm" else "content", "")).split())


def _handler(server: TokenizeServer) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return None

        def _send(self, status: int, data: Any) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.path == "/tokenize":
                with lock:
                    server.tokenized.append(body)
                if server.tokenize_status != 200:
                    self._send(server.tokenize_status, {"error": "no"})
                    return
                count = server.words(body)
                answer = {"tokens": list(range(count))}
                self._send(200, {**answer, "count": count, "max_model_len": 4096} if server.style == "vllm" else answer)
            elif self.path == "/v1/chat/completions":
                with lock:
                    server.chats += 1
                text = server.reply(body["messages"], body)
                self._send(200, {"id": "x", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 1}})
            else:
                self._send(404, {"error": f"no route {self.path}"})

    return Handler


@contextmanager
def tokenize_server(**options: Any) -> Iterator[TokenizeServer]:
    """A `TokenizeServer` listening on 127.0.0.1 (a free port) in a thread, for the block."""
    server = TokenizeServer(**options)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, name="tokenize-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
