"""Run a coroutine from synchronous code, also when an event loop is already running
(Jupyter, or a trainer that calls a sync reward function from inside async code). The HTTP
connections opened in the loop are closed before it ends (`gtalign._loop_connections`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


async def _releasing(coro: Coroutine[Any, Any, T]) -> T:
    from gtalign._loop_connections import release_loop_connections

    try:
        return await coro
    finally:
        await release_loop_connections()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_releasing(coro))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_releasing(coro))
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="gtalign-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
