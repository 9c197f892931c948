"""``gtalign score`` end to end: order, error rows, resume, parquet, the shipped example, memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gtalign._registry import REGISTRY
from gtalign.cli import main
from gtalign.judges._base import Judge
from gtalign.reward import JudgeRequest, Verdict

PAYOFF = (
    '{"DQ_AQ": {"LLM": 2.0, "user": 2.1}, "DQ_CQ": {"LLM": 1.0, "user": 0.9}, "DQ_DA": {"LLM": 3.0, "user": 3.1}, '
    '"VQ_AQ": {"LLM": 1.5, "user": 1.4}, "VQ_CQ": {"LLM": 0.5, "user": 0.4}, "VQ_DA": {"LLM": 1.0, "user": 1.1}}'
)


def completion(answer: str) -> str:
    return (
        "<thinking>A definite question; answer directly.</thinking>\n"
        f"<payoff>{PAYOFF}</payoff>\n"
        "<analyze>DQ_DA dominates; chosen key: DQ_DA.</analyze>\n"
        f"<response>The answer is \\boxed{{{answer}}}.</response>"
    )


def row(i: int, *, verdict: float | None = None, source: str = "math-hard") -> dict:
    out = {"id": i, "data_source": source, "completion": completion(str(i)), "ground_truth": str(i)}
    if verdict is not None:
        out["judge_verdict"] = verdict
    return out


def write_jsonl(path: Path, rows: Sequence[dict | str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for item in rows:
            handle.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return path


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class CountingJudge:
    """A Judge that answers 1 to everything and remembers every response it was asked about."""

    name = "counting"

    def __init__(self, interrupt_on_call: int | None = None) -> None:
        self.responses: list[str] = []
        self.calls = 0
        self.interrupt_on_call = interrupt_on_call

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.calls += 1
        if self.calls == self.interrupt_on_call:
            raise KeyboardInterrupt
        self.responses.extend(r.response for r in requests)
        return [Verdict(1.0, judge=self.name) for _ in requests]


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
    again = CountingJudge()
    REGISTRY.register("judge", "again-test", lambda: again, replace=True)
    try:
        assert main(["score", str(source), "-o", str(out), "--judge", "again-test", "--batch-size", "2"]) == 0
    finally:
        REGISTRY.unregister("judge", "again-test")
    assert len(again.responses) == 10 - len(kept)
    assert [r["id"] for r in read_out(out)] == list(range(1, 11))


def test_resume_refuses_an_output_of_another_preset_and_no_resume_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out), "--preset", "paper-user"]) == 0
    capsys.readouterr()
    assert main(["score", str(source), "-o", str(out)]) == 2
    assert "scored with preset paper-user" in capsys.readouterr().err
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
    assert main(["score", str(source), "-o", str(out), "--no-resume", "--unscored-as-zero"]) == 0
    assert read_out(out)[1]["score"] > 0


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
