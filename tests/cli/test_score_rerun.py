"""What a rerun of ``gtalign score`` scores again, and what the summary says about rows without a
score from a usable verdict: judge failures (also when ``--unscored-as-zero`` scored them as
verdict 0), error rows and rows whose scoring raised; Ctrl-C while rewriting (in-process and a real
SIGINT) keeps every row once, in order."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gtalign._registry import REGISTRY
from gtalign.cli import main
from gtalign.cli._output import RUN_KEY, judge_failed, row_cause, to_rerun
from gtalign.data import JsonlWriter
from gtalign.reward._paper import PaperPreset
from tests.cli._helpers import PAYOFF, CountingJudge, answer, completion, read_out, row, write_jsonl

HUGE = "1" + "0" * 400  # a JSON integer too large for a float: the paper preset's scoring raises


pytestmark = pytest.mark.usefixtures("_private_cache")


# --- which rows are judge failures, and which a rerun scores again ----------------------------


def _out(status: str, judge_status: str | None, *, judge: str | None = "rule", **fields: Any) -> dict[str, Any]:
    return {"status": status, "judge_status": judge_status, "reason": "", "error": None, RUN_KEY: {"judge": judge}, **fields}


@pytest.mark.parametrize(
    ("out", "cause"),
    [
        (_out("scored", "ok"), None),
        (_out("scored", None, reason="parse failure scored 0: no payoff"), None),
        (_out("unscored", "failed"), "judge failed"),
        (_out("scored", "failed", reason="judge failed: 503; scored as verdict 0 (unscored_as_zero, the research code's behaviour)"), "judge failed"),
        (_out("unscored", "failed", judge=None), "no judge"),
        (_out("scored", "failed", judge=None), "no judge"),
        (_out("unscored", "failed", judge_verdict={"status": "failed"}), "input verdict"),
        (_out("scored", "failed", judge_verdict={"status": "failed"}), "input verdict"),
        (_out("unscored", "invalid", judge_verdict=7), "input verdict"),
        (_out("unscored", "unparsable"), "unusable verdict"),
        (_out("scored", "refused"), "unusable verdict"),
        (_out("unscored", "ok", reason="verdict 7.0 is outside the math scale (0.0, 1.0)"), "unusable verdict"),
        (_out("unscored", None, reason="unknown data_source: unknown task 'x'"), "unknown data_source"),
        (_out("unscored", None, reason="scoring failed: OverflowError: int too large"), "scoring failed"),
        (_out("error", None, error="row 4: scoring failed: RuntimeError: boom"), "scoring failed"),
        (_out("error", None, error="line 2: invalid JSON: Expecting value"), "bad row"),
        (_out("error", None, error="row 6: key 'ground_truth' is missing"), "bad row"),
        (_out("unscored", None, reason="a preset of one's own"), "other"),
    ],
)
def test_one_predicate_says_why_a_row_has_no_score_from_a_verdict(out: dict[str, Any], cause: str | None) -> None:
    assert row_cause(out) == cause
    assert judge_failed(out) == (cause == "judge failed")
    assert to_rerun(out) == (cause in ("judge failed", "scoring failed", "bad row"))


# --- A3: with --unscored-as-zero a judge failure is still a judge failure ------------------------


def test_a_judge_failure_scored_as_zero_warns_fails_the_run_and_is_judged_again(
    tmp_path: Path, judge_named: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    given = {**row(6), "judge_verdict": {"value": None, "status": "failed", "reason": "given in the input"}}
    source = write_jsonl(tmp_path / "in.jsonl", [*(row(i) for i in range(1, 6)), given])
    out = tmp_path / "out.jsonl"
    argv = ["score", str(source), "-o", str(out), "--judge", "flaky-test", "--unscored-as-zero", "--batch-size", "2"]
    judge_named("flaky-test", CountingJudge(fail=frozenset({answer(2), answer(5)})))
    assert main(argv) == 1  # never a silent 0
    err = capsys.readouterr().err
    first = read_out(out)
    assert [(r["status"], r["judge_status"]) for r in first] == [
        ("scored", "ok"), ("scored", "failed"), ("scored", "ok"), ("scored", "ok"), ("scored", "failed"), ("scored", "failed"),
    ]
    assert "warning: the judge failed on 1 of the last 2 rows; first, row 2: judge failed: judge server: 503" in err
    assert "These rows are scored as verdict 0 (--unscored-as-zero), which is not a verdict" in err
    assert "6 scored, 0 unscored, 0 errors" in err
    assert "2 rows were scored as verdict 0 because the judge failed on them (--unscored-as-zero" in err
    assert "run the same command again to re-judge them" in err
    assert "--judge-timeout" not in err  # not a URL judge: the HTTP options do not apply
    assert "1 rows carry a judge_verdict that cannot be used" in err  # row 6: no judge was asked

    again = CountingJudge()
    judge_named("flaky-test", again)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert again.responses == [answer(2), answer(5)]  # not row 6: its verdict came with the input
    assert "scoring again 2 rows of an earlier run (from row 2): 2 the judge failed on" in err
    assert "(0 new, 6 resumed, 2 scored again): 6 scored" in err
    second = read_out(out)
    assert [r["judge_status"] for r in second] == ["ok"] * 5 + ["failed"]
    assert [second[i] for i in (0, 2, 3, 5)] == [first[i] for i in (0, 2, 3, 5)]
    assert second[1]["score"] > first[1]["score"]


def test_a_judge_failure_scored_as_zero_counts_in_the_summary_of_the_api(tmp_path: Path, judge_named: Callable[[str, object], None]) -> None:
    from gtalign.cli._judges import JudgeOptions
    from gtalign.cli._score import ScoreOptions, score_file

    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 4)])
    judge_named("flaky-test", CountingJudge(fail=frozenset({answer(3)})))
    options = ScoreOptions(str(source), str(tmp_path / "out.jsonl"), judge=JudgeOptions("flaky-test"), unscored_as_zero=True, quiet=True)
    summary = score_file(options)
    assert (summary.scored, summary.unscored, summary.judge_failures) == (3, 0, 1)
    assert not summary.ok and summary.exit_code == 1


# --- C1: the summary's hint per cause --------------------------------------------------------------


def test_the_summary_gives_one_hint_per_cause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overflowing = {**row(3, verdict=1), "completion": completion("3").replace(PAYOFF, PAYOFF.replace('"user": 2.1', f'"user": {HUGE}'))}
    rows: list[dict | str] = [row(1, verdict=1), row(2, verdict=1, source="no-such-task"), overflowing, "{broken", row(5, verdict=7), row(6)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert read_out(out)[2]["reason"].startswith("scoring failed: OverflowError")
    hints = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert hints == [
        "1 rows have no judge_verdict and no judge was given: rerun with --judge JUDGE (or --unscored-as-zero to score them 0) and --no-resume",
        "1 rows carry a judge_verdict that cannot be used (off the task's scale, or not ok; see their `reason`): "
        "fix it in the input, then rerun with --no-resume",
        "1 unscored rows have a data_source no task is registered for (their `reason` lists the known ones): "
        "fix the input, then rerun with --no-resume",
        "1 rows failed in the preset (their `reason` or `error` says 'scoring failed:': a value it cannot handle, or a bug): "
        "a rerun of the same command scores them again",
        "1 error rows could not be read, mapped onto a sample or written back (see their `error`): "
        "fix those input rows; a rerun of the same command reads them again",
    ]
    assert "no usable verdict or task" not in err and "--judge-timeout" not in err


# --- C3: error rows and rows whose scoring raised are scored again -------------------------------

_BROKEN = {"on": True}


@dataclass(frozen=True)
class _Fragile(PaperPreset):
    """The paper preset, raising on the row whose ground truth is "4" while `_BROKEN` is on (a bug
    fixed between two runs)."""

    def finish(self, prepared: Any, verdict: Any) -> Any:
        if _BROKEN["on"] and prepared.sample.ground_truth == "4":
            raise RuntimeError("a bug in the preset")
        return PaperPreset.finish(self, prepared, verdict)


@pytest.fixture
def fragile() -> Iterator[dict[str, bool]]:
    _BROKEN["on"] = True
    REGISTRY.register("preset", "fragile-test", lambda **params: _Fragile("fragile-test", **params), replace=True)
    yield _BROKEN
    REGISTRY.unregister("preset", "fragile-test")


def test_error_rows_and_rows_whose_scoring_raised_are_scored_again(tmp_path: Path, fragile: dict[str, bool], capsys: pytest.CaptureFixture[str]) -> None:
    no_truth = {k: v for k, v in row(3, verdict=1).items() if k != "ground_truth"}
    rows: list[dict | str] = [row(1, verdict=1), "{broken", no_truth, row(4, verdict=1), row(5, verdict=1)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    argv = ["score", str(source), "-o", str(out), "--preset", "fragile-test"]
    assert main(argv) == 1
    first = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["status"] for line in first] == ["scored", "error", "error", "unscored", "scored"]
    assert json.loads(first[3])["reason"] == "scoring failed: RuntimeError: a bug in the preset"
    capsys.readouterr()

    fragile["on"] = False  # the bug is fixed
    assert main(argv) == 1  # rows 2 and 3 are still broken in the input
    err = capsys.readouterr().err
    assert "scoring again 3 rows of an earlier run (from row 2): 1 whose scoring failed, 2 that could not be read" in err
    assert "(0 new, 5 resumed, 3 scored again): 3 scored, 0 unscored, 2 errors" in err
    second = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["status"] for line in second] == ["scored", "error", "error", "scored", "scored"]
    assert [second[i] for i in (0, 1, 2, 4)] == [first[i] for i in (0, 1, 2, 4)]  # still broken: the same error row

    rows[1] = row(2, verdict=1)  # the unreadable line is mended: it is read again
    write_jsonl(source, rows)
    assert main(argv) == 1
    assert [r["status"] for r in read_out(out)] == ["scored", "scored", "error", "scored", "scored"]
    assert [r.get("id") for r in read_out(out)] == [1, 2, 3, 4, 5]


# --- A6: Ctrl-C between a batch's write and its count ---------------------------------------------


def _down_then(tmp_path: Path, judge_named: Callable[[str, object], None], rows: int) -> tuple[list[str], Path, bytes]:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, rows + 1)])
    out = tmp_path / "out.jsonl"
    argv = ["score", str(source), "-o", str(out), "--judge", "flaky-test", "--batch-size", "1"]
    judge_named("flaky-test", CountingJudge(fail=frozenset(answer(i) for i in range(1, rows + 1))))
    assert main(argv) == 1
    judge_named("flaky-test", CountingJudge())
    return argv, out, out.read_bytes()


def _interrupt_writes(monkeypatch: pytest.MonkeyPatch, *calls: int) -> None:
    """`JsonlWriter.write_lines` raises KeyboardInterrupt on the given calls, right after the rows
    were written and flushed and before they were counted (as Ctrl-C can)."""
    real = JsonlWriter.write_lines
    seen: list[int] = []

    def write_then_interrupt(self: JsonlWriter, lines: Any) -> int:
        written = real(self, lines)
        seen.append(written)
        if len(seen) in calls:
            self.written -= written  # flushed, not yet counted
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(JsonlWriter, "write_lines", write_then_interrupt)


def test_ctrl_c_right_after_a_flush_while_rewriting_duplicates_no_row(
    tmp_path: Path, judge_named: Callable[[str, object], None], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, out, before = _down_then(tmp_path, judge_named, 6)
    capsys.readouterr()
    _interrupt_writes(monkeypatch, 2)  # the second re-judged row reaches the file, then Ctrl-C
    assert main(argv) == 130
    assert "holds 6 complete rows" in capsys.readouterr().err
    after = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in after] == [1, 2, 3, 4, 5, 6]
    assert [json.loads(line)["status"] for line in after] == ["scored", "scored"] + ["unscored"] * 4
    assert after[2:] == before.decode("utf-8").splitlines()[2:]
    assert not list(tmp_path.glob(".*.tmp"))

    monkeypatch.undo()
    again = CountingJudge()
    judge_named("flaky-test", again)
    assert main(argv) == 0
    assert again.responses == [answer(i) for i in (3, 4, 5, 6)]


def test_a_second_ctrl_c_while_keeping_the_rows_leaves_the_output_as_it_was(
    tmp_path: Path, judge_named: Callable[[str, object], None], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, out, before = _down_then(tmp_path, judge_named, 6)
    capsys.readouterr()
    _interrupt_writes(monkeypatch, 2, 3)  # Ctrl-C, then again while the rest is copied
    assert main(argv) == 130
    assert "left as it was" in capsys.readouterr().err
    assert out.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


# --- B3: a real SIGINT while rewriting ----------------------------------------------------------------

BLOCKING_JUDGE = """
import asyncio
import os
from gtalign.reward import Verdict


class Blocking:
    name = "blocking"

    async def judge(self, requests):
        mode = os.environ["BLOCKING_MODE"]
        if mode == "down":
            return [Verdict.failure("failed", "connection refused") for _ in requests]
        if mode == "block" and any("boxed{5}" in request.response for request in requests):
            os.write(int(os.environ["BLOCKING_FD"]), b"blocked\\n")  # tell the test, then wait for Ctrl-C
            await asyncio.Event().wait()
        return [Verdict(1.0) for _ in requests]
"""


def test_a_real_sigint_while_rewriting_keeps_every_row_in_order(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("gtalign")
    if not script.exists():
        pytest.skip("the gtalign console script is not installed next to this interpreter")
    (tmp_path / "blocking_judge_for_test.py").write_text(BLOCKING_JUDGE, encoding="utf-8")
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 7)])
    out = tmp_path / "out.jsonl"
    argv = [str(script), "score", str(source), "-o", str(out), "--judge", "blocking_judge_for_test:Blocking", "--batch-size", "1"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    down = subprocess.run(argv, env={**env, "BLOCKING_MODE": "down"}, capture_output=True, text=True, timeout=120)
    assert down.returncode == 1, down.stderr
    before = out.read_text(encoding="utf-8").splitlines()

    ready, signalled = os.pipe()
    try:
        # A terminal's Ctrl-C: the child gets SIGINT's default disposition even when this test runs in a
        # background job, whose children inherit SIGINT ignored (Python then installs no handler at all).
        process = subprocess.Popen(
            argv, env={**env, "BLOCKING_MODE": "block", "BLOCKING_FD": str(signalled)}, pass_fds=(signalled,),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(signalled)
        signalled = -1
        try:
            readable, _, _ = select.select([ready], [], [], 120)  # a hang guard, not a timing assertion
            assert readable and os.read(ready, 64) == b"blocked\n", "the judge never reached row 5"
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)
    finally:
        os.close(ready)
        if signalled >= 0:
            os.close(signalled)
    assert process.returncode == 130, err
    assert "interrupted; " in err and "holds 6 complete rows" in err
    after = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in after] == [1, 2, 3, 4, 5, 6]
    statuses = [json.loads(line)["status"] for line in after]
    assert statuses[:3] == ["scored"] * 3  # judged again before row 5 was asked about
    assert after[4:] == before[4:]  # rows 5 and 6 as they were
    assert not list(tmp_path.glob(".*.tmp"))

    up = subprocess.run(argv, env={**env, "BLOCKING_MODE": "up"}, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert f"(0 new, 6 resumed, {statuses.count('unscored')} scored again)" in up.stderr
    assert [r["status"] for r in read_out(out)] == ["scored"] * 6
