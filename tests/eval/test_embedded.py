"""End to end on the REAL embedded model (SmolLM2-135M-Instruct on the CPU, offline), when installed:
three rows through ``--backend embedded`` into a complete log. The tiny model rarely writes the
four blocks; what must hold is the path: generation, parse, judge, records, summary."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gtalign.eval import EvalConfig, read_run_log, run_eval
from tests.eval._fakes import rows


def test_three_rows_on_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("the embedded extra (torch, transformers) is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = EvalConfig(("fake",), backend="embedded", preset="paper", judge="rule", max_tokens=32)
    try:
        summary = run_eval(config, tmp_path / "run", rows=rows(3))
    except Exception as exc:  # a missing model file: skip with the reason
        if "does not load" in str(exc) or "not available" in str(exc):
            pytest.skip(f"the embedded model is not available: {exc}")
        raise
    log = read_run_log(tmp_path / "run")
    assert log.problems == () and log.header is not None
    assert log.header.backend == "embedded:SmolLM2-135M-Instruct" and log.header.judge == "rule"
    assert len(log.records) == 3 and summary.ran == 3
    for record in log.records:
        assert record.status in ("scored", "unscored"), record.error
        assert record.answer and record.tokens_in and 0 < record.tokens_out <= 32
        assert record.reward["preset"] == "paper" and record.reward["score"] is not None
        assert record.seconds["generate"] > 0
    assert summary.written == 3 and "next: gtalign report" in summary.lines()[-1]
