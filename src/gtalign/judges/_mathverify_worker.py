"""The math-verify worker process, run by `RuleJudge`, and the built-in math check it runs.

`RuleJudge` starts its workers with this explicit entry point instead of a multiprocessing pool:
multiprocessing's ``spawn`` and ``forkserver`` re-run the user's main script in every child, so a
script without an ``if __name__ == "__main__":`` guard ran again in each worker and got its math
rows back unscored. A worker started here imports math-verify (and, for a custom check, whatever
that check needs), never the script. It is started as ``python -P PATH/_mathverify_worker.py``
(falling back to ``python -m gtalign.judges._mathverify_worker`` when this file is not on disk):
run by its path it does not import the ``gtalign.judges`` package (httpx, numpy, the reward
package), which halves its start-up; ``-P`` keeps this file's folder off ``sys.path``.

The protocol, over the worker's stdin and stdout, is one frame per message (an 8-byte big-endian
length, then a pickle): the parent sends ``(sys_path, pickled_math_check)`` (the check
pickled on its own, so that it is loaded after ``sys.path`` is set; None for the built-in `check`,
whose result then travels as a plain ``(correct, detail)`` tuple); the worker answers
``("ready", pid)`` or ``("error", reason)``; then it answers each ``(response, reference)`` with
``("ok", result)`` or ``("error", reason)``. The end of its input stops it between rows. A row
can run for ever (a sympy call that hangs is why the parent has a timeout), so a worker also dies
with its parent mid-row, even when the parent is killed with SIGKILL and never closes the pipes:
on Linux the kernel sends it SIGKILL when the parent thread that started it exits
(``PR_SET_PDEATHSIG``; `RuleJudge` starts workers from threads that live as long as its pool), and
everywhere a daemon thread checks every `PARENT_POLL` seconds that its parent is still the one
that started it, and exits at once when not (that thread needs the GIL, which a long C call can
hold; the kernel's signal does not). It ignores SIGINT: a Ctrl-C reaches the whole process group,
and the parent decides when its workers stop.

Before it answers ``ready`` the worker runs `WARM_UP_ROWS` through its check, so that the first
real rows do not pay for sympy's and math-verify's first-use imports and caches (up to ~200 ms on
a row with a square root). The built-in check keeps the last `GOLD_CACHE_SIZE` parsed gold
answers: epochs and repeated prompts send the same reference again.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import signal
import struct
import sys
import threading
import time
from typing import IO, Any

__all__ = ["GOLD_CACHE_SIZE", "PARENT_POLL", "WARM_UP_ROWS", "check", "parse_gold", "read_frame", "write_frame"]

_HEADER = struct.Struct(">Q")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_POLL = 0.5
"""Seconds between two checks that the worker's parent is alive."""
GOLD_CACHE_SIZE = 1024
"""Parsed gold answers the built-in check keeps, most recently used first."""
WARM_UP_ROWS: tuple[tuple[str, str], ...] = (
    ("So the answer is \\boxed{12}.", "\\frac{\\sqrt{3}}{2}"),
    ("$\\boxed{0.5}$", "\\frac{1}{2}"),
    ("\\boxed{2x+1}", "1+2x"),
    ("\\boxed{\\frac{\\pi}{2}}", "(1, 2)"),
)
"""``(response, reference)`` rows a worker checks before it is ready: integers in prose, fractions,
roots, decimals, polynomials, pi and intervals, the usual forms of a MATH answer (about 0.3 s)."""


def write_frame(stream: IO[bytes], message: Any) -> None:
    """Write one message and flush it."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's pickle, or None at the end of the stream."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    return _read_exactly(stream, _HEADER.unpack(header)[0])


def _error(exc: BaseException) -> tuple[str, str]:
    return "error", f"{type(exc).__name__}: {exc}"


def _exit_with_parent(parent: int, interval: float = PARENT_POLL) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit(1)``) once its parent is no longer
    ``parent``: an orphan is adopted by init or a subreaper, so its parent pid changes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    thread = threading.Thread(target=watch, name="gtalign-parent-watch", daemon=True)
    thread.start()
    return thread


def _die_with_parent_thread() -> None:
    """On Linux, have the kernel SIGKILL this process when the thread that started it exits; a
    no-op where ``prctl`` is unavailable (the watch thread still covers the parent)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), ctypes.c_ulong(0), ctypes.c_ulong(0),
                   ctypes.c_ulong(0))
    except (OSError, AttributeError, TypeError, ValueError):
        return


@functools.lru_cache(maxsize=GOLD_CACHE_SIZE)
def _parse_gold_text(text: str) -> tuple[Any, ...]:
    from math_verify import parse

    wrapped = [f"\\boxed{{{text}}}", f"${text}$", text]
    candidates = [text, *wrapped] if "\\boxed" in text else wrapped
    for candidate in candidates:
        parsed = parse(candidate, parsing_timeout=None)
        if parsed:
            return tuple(parsed)
    return ()


def parse_gold(reference: str) -> list[Any]:
    """math-verify's parse of a gold answer: tried as ``\\boxed{...}``, then ``$...$``, then raw
    (raw first when it already carries ``\\boxed``); empty when none parses. Cached by text (a
    fresh list each call: the parsed sympy objects are immutable and shared)."""
    return list(_parse_gold_text(reference.strip()))


def check(response: str, reference: str) -> tuple[bool | None, str]:
    """The built-in math check (`gtalign.judges.check_math` returns it as a `MathCheck`):
    ``(correct, detail)``, ``correct`` None when the reference does not parse. math-verify's
    timeouts are off: run it under an outer timeout."""
    from math_verify import parse, verify

    gold = parse_gold(reference)
    if not gold:
        return None, f"math-verify could not parse the reference {reference[:80]!r}"
    answer = parse(response, parsing_timeout=None)
    if not answer:
        return False, "no final answer found in the response"
    correct = bool(verify(gold, answer, timeout_seconds=None))
    return correct, f"gold={str(gold[-1])[:80]} answer={str(answer[-1])[:80]}"


def _warm_up() -> None:
    """Run the built-in check on `WARM_UP_ROWS` (whatever the worker's check: a custom one may use
    math-verify too, and must not be called on rows it never asked for), so that no row's time
    pays for math-verify's and sympy's first-use imports and caches; the gold cache is emptied
    again afterwards."""
    try:
        for response, reference in WARM_UP_ROWS:
            check(response, reference)
    except Exception:  # a broken install or check shows on the first row, with its reason
        pass
    _parse_gold_text.cache_clear()


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    setup = read_frame(requests)
    if setup is None:
        return
    try:
        sys_path, pickled_check = pickle.loads(setup)
        sys.path[:] = list(sys_path)  # before unpickling: the check may live in the caller's modules
        math_check = check if pickled_check is None else pickle.loads(pickled_check)
    except Exception as exc:
        write_frame(replies, _error(exc))
        return
    _warm_up()
    write_frame(replies, ("ready", os.getpid()))
    while (request := read_frame(requests)) is not None:
        try:
            reply: tuple[str, Any] = ("ok", math_check(*pickle.loads(request)))
            write_frame(replies, reply)
        except (BrokenPipeError, KeyboardInterrupt):
            raise
        except Exception as exc:  # the check raised, or its result does not pickle
            write_frame(replies, _error(exc))


def main() -> None:
    """Serve requests on stdin/stdout; whatever the checks print goes to stderr instead."""
    parent = os.getppid()
    _die_with_parent_thread()
    _exit_with_parent(parent)  # also closes the race: a parent gone before prctl is seen at once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # math-verify warns that its own timeout is disabled; the parent enforces one, so that is noise.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        _serve(requests, replies)
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
