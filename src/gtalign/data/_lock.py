"""An exclusive lock on an output file, so two runs never append to the same file at once.

The lock is ``fcntl.flock`` on a sibling ``NAME.lock`` file rather than on the output itself,
because a resumed run may replace the output (``os.replace``) while it holds the lock. The kernel
releases a flock when its holder dies, so a crash never leaves the output locked; the lock file
is removed on release.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OutputLocked", "lock_path", "output_lock"]

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no protection against a concurrent run
    fcntl = None  # type: ignore[assignment]


class OutputLocked(RuntimeError):
    """Another process holds the output's lock; the message names the lock file and its holder."""


def lock_path(output: str | os.PathLike[str]) -> Path:
    """The lock file of ``output``: ``NAME.lock`` next to it."""
    path = Path(output)
    return path.with_name(path.name + ".lock")


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def output_lock(output: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of ``output`` for the block; yields the lock file's path.

    Raises `OutputLocked` at once (it never waits) when another process holds it.
    """
    path = lock_path(output)
    if fcntl is None:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLocked(f"{output} is being written by another run{_holder(path)}, which holds {path}") from None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder removes the file on release: a lock taken on a removed file guards nothing.
        if _same_file(fd, path):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
