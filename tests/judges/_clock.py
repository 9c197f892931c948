"""Test helpers for time and unreachable servers: a fake `Clock` and a port that refuses connections."""

from __future__ import annotations

import asyncio
import socket


class FakeClock:
    """A `gtalign._chat_client.Clock` whose time moves only when told, so waits and spacing are exact.

    ``sleep`` records the wait, advances the time by it (plus ``overhead``: each wait taking that
    much longer, as on a loaded machine) and yields to the loop once. ``advance`` moves the time
    from a fake server's script (a request that takes time). Sleeps do not overlap, so spacing is
    exact for one waiter at a time (concurrency 1).
    """

    def __init__(self, overhead: float = 0.0) -> None:
        self.now = 0.0
        self.overhead = overhead
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds + self.overhead
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed), so connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
