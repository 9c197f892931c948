"""ConcurrencyGate: slots, the queue, and wake-ups that survive a cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from gtalign.server._limits import ConcurrencyGate, GateFull


async def settle(rounds: int = 50) -> None:
    """Let every ready task run (no timing: a fixed number of loop turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_a_full_gate_without_a_queue_refuses_at_once() -> None:
    gate = ConcurrencyGate(1)
    await gate.acquire()
    with pytest.raises(GateFull):
        await gate.acquire()
    assert (gate.in_flight, gate.rejected) == (1, 1)


async def test_a_queued_request_gets_the_slot_when_it_is_freed() -> None:
    gate = ConcurrencyGate(1, max_queue=1, queue_timeout=3600)
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    await settle()
    assert gate.waiting == 1 and not waiter.done()
    await gate.release()
    await settle()
    assert waiter.done() and gate.in_flight == 1 and gate.waiting == 0


async def test_a_queued_request_whose_client_left_gives_its_turn_to_the_next() -> None:
    gate = ConcurrencyGate(1, max_queue=2, queue_timeout=3600)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    await settle()
    second = asyncio.create_task(gate.acquire())
    await settle()
    assert gate.waiting == 2
    first.cancel()
    await settle()
    assert first.cancelled() and gate.waiting == 1
    await gate.release()
    await settle()
    assert second.done() and second.exception() is None
    assert (gate.in_flight, gate.waiting) == (1, 0)


async def test_a_waiter_cancelled_right_after_its_wake_up_gives_the_slot_to_the_next() -> None:
    """Two requests queue; the slot is freed and the first woken is cancelled before it runs (its
    client left). It must not take the slot; the second gets it now, not at its queue timeout."""
    gate = ConcurrencyGate(1, max_queue=2, queue_timeout=3600)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    await settle()
    second = asyncio.create_task(gate.acquire())
    await settle()
    assert gate.waiting == 2
    await gate.release()
    first.cancel()
    await settle()
    assert first.cancelled(), "a cancelled request took the slot"
    assert second.done() and second.exception() is None, "the freed slot went to nobody"
    assert (gate.in_flight, gate.waiting) == (1, 0)
