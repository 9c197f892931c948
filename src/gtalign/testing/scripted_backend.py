"""A scripted `ChatBackend` for tests of code that sits above the model (steering, the proxy).

It stands in for a model at the model boundary only: a script maps (messages, prefill) to the
text the "model" would write next; the backend applies stop strings and ``max_tokens`` (counted
in whitespace-separated words) the way a server would, records every call, and can be told to
fail. Tests of the real models live with the backends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field

from gtalign._chat_client import TextStream
from gtalign.backends._base import Generation, Message, SamplingParams, constraint_record
from gtalign.protocol import Stage

__all__ = ["BackendCall", "ScriptedBackend", "ScriptedConstrainingBackend"]

BackendScript = Callable[[Sequence[Message], str], str]


@dataclass(frozen=True, slots=True)
class BackendCall:
    """One call the backend received."""

    messages: tuple[Message, ...]
    prefill: str
    params: SamplingParams


@dataclass
class ScriptedBackend:
    """``script(messages, prefill) -> continuation``; ``fail_calls`` lists call numbers (0-based)
    that return a ``failed`` generation; ``latency`` adds an async sleep per call. ``stream``
    hands the same text out a word at a time, ``word_delay`` seconds apart."""

    script: BackendScript
    name: str = "scripted"
    model: str = "scripted-model"
    latency: float = 0.0
    word_delay: float = 0.0
    fail_calls: frozenset[int] = frozenset()
    calls: list[BackendCall] = field(default_factory=list)

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> Generation:
        number = len(self.calls)
        self.calls.append(BackendCall(tuple(dict(m) for m in messages), prefill, params))
        start = time.perf_counter()
        if self.latency:
            await asyncio.sleep(self.latency)
        if number in self.fail_calls:
            return Generation("", "error", status="failed", reason=f"scripted failure of call {number}",
                              latency=time.perf_counter() - start)
        text = self.script(messages, prefill)
        finish, matched = "stop", None
        cuts = [(text.find(s), s) for s in params.stop if s and text.find(s) >= 0]
        if cuts:
            cut, matched = min(cuts)
            text = text[:cut]
        words = text.split()
        if len(words) > params.max_tokens:
            text, finish, matched = " ".join(words[: params.max_tokens]), "length", None
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in messages) + len(prefill.split())
        return Generation(text, finish, matched, tokens_in=prompt_words, tokens_out=len(text.split()),
                          latency=time.perf_counter() - start)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> TextStream[Generation]:
        """`generate`, streamed like a server streams: the text in word-sized deltas, then the Generation."""
        return TextStream(self._stream_source(messages, prefill, params))

    async def _stream_source(
        self, messages: Sequence[Message], prefill: str, params: SamplingParams
    ) -> AsyncGenerator[str | Generation, None]:
        generation = await self.generate(messages, prefill=prefill, params=params)
        for piece in re.findall(r"\s*\S+|\s+", generation.text):
            if self.word_delay:
                await asyncio.sleep(self.word_delay)
            yield piece
        yield generation

    async def aclose(self) -> None:
        return None


@dataclass
class ScriptedConstrainingBackend(ScriptedBackend):
    """A `ScriptedBackend` that says it enforces every `Constraint` (`constraint_support` names
    ``how``) and records so, as a constraining server does: for tests of what callers ask for and
    record. It enforces nothing itself; its script must write text in the grammar."""

    how: str = "scripted"

    def constraint_support(self, stage: Stage) -> str | None:
        return self.how

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> Generation:
        generation = await ScriptedBackend.generate(self, messages, prefill=prefill, params=params)
        if params.constraint is None:
            return generation
        return dataclasses.replace(generation, extra={**generation.extra, "constraint": constraint_record(params.constraint, self.how)})
