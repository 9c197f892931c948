"""Streamed text from an in-process engine's worker thread to the event loop reading it.

Shared by the embedded engines (transformers, llama.cpp); torch-free, so the llama.cpp engine
streams without the transformers stack installed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Sequence

from gtalign.backends._base import Generation

_log = logging.getLogger(__name__)


class _Relay:
    """A streamed row's text on its way from the worker thread to the event loop reading it.

    `offer` gets the row's whole text so far at every step and sends on only what is new and
    final: never a trailing U+FFFD (a character whose bytes are split across tokens) nor a tail
    that could be the start of a stop string, so the pieces add up to `Generation.text`. The
    job's future, once done, follows the pieces on the same queue.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, stops: Sequence[str]) -> None:
        self.loop = loop
        self.stops = tuple(s for s in stops if s)
        self.items: asyncio.Queue[str | concurrent.futures.Future[Generation]] = asyncio.Queue()
        self.sent = ""

    def offer(self, text: str) -> None:
        text = text.rstrip("\ufffd")
        if any(stop in text for stop in self.stops):
            return  # the row ends at this step: `finish` sends the text up to the stop string
        keep = max((k for stop in self.stops for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
        self._send(text[: len(text) - keep])

    def finish(self, result: Generation) -> None:
        if result.ok and not result.text.startswith(self.sent):
            _log.warning("stream: the streamed text %r is not a prefix of the final text %r", self.sent, result.text)
        self._send(result.text)

    def put(self, item: str | concurrent.futures.Future[Generation]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is reading any more
            pass

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.put(text[len(self.sent):])
            self.sent = text
