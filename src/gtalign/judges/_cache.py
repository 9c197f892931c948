"""A persistent cache of judge verdicts, so a rerun or a repeated response costs no judge call.

One SQLite file in WAL mode (readers never block the writer, several processes may share it),
keyed by `JudgeRequest.cache_key` over the judge, the model with its sampling settings, and the
rubric's ``name@version``. Only ``ok`` verdicts are stored: a failure is retried on the next run.
The async methods run the blocking SQLite calls in a worker thread behind one lock, so many
coroutines of one process can use one cache at once.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from gtalign.reward._types import Verdict

__all__ = ["VerdictCache", "VerdictCacheError", "default_cache_path"]

_SCHEMA_VERSION = 1
_CHUNK = 500


class VerdictCacheError(RuntimeError):
    """The cache file cannot be opened or used."""


def default_cache_path() -> Path:
    """``$GTALIGN_CACHE_DIR`` or ``$XDG_CACHE_HOME/gtalign`` or ``~/.cache/gtalign``, file ``judge-verdicts.sqlite3``."""
    base = os.environ.get("GTALIGN_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "judge-verdicts.sqlite3"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "gtalign" / "judge-verdicts.sqlite3"


class VerdictCache:
    """Verdicts by cache key in one SQLite file (``path`` or `default_cache_path`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            self._setup(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise VerdictCacheError(
                f"cannot open the judge verdict cache at {self.path} ({type(exc).__name__}: {exc}); "
                "pass another path, delete the file if it is corrupt, or run without a cache (cache=None)"
            ) from exc

    @staticmethod
    def _setup(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=30000")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {version} is not {_SCHEMA_VERSION} (written by another gtalign version)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS verdicts ("
            "key TEXT PRIMARY KEY, value REAL NOT NULL, raw TEXT, judge TEXT NOT NULL, created REAL NOT NULL"
            ") WITHOUT ROWID"
        )
        db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise VerdictCacheError(f"the verdict cache at {self.path} is closed; create a new VerdictCache")
        return self._db

    def get(self, key: str) -> Verdict | None:
        """The cached verdict for ``key`` (``cached=True``), or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Verdict]:
        """Cached verdicts for those of ``keys`` that have one."""
        unique = list(dict.fromkeys(keys))
        found: dict[str, Verdict] = {}
        with self._lock:
            db = self._conn()
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT key, value, raw, judge FROM verdicts WHERE key IN ({marks})", chunk).fetchall()
                for key, value, raw, judge in rows:
                    found[key] = Verdict(float(value), "ok", raw=raw, judge=judge, cached=True)
        return found

    def put(self, key: str, verdict: Verdict) -> bool:
        """Store an ``ok`` verdict (True); anything else is not stored (False)."""
        return self.put_many({key: verdict}) == 1

    def put_many(self, items: Mapping[str, Verdict] | Sequence[tuple[str, Verdict]]) -> int:
        """Store the ``ok`` verdicts of ``items`` in one transaction; returns how many were stored."""
        pairs = items.items() if isinstance(items, Mapping) else items
        now = time.time()
        rows = [(key, v.value, v.raw, v.judge, now) for key, v in pairs if v.ok and v.value is not None]
        if not rows:
            return 0
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR REPLACE INTO verdicts (key, value, raw, judge, created) VALUES (?, ?, ?, ?, ?)", rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return len(rows)

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Verdict]:
        return await asyncio.to_thread(self.get_many, list(keys))

    async def aput(self, key: str, verdict: Verdict) -> bool:
        if not verdict.ok:
            return False
        return await asyncio.to_thread(self.put, key, verdict)

    async def aput_many(self, items: Mapping[str, Verdict] | Sequence[tuple[str, Verdict]]) -> int:
        return await asyncio.to_thread(self.put_many, items)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn().execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    def clear(self) -> None:
        """Forget every verdict."""
        with self._lock:
            self._conn().execute("DELETE FROM verdicts")

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    def __enter__(self) -> VerdictCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VerdictCache({str(self.path)!r})"
