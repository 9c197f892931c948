"""HTTP connections belong to the event loop that opened them, and a loop's end does not close
them: their sockets wait for the garbage collector (a ``ResourceWarning`` each). Clients register
here when they open a connection in a loop; `release_loop_connections` closes every registered
client's connections of the running loop, and `gtalign._sync.run_sync` calls it before each loop
it runs ends. A client used again later opens new connections in its new loop."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Protocol

__all__ = ["LoopBound", "release_loop_connections", "track"]


class LoopBound(Protocol):
    async def release_connections(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections this object opened in ``loop`` (the running one)."""


_OPEN: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[LoopBound]] = weakref.WeakKeyDictionary()


def track(owner: LoopBound) -> None:
    """Remember that ``owner`` opened a connection in the running loop."""
    _OPEN.setdefault(asyncio.get_running_loop(), weakref.WeakSet()).add(owner)


async def release_loop_connections() -> None:
    """Close the connections every tracked client opened in the running loop (errors are ignored:
    a connection that cannot be closed cleanly is closed all the same)."""
    loop = asyncio.get_running_loop()
    owners = _OPEN.pop(loop, None)
    for owner in list(owners or ()):
        with contextlib.suppress(Exception):
            await owner.release_connections(loop)
