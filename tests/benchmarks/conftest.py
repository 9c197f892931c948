"""Fixtures of the benchmark tests: the paper's data folder (skipped when absent), small files in
the paper's row shape, and a clean environment for the default data folder."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from gtalign.benchmarks import DATA_ENV
from tests.conftest import PAPER_DATA


@pytest.fixture
def paper_data() -> Path:
    """The paper's data folder; the test is skipped when it is not there (CI has it)."""
    if not (PAPER_DATA / "train_test").is_dir():
        pytest.skip(f"shared paper data not present (looked in {PAPER_DATA})")
    return PAPER_DATA


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the caller's GTALIGN_DATA unless it sets one."""
    monkeypatch.delenv(DATA_ENV, raising=False)


def paper_row(data_source: str, question: str, ground_truth: str, **extra: Any) -> dict[str, Any]:
    """A row in the paper's column shape (prompt, data_source, reward_model, extra_info)."""
    return {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Instruction.\n\nQuestion: {question}"}],
        "data_source": data_source,
        "reward_model": {"ground_truth": ground_truth, "style": "rule"},
        "extra_info": {"chat_history": [{"role": "user", "content": question}], "single_turn_prompt": question, **extra},
    }


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """``write(name, rows)``: a JSONL file under tmp_path; a row that is a string is written as is."""

    def write(name: str, rows: Iterable[Mapping[str, Any] | str]) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_parquet(tmp_path: Path) -> Callable[..., Path]:
    """``write(relative, rows)``: a parquet file under tmp_path, made with pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(relative: str, rows: list[dict[str, Any]]) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path

    return write
