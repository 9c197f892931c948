"""Bounded concurrency for the proxy: a fixed number of slots and a bounded, time-limited wait.

A model server has a fixed capacity; queueing without bound in front of it only turns overload
into timeouts. The gate admits ``capacity`` requests at once, lets at most ``max_queue`` more wait
at most ``queue_timeout`` seconds for a slot, and tells the rest to come back (429 + Retry-After).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["ConcurrencyGate", "GateFull"]


class GateFull(Exception):
    """No slot and no room (or no time left) to wait for one."""


class ConcurrencyGate:
    """``async with gate.slot():`` runs the body in one of ``capacity`` slots or raises `GateFull`."""

    def __init__(self, capacity: int, *, max_queue: int = 0, queue_timeout: float = 0.0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.in_flight = 0
        self.waiting = 0
        self.max_in_flight = 0
        self.rejected = 0
        self._freed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._freed is None:  # created in the serving loop, not where the app was built
            self._freed = asyncio.Condition()
        return self._freed

    async def acquire(self) -> None:
        if self.in_flight < self.capacity and not self.waiting:
            self._take()
            return
        if self.waiting >= self.max_queue or self.queue_timeout <= 0:
            self.rejected += 1
            raise GateFull
        freed = self._condition()
        self.waiting += 1
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the inner result when
            # the cancel of a client that left arrives just after the wake-up, so a request nobody
            # waits for would take the slot and hold it until its steering ends.
            async with asyncio.timeout(self.queue_timeout), freed:
                await freed.wait_for(lambda: self.in_flight < self.capacity)
                self._take()
        except TimeoutError:
            self.rejected += 1
            raise GateFull from None
        finally:
            self.waiting -= 1

    def _take(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def release(self) -> None:
        self.in_flight -= 1
        if self.waiting and self._freed is not None:
            async with self._freed:
                # Every waiter re-checks the predicate, so waking all is safe; waking one is not: a
                # waiter cancelled (client gone, queue timeout) right after its wake-up swallows it
                # on Python < 3.13, and the next one would wait for a slot that is already free.
                self._freed.notify_all()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            await self.release()
