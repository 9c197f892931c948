"""Clients that go away before their answer begins: the steering is cancelled, the slot is free at
once, and the request is a quiet 499 (nginx's "client closed request"), never a 500 with a
traceback. Served by uvicorn on 127.0.0.1 and spoken to over raw sockets, since the point is a
client that hangs up mid-request."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.server._helpers import KEY, MODEL, Served, StallingBackend, response_for, script, serve

QUESTION = [{"role": "user", "content": "What is 2+2?"}]
_PATIENCE = 30.0
"""Seconds a test waits for the server to reach a state: generous, for a loaded 2-core machine."""


def _health(served: Served) -> dict[str, Any]:
    return httpx.get(f"{served.root}/health", timeout=_PATIENCE).json()


def _until(served: Served, ready: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    """Poll ``/health`` until ``ready`` holds (bounded), and return that health report."""
    deadline = time.monotonic() + _PATIENCE
    while not ready(health := _health(served)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {_PATIENCE:g} s; /health says {health}")
        time.sleep(0.02)
    return health


def _head(served: Served, length: int) -> bytes:
    host = served.root.removeprefix("http://")
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _connect(served: Served) -> socket.socket:
    host, _, port = served.root.removeprefix("http://").partition(":")
    return socket.create_connection((host, int(port)), timeout=_PATIENCE)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_client_gone_before_the_answer_frees_its_slot_and_cancels_the_model(stream: bool, caplog) -> None:
    """With one slot and a model that never answers, a client hangs up mid-steering: the backend
    call is cancelled and the next request is served (not 429)."""
    backend = StallingBackend(script)
    body = json.dumps({"model": MODEL, "messages": QUESTION, "stream": stream}).encode()
    with caplog.at_level(logging.INFO, logger="gtalign.server"), serve(backend=backend, max_concurrency=1) as served:
        with _connect(served) as gone:
            gone.sendall(_head(served, len(body)) + body)
            assert backend.stalled.wait(_PATIENCE), "the request never reached the model"
        assert backend.cancelled.wait(_PATIENCE), "the model's call was not cancelled when the client left"
        health = _until(served, lambda h: h["in_flight"] == 0 and h["requests"], "the slot to come back")
        with openai.OpenAI(base_url=served.base_url, api_key=KEY, max_retries=0, timeout=_PATIENCE) as client:
            answer = client.chat.completions.create(model=MODEL, messages=QUESTION)
        assert answer.choices[0].message.content == response_for("DQ_DA")
    assert health["requests"] == {"499": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "gtalign.server"]
    assert len(lines) == 2 and "http=499" in lines[0] and f"stream={str(stream).lower()}" in lines[0]
    assert not any(r.exc_info for r in caplog.records)


def test_a_client_gone_while_sending_its_body_is_a_quiet_499(caplog) -> None:
    """Headers and half the body, then the client hangs up: one log line, no traceback, no 500."""
    body = json.dumps({"model": MODEL, "messages": QUESTION}).encode()
    with caplog.at_level(logging.INFO), serve() as served:
        with _connect(served) as gone:
            gone.sendall(_head(served, len(body)) + body[: len(body) // 2])
        health = _until(served, lambda h: bool(h["requests"]), "the abandoned request to be counted")
    assert health["requests"] == {"499": 1}
    assert not any(r.exc_info for r in caplog.records), "a client that left was logged with a traceback"
    lines = [r.getMessage() for r in caplog.records if r.name == "gtalign.server"]
    assert len(lines) == 1 and "http=499" in lines[0]
