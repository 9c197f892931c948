"""Fixtures for the engine adapter tests."""

from __future__ import annotations

import pytest

from gtalign.integrations import _common
from tests.integrations._helpers import ADAPTER_ENV


@pytest.fixture(autouse=True)
def clean_adapter_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``GTALIGN_*`` adapter variable from the outside, and no scorer cached by an earlier test."""
    for var in ADAPTER_ENV:
        monkeypatch.delenv(var, raising=False)
    _common.scorer_for.cache_clear()
