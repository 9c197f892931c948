"""The fake OpenAI-compatible server in its own process, as a real model server would be, for the
benchmarks that time a client against it (its CPU is then not the client's)."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any


def _serve(conn: Connection, script: Any, options: dict[str, Any]) -> None:
    """Child process: run the fake server until told to stop, then send its counters back."""
    from gtalign.testing import FakeOpenAI

    with FakeOpenAI(script, **options) as server:
        conn.send(server.base_url)
        conn.recv()
        conn.send({"requests": server.requests, "max_in_flight": server.max_in_flight, "counts": dict(server.counts)})


@contextlib.contextmanager
def served(script: Any, **options: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """`FakeOpenAI(script, **options)` in a spawned process (``script`` must pickle):
    ``(base_url, counters)``, ``counters`` (requests, max in flight, counts by kind) filled when the
    block exits."""
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=_serve, args=(theirs, script, options), daemon=True)
    child.start()
    counters: dict[str, Any] = {}
    try:
        yield ours.recv(), counters
    finally:
        ours.send("stop")
        counters.update(ours.recv())
        child.join(timeout=10)
