"""Helpers for the proxy tests: a scripted four-block "model", and the real app served by uvicorn
on 127.0.0.1 (a free port) in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import uvicorn

from gtalign.backends._base import ChatBackend, Generation, Message, SamplingParams
from gtalign.server import ServerConfig, create_app
from gtalign.testing import ScriptedBackend, ScriptedConstrainingBackend
from gtalign.testing.scripted_backend import BackendCall

__all__ = ["KEY", "MODEL", "PAYOFF", "Served", "StallingBackend", "response_for", "script", "scripted", "serve"]

KEY = "sk-test-alice"
MODEL = "gtalign-test"

PAYOFF = (
    '{"DQ_AQ": {"LLM": 2.6, "user": 2.6}, "DQ_CQ": {"LLM": 1.0, "user": 0.9}, "DQ_DA": {"LLM": 3.0, "user": 3.1}, '
    '"VQ_AQ": {"LLM": 1.5, "user": 1.4}, "VQ_CQ": {"LLM": 0.5, "user": 0.4}, "VQ_DA": {"LLM": 1.0, "user": 1.1}}'
)
"""Under the sum rule DQ_DA wins (6.1 against DQ_AQ's 5.2); the research LLM-side shift by 1 adds 1 to
every LLM payoff and 1 to the user's AQ payoffs, so DQ_AQ wins after pricing (7.2 against 7.1)."""

_KEY_IN_PREFILL = re.compile(r"\b([DV]Q_(?:DA|CQ|AQ))\b")


def response_for(key: str) -> str:
    """What the scripted model answers once ``key`` has been chosen."""
    action = key.partition("_")[2]
    return {
        "DA": "The answer is four, because two plus two makes four.",
        "CQ": "Do you mean two plus two in base ten?",
        "AQ": "It is four. Do you want the proof as well?",
    }[action]


def script(messages: Sequence[Mapping[str, str]], prefill: str) -> str:
    """The first call writes the whole answer (the backend cuts it at the engine's stop); a
    continuation finishes ``<analyze>`` and writes the response for the key in the prefill."""
    if "</payoff>" not in prefill:
        answer = (
            "<thinking>This is DQ: a definite question with one right answer; answering directly is best.</thinking>\n"
            f"<payoff>{PAYOFF}</payoff>\n"
            "<analyze>DQ_DA dominates. Chosen key: DQ_DA.</analyze>\n"
            f"<response>{response_for('DQ_DA')}</response>"
        )
        return answer[len(prefill):] if answer.startswith(prefill) else answer
    found = _KEY_IN_PREFILL.findall(prefill.rpartition("</payoff>")[2])
    key = found[-1] if found else "DQ_DA"
    tail = "" if "</analyze>" in prefill else " It has the best total welfare.\n</analyze>\n"
    return f"{tail}<response>\n{response_for(key)}\n</response>"


def scripted(latency: float = 0.0, *, constraining: bool = False, **kwargs: object) -> ScriptedBackend:
    """The scripted model; ``constraining``: one that says it enforces the grammar."""
    kind = ScriptedConstrainingBackend if constraining else ScriptedBackend
    return kind(script, latency=latency, **kwargs)  # type: ignore[arg-type]


@dataclass
class StallingBackend(ScriptedBackend):
    """The scripted model, except that the calls numbered in ``stall`` (0-based) never answer: they
    wait until cancelled. ``stalled`` and ``cancelled`` are set when such a call starts waiting and
    when it is cancelled, for a test thread to wait on (the server runs in another thread)."""

    stall: frozenset[int] = frozenset({0})
    stalled: threading.Event = field(default_factory=threading.Event)
    cancelled: threading.Event = field(default_factory=threading.Event)

    async def generate(
        self, messages: Sequence[Message], *, prefill: str = "", params: SamplingParams = SamplingParams()
    ) -> Generation:
        if len(self.calls) not in self.stall:
            return await super().generate(messages, prefill=prefill, params=params)
        self.calls.append(BackendCall(tuple(dict(m) for m in messages), prefill, params))
        self.stalled.set()
        try:
            await asyncio.Event().wait()  # nobody sets it: only a cancellation ends this call
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable: the event is never set")


def backend() -> ScriptedBackend:
    """``module:attr`` target for the subprocess test (``--backend tests.server._helpers:backend``)."""
    return scripted()


@dataclass(frozen=True)
class Served:
    """A running proxy: where it listens and what it runs on."""

    base_url: str
    root: str
    backend: ChatBackend | None
    config: ServerConfig
    app: object


@contextlib.contextmanager
def serve(
    config: ServerConfig | None = None, backend: ChatBackend | None = None, *, from_config: bool = False, **changes: object
) -> Iterator[Served]:
    """Serve the proxy app on 127.0.0.1 with uvicorn in a daemon thread until the block exits.

    The backend is ``backend``, a fresh scripted one, or (``from_config``) the one the app builds
    from ``config.backend`` at start-up."""
    base = config or ServerConfig(model_name=MODEL, keys=_default_keys(), port=0)
    config = base.with_changes(**changes) if changes else base
    if not from_config:
        backend = backend or scripted()
    app = create_app(config, backend)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="gtalign-test-proxy", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the proxy did not start")
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    root = f"http://127.0.0.1:{port}"
    try:
        yield Served(f"{root}/v1", root, backend, config, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _default_keys() -> tuple:
    from gtalign.server import ApiKey

    return (
        ApiKey(KEY, id="alice"),
        ApiKey("sk-test-bob", id="bob", pricing="research-llm-shift", allow_override=True),
    )
