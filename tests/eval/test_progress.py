"""Progress off a terminal (plain lines on an injected clock), on a terminal (the bar), warnings."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

from rich.console import Console

from gtalign.eval import EvalConfig, EvalProgress, SampleRecord, run_eval
from gtalign.judges import RuleJudge
from tests.eval._fakes import rows, scripted


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(status: str = "scored", judge_status: str = "ok", id: str = "fake/0") -> SampleRecord:
    return SampleRecord(id=id, epoch=0, benchmark="fake", data_source="ambig_qa", status=status,  # type: ignore[arg-type]
                        reward={"judge_status": judge_status, "reason": "judge failed: connection refused"},
                        error="failed: server down" if status == "generation_failed" else "")


def console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=200, highlight=False), buffer


def test_plain_lines_come_every_period_of_the_injected_clock() -> None:
    out, buffer = console()
    clock = Clock()
    progress = EvalProgress(out, clock=clock, every=30)
    progress.start(10)
    progress.advance([record(), record(), record()])
    clock.now = 29.0
    progress.tick()
    assert buffer.getvalue() == ""
    clock.now = 30.0
    progress.tick()
    progress.tick()  # not due again yet
    assert buffer.getvalue().splitlines() == ["gtalign eval: 3/10 samples (30%), 0.10 samples/s, ETA 1m10s"]
    clock.now = 60.0
    progress.advance([record("generation_failed"), record("generation_failed", id="fake/1"), record("unscored", "failed")])
    shown = buffer.getvalue().splitlines()
    assert shown[1] == ("gtalign eval: warning: the model failed on fake/0 (epoch 0): failed: server down. "
                        "Failed rows are counted and retried by a rerun of the same command")
    assert shown[2].startswith("gtalign eval: warning: the judge failed on fake/0 (epoch 0): judge failed: connection refused.")
    assert shown[3] == "gtalign eval: 6/10 samples (60%), 0.10 samples/s, ETA 40s, 2 generation failures, 1 judge failures"
    assert len(shown) == 4  # one warning per kind, however many failures


def test_disabled_progress_prints_nothing() -> None:
    out, buffer = console()
    clock = Clock()
    progress = EvalProgress(out, clock=clock, every=1, enabled=False)
    progress.note("a note")
    progress.start(2)
    clock.now = 5
    progress.advance([record("generation_failed")])
    assert buffer.getvalue() == ""


def test_a_terminal_gets_the_bar_with_rate_and_eta_not_lines() -> None:
    out, buffer = console(terminal=True)
    clock = Clock()
    progress = EvalProgress(out, clock=clock, every=1)
    progress.start(4)
    assert progress._bar is not None
    columns = [type(c).__name__ for c in progress._bar.columns]
    assert "Rate" in columns and "TimeRemainingColumn" in columns
    clock.now = 10
    progress.advance([record()])
    progress.close()
    assert "gtalign eval: 1/4" not in buffer.getvalue()


def test_a_run_off_a_terminal_prints_lines_and_notes(tmp_path: Path) -> None:
    out, buffer = console()
    ticks = itertools.count(0, 40)
    progress = EvalProgress(out, clock=lambda: float(next(ticks)), every=30)
    judge = RuleJudge()
    try:
        run_eval(EvalConfig(("fake",), backend="scripted", concurrency=1), tmp_path / "run", rows=rows(3),
                 backend=scripted(), judge=judge, progress=progress)
    finally:
        judge.close()
    text = buffer.getvalue()
    assert f"gtalign eval: 3 samples to run (0 kept) with scripted:scripted-model, 1 in flight (set by concurrency / --concurrency); log: {tmp_path / 'run' / 'run.jsonl'}" in text
    assert "gtalign eval: 3/3 samples (100%)" in text


def test_score_progress_shares_the_lines_rate_and_eta() -> None:
    from gtalign.cli._output import RUN_KEY
    from gtalign.cli._progress import ScoreProgress

    failed = {"status": "unscored", "judge_status": "failed", "reason": "judge failed: down", RUN_KEY: {"judge": "rule"}}

    for total, expected in ((10, "gtalign score: 3/10 rows (30%), 0.10 rows/s, ETA 1m10s, 1 judge failures"),
                            (None, "gtalign score: 3 rows, 0.10 rows/s, 1 judge failures")):
        out, buffer = console()
        clock = Clock()
        with ScoreProgress(out, enabled=True, total=total, clock=clock, every=30) as progress:
            clock.now = 30.0
            progress.advance([(1, {"status": "scored"}), (2, {"status": "scored"}), (3, failed)])
        lines = buffer.getvalue().splitlines()
        assert lines[0].startswith("gtalign score: warning: the judge failed on 1 of the last 3 rows; first, row 3: judge failed: down.")
        assert lines[1:] == [expected]
