"""A spy on the embedded backend's worker, for tests that must not depend on how fast the machine is.

Every decoding step of a batch ends in the batch's stopping check (`_embedded._RowStops`), so a
subclass of it sees each step as it happens: it counts the steps of each batch, keeps what the
check decided for each row (where it ended, whether because its caller gave up), and can hold the
worker at one step until the test has done what it needs (cancelled a call, read a delta). Facts
such as "the cancelled row was decoded for exactly 12 steps and its batch then ended" replace
comparisons of measured times. Import it only where torch is installed.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from gtalign.backends import _embedded

HANG_GUARD = 60.0
"""Seconds a held worker or a waiting test gives up after: a guard against a hang, never a measure."""


class Steps:
    """What the worker decoded since `watch_steps`: ``batches``, one stopping check per batch, each
    with ``limits`` (the rows' token limits), ``steps`` (steps decoded), ``done_at`` and ``cancelled``
    (per row: the step the row ended at, and whether its caller had given up), ``jobs``.

    With ``hold_at``, the first batch to reach that step waits there (before its check of that step)
    until `release` is set or a call of the batch is cancelled; ``held_until_guard`` records a hold
    that ran out `HANG_GUARD` instead."""

    def __init__(self, hold_at: int | None) -> None:
        self.hold_at = hold_at
        self.batches: list[Any] = []
        self.threads: set[int] = set()
        self.reached = threading.Event()
        self.release = threading.Event()
        self.held_until_guard = False

    async def wait_for_hold(self) -> None:
        """Return once the worker is held at ``hold_at`` (fails after `HANG_GUARD` seconds)."""
        assert await asyncio.to_thread(self.reached.wait, HANG_GUARD), f"the worker never reached step {self.hold_at}"

    def _step(self, check: Any) -> None:
        self.threads.add(threading.get_ident())
        if check.steps != self.hold_at or self.reached.is_set():
            return
        self.reached.set()
        for _ in range(int(HANG_GUARD / 0.005)):
            if self.release.wait(0.005) or any(job.cancelled.is_set() for job in check.jobs):
                return
        self.held_until_guard = True


def watch_steps(monkeypatch: pytest.MonkeyPatch, hold_at: int | None = None) -> Steps:
    """Spy on every batch the embedded worker decodes from now on (for the rest of the test)."""
    spy = Steps(hold_at)

    class SpyStops(_embedded._RowStops):
        def __init__(self, tokenizer: Any, prompt_width: int, rows: Any, eos_ids: frozenset[int]) -> None:
            super().__init__(tokenizer, prompt_width, rows, eos_ids)
            self.jobs = [row.job for row in rows]
            self.steps = 0
            spy.batches.append(self)

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            self.steps += 1
            spy._step(self)
            return super().__call__(input_ids, scores, **kwargs)

    monkeypatch.setattr(_embedded, "_RowStops", SpyStops)
    return spy


def one_batch_of(backend: _embedded.EmbeddedBackend, monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """Make the backend's next batches close when their ``calls``-th call arrives, however slowly the
    calls come (the batch window becomes a hang guard), instead of after a few milliseconds."""
    monkeypatch.setattr(backend, "max_batch", calls)
    monkeypatch.setattr(backend, "batch_window", HANG_GUARD)
