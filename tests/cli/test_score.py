"""``gtalign score`` end to end: order, error rows, resume, parquet, the shipped example, memory."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gtalign._registry import REGISTRY
from gtalign.cli import main
from gtalign.judges._base import Judge
from gtalign.reward import JudgeRequest, Verdict
from tests.cli._helpers import CountingJudge, answer, completion, read_out, row, write_jsonl


@pytest.fixture
def counting() -> Iterator[CountingJudge]:
    judge = CountingJudge()
    assert isinstance(judge, Judge)
    REGISTRY.register("judge", "counting-test", lambda: judge, replace=True)
    yield judge
    REGISTRY.unregister("judge", "counting-test")


def test_order_is_preserved_and_a_malformed_line_is_an_error_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows: list[dict | str] = [row(i, verdict=1) for i in range(1, 8)]
    rows[3] = '{"id": 4, "data_source": "math-hard", broken'
    rows[5] = {"id": 6, "data_source": "math-hard", "completion": completion("6")}  # no ground truth
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    code = main(["score", str(source), "--batch-size", "2"])
    assert code == 1
    out = read_out(tmp_path / "in.scored.jsonl")
    assert len(out) == 7
    assert [r.get("id") for r in out] == [1, 2, 3, None, 5, 6, 7]
    assert out[3]["status"] == "error" and out[3]["error"].startswith("line 4: invalid JSON")
    assert out[5]["status"] == "error" and "row 6" in out[5]["error"] and "ground_truth" in out[5]["error"]
    assert out[5]["completion"] == completion("6")  # the readable fields are still copied
    scored = [r for r in out if r["status"] == "scored"]
    assert len(scored) == 5 and all(r["error"] is None and r["score"] > 0 for r in scored)
    for key in ("score", "user_reward", "llm_reward", "answer_reward", "format_reward", "utility", "reward_gap", "preset"):
        assert key in out[0]
    err = capsys.readouterr().err
    assert "7 rows" in err and "5 scored, 0 unscored, 2 errors" in err and "math-hard" in err


def test_resume_after_a_torn_interruption_judges_no_row_twice(tmp_path: Path, counting: CountingJudge) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 21)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out), "--judge", "counting-test", "--batch-size", "4"]) == 0
    full = out.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(counting.responses) == 20
    # Simulate a crash after 7 rows: 7 complete lines and half of the 8th.
    out.write_text("".join(full[:7]) + full[7][: len(full[7]) // 2], encoding="utf-8")
    counting.responses.clear()
    assert main(["score", str(source), "-o", str(out), "--judge", "counting-test", "--batch-size", "4"]) == 0
    assert counting.responses == [f"The answer is \\boxed{{{i}}}." for i in range(8, 21)]
    resumed = read_out(out)
    assert [r["id"] for r in resumed] == list(range(1, 21))
    assert resumed == [json.loads(line) for line in full]


def test_ctrl_c_keeps_finished_batches_and_the_rerun_finishes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 11)])
    out = tmp_path / "out.jsonl"
    interrupting = CountingJudge(interrupt_on_call=3)
    REGISTRY.register("judge", "interrupting-test", lambda: interrupting, replace=True)
    try:
        assert main(["score", str(source), "-o", str(out), "--judge", "interrupting-test", "--batch-size", "2"]) == 130
    finally:
        REGISTRY.unregister("judge", "interrupting-test")
    err = capsys.readouterr().err
    assert "interrupted" in err and "Run the same command again to resume" in err
    kept = read_out(out)
    assert [r["id"] for r in kept] == list(range(1, len(kept) + 1)) and 0 < len(kept) < 10
    again = CountingJudge()  # the same judge name: a resume with another judge is refused
    REGISTRY.register("judge", "interrupting-test", lambda: again, replace=True)
    try:
        assert main(["score", str(source), "-o", str(out), "--judge", "interrupting-test", "--batch-size", "2"]) == 0
    finally:
        REGISTRY.unregister("judge", "interrupting-test")
    assert len(again.responses) == 10 - len(kept)
    assert [r["id"] for r in read_out(out)] == list(range(1, 11))


def test_resume_refuses_an_output_of_another_preset_and_no_resume_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out), "--preset", "paper-user"]) == 0
    capsys.readouterr()
    assert main(["score", str(source), "-o", str(out)]) == 2
    assert "preset paper-user (this run: paper): resume with --preset paper-user" in capsys.readouterr().err
    assert main(["score", str(source), "-o", str(out), "--no-resume"]) == 0
    assert {r["preset"] for r in read_out(out)} == {"paper"} and len(read_out(out)) == 3


def test_output_longer_than_the_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out)]) == 0
    write_jsonl(source, [row(1, verdict=1)])
    assert main(["score", str(source), "-o", str(out)]) == 2
    assert "has 3 rows but the input only 1" in capsys.readouterr().err


def test_unscored_rows_exit_1_unless_scored_as_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1), row(2)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 scored, 1 unscored, 0 errors" in err and "--unscored-as-zero" in err
    second = read_out(out)[1]
    assert second["status"] == "unscored" and second["score"] is None and "no judge" in second["reason"]
    assert main(["score", str(source), "-o", str(out), "--no-resume", "--unscored-as-zero"]) == 0  # asked for: no judge, verdict 0
    assert read_out(out)[1]["score"] > 0
    assert "1 rows have no judge_verdict and no judge was given: scored as verdict 0, as --unscored-as-zero asks" in capsys.readouterr().err


def test_parquet_input(tmp_path: Path) -> None:
    table = pa.table({
        "data_source": ["ambig_qa", "wildguard", "math-hard"],
        "completion": [completion("a"), completion("b"), completion("c")],
        "reward_model": [{"ground_truth": "singleAnswer###a"}, {"ground_truth": "harmful"}, {"ground_truth": "c"}],
        "extra_info": [{"index": 0}, {"index": 1}, {"index": 2}],
        "judge_verdict": [1.0, 0.5, 0.0],
    })
    source = tmp_path / "rows.parquet"
    pq.write_table(table, source, row_group_size=2)
    assert main(["score", str(source), "--batch-size", "2"]) == 0
    out = read_out(tmp_path / "rows.scored.jsonl")
    assert [r["source"] for r in out] == ["ambig_qa", "wildguard", "math-hard"]
    assert [r["judge_value"] for r in out] == [1.0, 0.5, 0.0]
    assert out[1]["reward_model"] == {"ground_truth": "harmful"} and out[2]["extra_info"] == {"index": 2}


def test_the_shipped_example_scores_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "example.jsonl"
    assert main(["score", "--example", "-o", str(out)]) == 0
    rows = read_out(out)
    assert len(rows) == 12 and all(r["status"] == "scored" for r in rows)
    sources = {r["source"] for r in rows}
    assert sources == {"math-hard", "minerva", "medium", "wildguard", "ambig_qa", "abg-coqa", "advbench"}
    assert {r["ground_truth"] if "ground_truth" in r else r["reward_model"]["ground_truth"] for r in rows if r["source"] == "wildguard"} == {"harmful", "unharmful"}
    malformed = [r for r in rows if r["format"] == 0.0]
    assert len(malformed) == 2 and any(r["score"] == 0.0 for r in malformed)
    assert "12 scored, 0 unscored, 0 errors" in capsys.readouterr().err


def test_the_example_through_the_installed_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("gtalign")
    if not script.exists():
        pytest.skip("the gtalign console script is not installed next to this interpreter")
    done = subprocess.run([str(script), "score", "--example"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "gtalign-example.scored.jsonl").read_text().splitlines()) == 12
    assert "12 scored" in done.stderr and done.stdout == ""
    again = subprocess.run([str(script), "score", "--example"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "12 resumed" in again.stderr
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("gtalign ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["score"], "give INPUT"),
        (["score", "x.jsonl", "--example"], "not both"),
        (["score", "missing.jsonl"], "no such file"),
        (["score", "{input}", "--preset", "nope"], "unknown preset 'nope'; valid: paper"),
        (["score", "{input}", "--judge-model", "m"], "only apply with --judge URL"),
        (["score", "{input}", "--judge", "http://127.0.0.1:9/v1"], "needs --judge-model"),
        (["score", "{input}", "--judge", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-api-key-env", "GTALIGN_TEST_UNSET_VAR"], "GTALIGN_TEST_UNSET_VAR is not set"),
        (["score", "{input}", "--judge", "nope"], "unknown judge 'nope'"),
        (["score", "{input}", "-o", "{input}"], "is the input file"),
        (["score", "{input}", "--batch-size", "0"], "expected a positive integer"),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GTALIGN_TEST_UNSET_VAR", raising=False)
    source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1)])
    assert main([a.replace("{input}", str(source)) for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "in.scored.jsonl").exists()


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "score" in top and "inspect" in top and "gtalign score --example" in top
    assert main(["score", "--help"]) == 0
    text = capsys.readouterr().out
    for phrase in ("--judge-model", "--no-resume", "--unscored-as-zero", "--batch-size", "Resuming", "Exit codes", "judge_verdict"):
        assert phrase in text
    assert main(["inspect", "--help"]) == 0
    assert "--row" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("gtalign 0.")
    assert main([]) == 2


def test_100k_rows_stream_in_bounded_memory(tmp_path: Path) -> None:
    n = 100_000
    source = tmp_path / "big.jsonl"
    with open(source, "w", encoding="utf-8") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": i, "data_source": "math-hard", "completion": "<response>x</response>", "ground_truth": "1", "judge_verdict": 1, "pad": "p" * 200}) + "\n")
    size = source.stat().st_size
    out = tmp_path / "big.out.jsonl"
    warm = write_jsonl(tmp_path / "warm.jsonl", [row(1, verdict=1)])
    assert main(["score", str(warm), "-q"]) == 0  # imports and caches outside the measurement
    tracemalloc.start()
    try:
        code = main(["score", str(source), "-o", str(out), "-q", "--batch-size", "256"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte input"
    with open(out, "rb") as handle:
        lines = 0
        last = b""
        for last in handle:
            lines += 1
    assert lines == n and json.loads(last)["id"] == n - 1
    assert os.path.getsize(out) > size


def test_url_judge_against_a_fake_server_with_the_verdict_cache(tmp_path: Path) -> None:
    from gtalign.testing import FakeOpenAI, Reply

    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 7)])
    out = tmp_path / "out.jsonl"
    cache = tmp_path / "verdicts.sqlite3"
    with FakeOpenAI(lambda request: Reply(text="Correct. \\boxed{1}")) as server:
        base = ["score", str(source), "-o", str(out), "--judge", server.base_url, "--judge-model", "fake-judge", "--judge-concurrency", "3"]
        assert main([*base, "--judge-cache", str(cache)]) == 0
        assert server.requests == 6
        assert [r["judge_value"] for r in read_out(out)] == [1.0] * 6
        assert main([*base, "--judge-cache", str(cache), "--no-resume"]) == 0
        assert server.requests == 6  # every verdict came from the cache
        assert main([*base, "--no-judge-cache", "--no-resume"]) == 0
        assert server.requests == 12


SLOW_JUDGE = '''
import asyncio
import os
from gtalign.reward import Verdict

class Slow:
    name = "slow"

    async def judge(self, requests):
        await asyncio.sleep(float(os.environ["SLOW_JUDGE_DELAY"]))
        return [Verdict(1.0) for _ in requests]
'''


def test_a_real_sigint_exits_130_and_the_rerun_resumes(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("gtalign")
    if not script.exists():
        pytest.skip("the gtalign console script is not installed next to this interpreter")
    (tmp_path / "slow_judge_for_test.py").write_text(SLOW_JUDGE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SLOW_JUDGE_DELAY": "0.2"}
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 61)])
    out = tmp_path / "out.jsonl"
    argv = [str(script), "score", str(source), "-o", str(out), "--judge", "slow_judge_for_test:Slow", "--batch-size", "3"]
    # A terminal's Ctrl-C: the child gets SIGINT's default disposition even when this test runs in a
    # background job, whose children inherit SIGINT ignored (Python then installs no handler at all).
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Run the same command again to resume" in err
    kept = read_out(out)
    assert 0 < len(kept) < 60
    done = subprocess.run(argv, env={**env, "SLOW_JUDGE_DELAY": "0"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"({60 - len(kept)} new, {len(kept)} resumed)" in done.stderr
    assert [r["id"] for r in read_out(out)] == list(range(1, 61))


def test_a_saved_dataset_folder_with_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    rows = [row(i, verdict=1) for i in range(1, 6)]
    folder = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows), "train": datasets.Dataset.from_list(rows[:2])}).save_to_disk(str(folder))
    capsys.readouterr()
    assert main(["score", str(folder), "-q"]) == 2
    assert "has splits ['test', 'train']: choose one with --split" in capsys.readouterr().err
    assert main(["score", str(folder), "--split", "test", "-q"]) == 0
    assert [r["id"] for r in read_out(tmp_path / "saved.test.scored.jsonl")] == [1, 2, 3, 4, 5]


# --- issue 7: hardening ------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [300, 1000])
def test_a_row_nested_too_deep_is_one_error_row_and_the_others_are_scored(tmp_path: Path, depth: int) -> None:
    deep = '{"id": 2, "data_source": "math-hard", "completion": "x", "ground_truth": "2", "extra_info": {"a": ' + "[" * depth + "]" * depth + "}}"
    source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1), deep, row(3, verdict=1)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out)]) == 1
    rows = read_out(out)
    assert [r["status"] for r in rows] == ["scored", "error", "scored"]
    assert rows[1]["error"] == "line 2: JSON nested deeper than 128 levels of objects and arrays"
    assert rows[0]["id"] == 1 and rows[2]["id"] == 3
    assert main(["score", str(source), "-o", str(out)]) == 1  # and the output resumes


def test_a_row_that_cannot_be_written_back_is_an_error_row() -> None:
    from gtalign._sync import run_sync
    from gtalign.cli._score import _score_batch, _template
    from gtalign.data import Row
    from gtalign.reward import RewardScorer, get_preset

    deep: list = []
    for _ in range(5000):  # past what json.dumps can recurse through
        deep = [deep]
    scorer = RewardScorer(get_preset("paper"))
    template = _template(scorer, {"schema": 1})
    rows = [Row(1, row(1, verdict=1)), Row(2, {**row(2, verdict=1), "extra_info": {"a": deep}})]
    first, second = run_sync(_score_batch(scorer, rows, template))
    assert first.fields["status"] == "scored" and json.loads(first.line)["id"] == 1
    assert second.fields["status"] == "error" and "row 2: cannot be written as JSON: RecursionError" in second.fields["error"]
    assert json.loads(second.line) == second.fields and "extra_info" not in second.fields


def test_dash_output_writes_the_rows_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    assert main(["score", str(source), "-o", "-"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == [1, 2, 3]
    assert "3 rows in standard output (3 new, 0 resumed)" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no file "-", no lock file
    assert main(["score", str(source), "-o", "-"]) == 0  # never resumed: the rows again
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_judge_timeout_and_retries_reach_the_judge_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gtalign.cli import _score
    from gtalign.cli._judges import JudgeOptions, build_judge

    seen: list[JudgeOptions] = []
    monkeypatch.setattr(_score, "run_score", lambda options: seen.append(options.judge) or 0)
    argv = ["score", "x.jsonl", "--judge", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-timeout", "7.5", "--judge-retries", "2"]
    assert main(argv) == 0
    assert (seen[0].timeout, seen[0].retries) == (7.5, 2)
    judge = build_judge(JudgeOptions("http://127.0.0.1:9/v1", "m", use_cache=False, timeout=7.5, retries=2))
    assert (judge.config.total_timeout, judge.config.max_retries) == (7.5, 2)
    default = build_judge(JudgeOptions("http://127.0.0.1:9/v1", "m", use_cache=False))
    assert default.config.total_timeout > 7.5  # unset: the client's own default


@pytest.mark.parametrize(("flag", "message"), [(["--judge-timeout", "0"], "expected a finite number > 0"), (["--judge-retries", "-1"], "expected an integer >= 0")])
def test_judge_timeout_and_retries_are_checked(capsys: pytest.CaptureFixture[str], flag: list[str], message: str) -> None:
    assert main(["score", "x.jsonl", *flag]) == 2
    assert message in capsys.readouterr().err


def test_judge_timeout_only_applies_to_url_judges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1)])
    assert main(["score", str(source), "--judge", "rule", "--judge-timeout", "5"]) == 2
    assert "--judge-timeout only apply with --judge URL" in capsys.readouterr().err


def test_a_hanging_judge_is_bounded_by_judge_timeout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gtalign.testing import FakeOpenAI, Reply

    source = write_jsonl(tmp_path / "in.jsonl", [row(1)])
    out = tmp_path / "out.jsonl"
    with FakeOpenAI(lambda request: Reply(fault="hang")) as server:
        argv = ["score", str(source), "-o", str(out), "--judge", server.base_url, "--judge-model", "fake-judge",
                "--no-judge-cache", "--judge-timeout", "0.3", "--judge-retries", "0"]
        assert main(argv) == 1
    (result,) = read_out(out)
    assert result["status"] == "unscored" and result["judge_status"] == "failed"
    err = capsys.readouterr().err
    assert "run the same command again to re-judge them (--judge-timeout and --judge-retries give a slow judge more time)" in err


class ClockedJudge(CountingJudge):
    """A CountingJudge whose every call takes ``seconds`` of a fake clock (the run's clock)."""

    def __init__(self, seconds: float, fail: frozenset[str] = frozenset()) -> None:
        super().__init__(fail=fail)
        self.now = 0.0
        self.seconds = seconds

    def clock(self) -> float:
        return self.now

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.now += self.seconds
        return await super().judge(requests)


def score_quietly_to(stderr: Any, judge: object, source: Path, out: Path, *, clock: Callable[[], float], every: float) -> Any:
    """`score_file` with ``judge`` as ``--judge``, stderr a file that is not a terminal."""
    from rich.console import Console

    from gtalign.cli._judges import JudgeOptions
    from gtalign.cli._score import ScoreOptions, score_file

    REGISTRY.register("judge", "clocked-test", lambda: judge, replace=True)
    try:
        options = ScoreOptions(str(source), str(out), judge=JudgeOptions("clocked-test"), batch_size=2)
        return score_file(options, Console(file=stderr, highlight=False), clock=clock, progress_every=every)
    finally:
        REGISTRY.unregister("judge", "clocked-test")


def test_progress_lines_and_one_judge_warning_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    judge = ClockedJudge(10.0, fail=frozenset({answer(3), answer(4), answer(7)}))
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 9)])
    stderr = io.StringIO()
    summary = score_quietly_to(stderr, judge, source, tmp_path / "out.jsonl", clock=judge.clock, every=25.0)
    assert (summary.scored, summary.unscored, summary.judge_failures) == (5, 3, 3)
    lines = stderr.getvalue().splitlines()
    assert [line for line in lines if "warning" in line] == [
        "gtalign score: warning: the judge failed on 2 of the last 2 rows; first, row 3: judge failed: judge server: "
        "503 Service Unavailable. These rows are left unscored; run the same command again to re-judge them"
    ]
    progress = [line for line in lines if "rows/s" in line]
    # The judge's clock moves 10 s a batch of 2 rows, so 8 rows take 40 s: a line is due every 25 s.
    assert progress, lines
    for line in progress:
        found = re.fullmatch(r"gtalign score: (\d)/8 rows \((\d+)%\), ([\d.]+) rows/s(, ETA \w+)?(, (\d) judge failures)?", line)
        assert found, line
        assert int(found[2]) == 100 * int(found[1]) // 8 and 0 < float(found[3]) <= 0.2


def test_a_progress_line_comes_while_the_judge_is_still_working(tmp_path: Path) -> None:
    class Stderr(io.StringIO):
        """Lets the judge answer only once a progress line has been written."""

        def __init__(self) -> None:
            super().__init__()
            self.line_written = threading.Event()

        def write(self, text: str) -> int:
            if "rows/s" in text:
                self.line_written.set()
            return super().write(text)

    class Waiting(CountingJudge):
        async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
            await asyncio.to_thread(stderr.line_written.wait, 60)
            return await super().judge(requests)

    stderr = Stderr()
    source = write_jsonl(tmp_path / "in.jsonl", [row(1)])
    summary = score_quietly_to(stderr, Waiting(), source, tmp_path / "out.jsonl", clock=time.monotonic, every=0.02)
    assert stderr.line_written.is_set() and summary.scored == 1
    assert "gtalign score: 0/1 rows (0%)" in stderr.getvalue()


def test_an_unusable_verdict_cache_names_the_cli_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(1)])
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    argv = ["score", str(source), "--judge", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-cache", str(blocker / "cache.sqlite3")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--judge-cache {blocker / 'cache.sqlite3'}: cannot be opened" in err and "--no-judge-cache" in err
    assert "cache=None" not in err


def test_a_missing_input_fails_at_once_instead_of_trying_the_hub(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "datasets", None)  # a hub lookup would fail differently
    (tmp_path / "data").mkdir()
    for spec in ("rollouts", "data/x", "./data/x", str(tmp_path / "nope")):
        assert main(["score", spec]) == 2
        assert "no such file or directory" in capsys.readouterr().err
    assert main(["score", "owner/name"]) == 2
    err = capsys.readouterr().err
    assert "owner/name: no such local file or folder; reading it from the dataset hub" in err and "gtalign[hub]" in err
