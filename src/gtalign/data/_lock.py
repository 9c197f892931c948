"""An exclusive lock on an output file, so two runs never append to the same file at once.

The lock is ``fcntl.flock`` on a sibling ``NAME.lock`` file rather than on the output itself,
because a resumed run may replace the output (``os.replace``) while it holds the lock. The kernel
releases a flock when its holder dies, so a crash never leaves the output locked; the lock file
is removed on release. The lock is taken on the file the output path resolves to (symbolic links
followed), so two runs given two paths to one file (a link and its target) exclude each other.

Where ``fcntl`` is missing (Windows) there is no lock: `output_lock` logs a warning, once a process,
saying that nothing keeps a second run off the output.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCKING", "OutputLocked", "lock_path", "output_lock"]

_log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no protection against a concurrent run
    fcntl = None  # type: ignore[assignment]

LOCKING = fcntl is not None
"""Whether `output_lock` can lock on this system (it needs ``fcntl``, which Windows lacks)."""
_warned = False


class OutputLocked(RuntimeError):
    """Another process holds the output's lock; the message names the lock file and its holder."""


def lock_path(output: str | os.PathLike[str]) -> Path:
    """The lock file of ``output``: ``NAME.lock`` next to the file ``output`` resolves to (a
    symbolic link is followed, so a link and its target share one lock)."""
    path = Path(output).resolve()
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

    Raises `OutputLocked` at once (it never waits) when another process holds it. Without
    ``fcntl`` (Windows) nothing is locked, and the first call logs a warning saying so.
    """
    global _warned
    path = lock_path(output)
    if fcntl is None:
        if not _warned:
            _warned = True
            _log.warning(
                "no file locking on this system (fcntl is missing, e.g. on Windows): nothing keeps a second run "
                "off %s; do not start two runs on the same output", output,
            )
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
