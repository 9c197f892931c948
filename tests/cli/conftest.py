"""Fixtures shared by the score tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gtalign._registry import REGISTRY


@pytest.fixture
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict cache and the lock files of this test only."""
    monkeypatch.setenv("GTALIGN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def judge_named() -> Iterator[Callable[[str, object], None]]:
    """``register(name, judge)``: ``--judge name`` builds that judge; removed after the test."""
    names: list[str] = []

    def register(name: str, judge: object) -> None:
        REGISTRY.register("judge", name, lambda: judge, replace=True)
        names.append(name)

    yield register
    for name in set(names):
        REGISTRY.unregister("judge", name)
