"""Fixtures for every test package: the paper's shared data, read when it is there, skipped when not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

PAPER_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtalign"
"""The paper's data sets, next to the repository (``../shared/data/gtalign``); absent in most checkouts."""


@pytest.fixture
def paper_table() -> Callable[..., Any]:
    """``read(relative, columns=None)``: a parquet file under `PAPER_DATA` as a pandas DataFrame.

    The calling test is skipped when pandas is not installed or the file is not there.
    """

    def read(relative: str, columns: Sequence[str] | None = None) -> Any:
        path = PAPER_DATA / relative
        if not path.exists():
            pytest.skip(f"shared paper data {relative} not present (looked in {PAPER_DATA})")
        pd = pytest.importorskip("pandas")
        return pd.read_parquet(path, columns=None if columns is None else list(columns))

    return read
