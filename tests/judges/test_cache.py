"""The verdict cache: only ok verdicts, persistent, shared safely by many coroutines."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from gtalign.judges._cache import VerdictCache, VerdictCacheError, default_cache_path
from gtalign.reward._types import JudgeRequest, Verdict


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[VerdictCache]:
    with VerdictCache(tmp_path / "verdicts.sqlite3") as opened:
        yield opened


def test_roundtrip_marks_cached(cache: VerdictCache) -> None:
    assert cache.get("k") is None
    assert cache.put("k", Verdict(0.5, raw="\\boxed{0.5}", judge="llm"))
    got = cache.get("k")
    assert got == Verdict(0.5, "ok", raw="\\boxed{0.5}", judge="llm", cached=True)
    assert len(cache) == 1


def test_only_ok_verdicts_are_stored(cache: VerdictCache) -> None:
    for status in ("failed", "unparsable", "invalid", "refused"):
        assert not cache.put(status, Verdict.failure(status, "why"))  # type: ignore[arg-type]
    assert cache.put_many([("a", Verdict(1.0)), ("b", Verdict.failure("failed", "down"))]) == 1
    assert set(cache.get_many(["a", "b", "failed"])) == {"a"}


def test_persists_across_reopen_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "c.sqlite3"
    with VerdictCache(path) as first:
        first.put("k", Verdict(3.0))
        with VerdictCache(path) as second:  # a second connection sees committed writes at once
            assert second.get("k") is not None
    with VerdictCache(path) as reopened:
        assert reopened.get("k") == Verdict(3.0, cached=True)
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_get_many_beyond_sqlite_variable_limits(cache: VerdictCache) -> None:
    items = {f"key{i}": Verdict(float(i % 2)) for i in range(1_300)}
    assert cache.put_many(items) == 1_300
    found = cache.get_many(list(items) + ["missing"])
    assert len(found) == 1_300 and found["key7"].value == 1.0


async def test_concurrent_async_use(cache: VerdictCache) -> None:
    async def writer(i: int) -> bool:
        return await cache.aput(f"k{i}", Verdict(float(i % 5)))

    async def reader(i: int) -> dict[str, Verdict]:
        return await cache.aget_many([f"k{i}", f"k{i - 1}"])

    results = await asyncio.gather(*(writer(i) for i in range(200)), *(reader(i) for i in range(200)))
    assert all(results[:200])
    final = await cache.aget_many([f"k{i}" for i in range(200)])
    assert len(final) == 200 and final["k13"].value == 3.0
    assert await cache.aput_many({"x": Verdict(1.0), "y": Verdict.failure("refused", "filter")}) == 1
    assert not await cache.aput("z", Verdict.failure("failed", "down"))


def test_default_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GTALIGN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "gtalign" / "judge-verdicts.sqlite3"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_path() == Path.home() / ".cache" / "gtalign" / "judge-verdicts.sqlite3"
    monkeypatch.setenv("GTALIGN_CACHE_DIR", str(tmp_path / "mine"))
    with VerdictCache() as cache:
        assert cache.path == tmp_path / "mine" / "judge-verdicts.sqlite3" and cache.path.exists()


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    not_a_db = tmp_path / "junk.sqlite3"
    not_a_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(VerdictCacheError, match="cache=None"):
        VerdictCache(not_a_db)
    with pytest.raises(VerdictCacheError, match="cannot open"):
        VerdictCache(tmp_path)  # a directory
    closed = VerdictCache(tmp_path / "c.sqlite3")
    closed.close()
    with pytest.raises(VerdictCacheError, match="closed"):
        closed.get("k")


def test_keys_separate_what_changes_a_verdict() -> None:
    request = JudgeRequest("math", "x = 3", reference="3")
    base = request.cache_key("llm", "m", "gtalign-math@1")
    assert base == JudgeRequest("math", "x = 3", reference="3").cache_key("llm", "m", "gtalign-math@1")
    assert base != request.cache_key("llm", "m", "gtalign-math@2")
    assert base != request.cache_key("llm", "other", "gtalign-math@1")
    assert base != JudgeRequest("math", "x = 4", reference="3").cache_key("llm", "m", "gtalign-math@1")
