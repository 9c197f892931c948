"""Token counts from an HTTP model server's own tokenizer, for `HTTPBackend.count_tokens`.

The count that matters is the served model's, and only the server has its tokenizer, so the
backend asks the server's tokenize endpoint where its kind has one (`TOKENIZE`):

============= ===========================================================================
kind          request (at the server root, beside ``/v1``) and the answer read
============= ===========================================================================
``vllm``      ``POST /tokenize {"model", "prompt", "add_special_tokens": false}`` ->
``sglang``    ``{"count", "tokens", "max_model_len"}``
``llama.cpp`` ``POST /tokenize {"content", "add_special": false}`` -> ``{"tokens": [...]}``
============= ===========================================================================

Other kinds have none, so nothing is sent. The first request is a probe: a 404, 405 or 501
marks the endpoint unsupported for the life of the counter (a server built without it, a proxy
in front), so a run pays for that once. Any other failure (a timeout, a 5xx, a body without a
count) gives None for that call only and is not retried, and `PROBE_TRIES` such failures before
any count also mark it unsupported: a count is a by-product of a row, never a reason to fail or
slow it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import httpx

from gtalign._loop_connections import track

__all__ = ["PROBE_TRIES", "TOKENIZE", "ServerTokenizer", "TokenizeRoute"]


@dataclass(frozen=True, slots=True)
class TokenizeRoute:
    """How one kind of server tokenizes: the body for a text, and the count in its answer."""

    style: Literal["openai", "llama.cpp"]

    def body(self, model: str, text: str) -> dict[str, Any]:
        if self.style == "openai":
            return {"model": model, "prompt": text, "add_special_tokens": False}
        return {"content": text, "add_special": False}

    @staticmethod
    def count(data: Any) -> int | None:
        """``count`` when the answer has one, else the length of ``tokens`` (None: neither)."""
        if not isinstance(data, Mapping):
            return None
        count = data.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
        tokens = data.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None


TOKENIZE: Mapping[str, TokenizeRoute] = MappingProxyType(
    {"vllm": TokenizeRoute("openai"), "sglang": TokenizeRoute("openai"), "llama.cpp": TokenizeRoute("llama.cpp")}
)
"""The server kinds with a tokenize endpoint, and how each is asked (see the module docstring)."""

_UNSUPPORTED = frozenset({404, 405, 501})
PROBE_TRIES = 3
"""Failed probes (no count, not a 404/405/501) after which the endpoint is taken as unsupported."""


class ServerTokenizer:
    """Counts tokens at ``root/tokenize`` for one server and model.

    root: the server's root URL (``base_url`` without ``/v1``). headers: sent with every request
    (the API key). limit: requests in flight at once per `count` call. timeout: seconds per request.
    transport: a test hook, as for `ChatClient`.

    ``supported`` is None until the first answer, then whether the server has the endpoint.
    """

    def __init__(self, root: str, model: str, *, headers: Mapping[str, str], limit: int, timeout: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.root = root.rstrip("/")
        self.model = model
        self.headers = dict(headers)
        self.limit = max(1, limit)
        self.timeout = timeout
        self.transport = transport
        self.supported: bool | None = None
        self.requests = 0
        self._failed_probes = 0
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probe_lock: asyncio.Lock | None = None

    async def count(self, route: TokenizeRoute, texts: Sequence[str]) -> list[int] | None:
        """Each text's token count, or None when the server cannot count (now or ever)."""
        if self.supported is False:
            return None
        if not texts:
            return []
        http = self._client()
        counts: list[int | None] = []
        if self.supported is None:
            assert self._probe_lock is not None
            async with self._probe_lock:  # one probe, however many rows ask at once
                if self.supported is None:
                    counts.append(await self._one(http, route, texts[0]))
                    if self.supported is None:  # a transient failure: decide on a later call
                        self._failed_probes += 1
                        if self._failed_probes >= PROBE_TRIES:
                            self.supported = False
                        return None
        if self.supported is False:
            return None
        rest = texts[len(counts):]
        for start in range(0, len(rest), self.limit):
            chunk = rest[start : start + self.limit]
            counts.extend(await asyncio.gather(*(self._one(http, route, text) for text in chunk)))
        if any(count is None for count in counts):
            return None
        return [count for count in counts if count is not None]

    async def aclose(self) -> None:
        """Close the connections of this loop (those of an ended loop are closed by the
        `gtalign._sync.run_sync` that ran it, or left to the garbage collector)."""
        http, loop, self._http, self._loop = self._http, self._loop, None, None
        if http is not None and loop is asyncio.get_running_loop():
            await http.aclose()

    async def release_connections(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections opened in ``loop`` (the running one, about to end)."""
        if self._loop is loop:
            await self.aclose()

    def _client(self) -> httpx.AsyncClient:
        """This loop's client (an httpx pool and a lock belong to one event loop)."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(base_url=self.root, headers=self.headers, timeout=self.timeout,
                                           transport=self.transport)
            self._loop = loop
            track(self)
            self._probe_lock = asyncio.Lock()
        return self._http

    async def _one(self, http: httpx.AsyncClient, route: TokenizeRoute, text: str) -> int | None:
        self.requests += 1
        try:
            async with asyncio.timeout(self.timeout):
                response = await http.post("/tokenize", content=json.dumps(route.body(self.model, text)))
        except (TimeoutError, httpx.HTTPError):
            return None
        if response.status_code in _UNSUPPORTED:
            self.supported = False
            return None
        if response.status_code != 200:
            return None
        try:
            count = route.count(json.loads(response.content))
        except ValueError:
            return None
        if count is not None:
            self.supported = True
        return count
