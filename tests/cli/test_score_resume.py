"""``gtalign score`` resumes (issue 7): judge failures are judged again, the settings of a resume must
match the output's, and a lock keeps a second run off the same output."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gtalign._registry import REGISTRY
from gtalign.cli import main
from gtalign.cli._output import OUTPUT_SCHEMA, RUN_KEY
from gtalign.data import OutputLocked, lock_path, output_lock
from gtalign.reward._paper import PaperPreset
from gtalign.testing import FakeOpenAI, FakeRequest, Reply
from tests.cli._helpers import CountingJudge, answer, read_out, row, write_jsonl

_ANSWERED = re.compile(r"The answer is \\boxed\{(\d+)\}")


def asked(request: FakeRequest) -> int:
    """The row a judge request is about (its response block names the row's number)."""
    text = "\n".join(str(m.get("content", "")) for m in request.messages)
    return int(_ANSWERED.findall(text)[-1])


class Judge:
    """A fake judge server's script: a 503 for the rows in ``down``, else "Correct"; it records
    which rows it was asked about."""

    def __init__(self, down: set[int]) -> None:
        self.down = down
        self.asked: list[int] = []

    def __call__(self, request: FakeRequest) -> Reply:
        number = asked(request)
        self.asked.append(number)
        if number in self.down:
            return Reply(fault="server_error", status=503)
        return Reply(text="Correct. \\boxed{1}")


pytestmark = pytest.mark.usefixtures("_private_cache")


# --- judge failures are judged again ------------------------------------------------------------


def test_rerun_rejudges_exactly_the_rows_the_judge_failed_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 9)])
    out = tmp_path / "out.jsonl"
    script = Judge(down={3, 4, 7})
    with FakeOpenAI(script) as server:
        argv = ["score", str(source), "-o", str(out), "--judge", server.base_url, "--judge-model", "fake-judge",
                "--judge-retries", "0", "--batch-size", "3"]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "5 scored, 3 unscored" in err and "3 unscored rows are judge failures" in err
        assert "run the same command again to re-judge them" in err and "pass --judge" not in err
        first = out.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["judge_status"] for line in first] == ["ok", "ok", "failed", "failed", "ok", "ok", "failed", "ok"]

        script.down.clear()  # the judge is back
        script.asked.clear()
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert "scoring again 3 rows of an earlier run (from row 3): 3 the judge failed on" in err
        assert "8 rows in" in err and "(0 new, 8 resumed, 3 scored again): 8 scored, 0 unscored" in err
        assert sorted(script.asked) == [3, 4, 7]
        second = out.read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["id"] for line in second] == list(range(1, 9))
        assert all(json.loads(line)["status"] == "scored" for line in second)
        assert [second[i] for i in (0, 1, 4, 5, 7)] == [first[i] for i in (0, 1, 4, 5, 7)]  # untouched, byte for byte

        script.asked.clear()
        assert main(argv) == 0
        assert script.asked == [] and "(0 new, 8 resumed): 8 scored" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*.tmp")) and not lock_path(out).exists()
    stale = tmp_path / ".out.jsonl.rejudge.tmp"
    stale.write_text("left by a run killed while re-judging\n")
    assert main(argv) == 0 and not stale.exists()


def test_a_judge_that_refused_connections_is_asked_again_once_it_is_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.judges._clock import closed_port

    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 5)])
    out = tmp_path / "out.jsonl"
    port = closed_port()
    argv = ["score", str(source), "-o", str(out), "--judge", f"http://127.0.0.1:{port}/v1", "--judge-model", "fake-judge", "--judge-retries", "0"]
    assert main(argv) == 1  # nothing listens: every row is a judge failure
    assert all(r["judge_status"] == "failed" for r in read_out(out))
    err = capsys.readouterr().err
    assert "warning: the judge failed on 4 of the last 4 rows; first, row 1: judge failed:" in err
    script = Judge(down=set())
    with FakeOpenAI(script, port=port):
        assert main(argv) == 0
    assert sorted(script.asked) == [1, 2, 3, 4]
    assert "(0 new, 4 resumed, 4 scored again): 4 scored" in capsys.readouterr().err


def test_rows_unscored_for_other_reasons_are_not_judged_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [
        row(1),
        row(2, source="no-such-task"),
        {**row(3), "judge_verdict": {"value": None, "status": "failed", "reason": "given in the input"}},
        row(4),  # the judge answers without a verdict: unparsable
        row(5),
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"

    def script(request: FakeRequest) -> Reply:
        return Reply(text="I would rather not say.") if asked(request) == 4 else Reply(text="Correct. \\boxed{1}")

    with FakeOpenAI(script) as server:
        argv = ["score", str(source), "-o", str(out), "--judge", server.base_url, "--judge-model", "fake-judge"]
        assert main(argv) == 1
        capsys.readouterr()
        before = out.read_bytes()
        statuses = [(r["status"], r["judge_status"]) for r in read_out(out)]
        assert statuses == [("scored", "ok"), ("unscored", None), ("unscored", "failed"), ("unscored", "unparsable"), ("scored", "ok")]
        requests = server.requests
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert server.requests == requests and out.read_bytes() == before
        assert "scoring again" not in err
        assert "1 rows are unscored: the judge answered without a usable verdict" in err
        assert "1 rows carry a judge_verdict that cannot be used" in err
        assert "1 unscored rows have a data_source no task is registered for" in err


def test_without_a_judge_the_hint_says_to_start_over_with_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1), row(2)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out)]) == 1
    assert main(["score", str(source), "-o", str(out)]) == 1  # nothing to judge again without a judge
    err = capsys.readouterr().err
    assert "1 rows have no judge_verdict and no judge was given: rerun with --judge JUDGE" in err and "--no-resume" in err
    assert "re-judg" not in err and "scoring again" not in err
    assert main(["score", str(source), "-o", str(out), "--judge", "rule", "--no-resume"]) == 0


def test_ctrl_c_while_rejudging_keeps_what_was_judged_and_loses_no_row(tmp_path: Path, judge_named: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 9)])
    out = tmp_path / "out.jsonl"
    argv = ["score", str(source), "-o", str(out), "--judge", "flaky-test", "--batch-size", "1"]
    judge_named("flaky-test", CountingJudge(fail=frozenset({answer(3), answer(4), answer(7)})))
    assert main(argv) == 1
    first = out.read_text(encoding="utf-8").splitlines()

    judge_named("flaky-test", CountingJudge(interrupt_on_call=3))  # Ctrl-C on the third re-judge call
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    second = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in second] == list(range(1, 9))
    assert [second[i] for i in (0, 1, 4, 5, 7)] == [first[i] for i in (0, 1, 4, 5, 7)]
    assert json.loads(second[2])["status"] == "scored"  # re-judged before the interruption, and kept
    left = [json.loads(line)["id"] for line in second if json.loads(line)["status"] == "unscored"]
    assert 7 in left and not list(tmp_path.glob(".*.tmp"))

    again = CountingJudge()
    judge_named("flaky-test", again)
    assert main(argv) == 0
    assert again.responses == [answer(i) for i in left]
    assert [r["status"] for r in read_out(out)] == ["scored"] * 8


def test_a_rewrite_that_fails_leaves_the_output_as_it_was(tmp_path: Path, judge_named: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]) -> None:
    rows = [row(i) for i in range(1, 7)]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    argv = ["score", str(source), "-o", str(out), "--judge", "flaky-test", "--batch-size", "1"]
    judge_named("flaky-test", CountingJudge(fail=frozenset({answer(2), answer(5)})))
    assert main(argv) == 1
    before = out.read_bytes()
    stale = tmp_path / ".out.jsonl.rejudge.tmp"
    stale.write_text("left by a run that crashed\n")
    rows[4] = {**rows[4], "id": 50}  # the input changed under the output
    write_jsonl(source, rows)
    judge_named("flaky-test", CountingJudge())
    assert main(argv) == 2
    assert "row 5 does not match input row 5 (key 'id' differs)" in capsys.readouterr().err
    assert out.read_bytes() == before and not stale.exists()


FLAKY_JUDGE = """
import asyncio
import os
from gtalign.reward import Verdict

CALLS = 0


class Flaky:
    name = "flaky"

    async def judge(self, requests):
        global CALLS
        CALLS += 1
        mode = os.environ["FLAKY_MODE"]
        if mode == "down":
            return [Verdict.failure("failed", "connection refused") for _ in requests]
        if mode == "hang-after-one" and CALLS > 1:
            await asyncio.sleep(3600)
        return [Verdict(1.0) for _ in requests]
"""


def test_a_run_killed_while_rejudging_leaves_the_output_whole(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("gtalign")
    if not script.exists():
        pytest.skip("the gtalign console script is not installed next to this interpreter")
    (tmp_path / "flaky_judge_for_test.py").write_text(FLAKY_JUDGE, encoding="utf-8")
    source = write_jsonl(tmp_path / "in.jsonl", [row(i) for i in range(1, 7)])
    out = tmp_path / "out.jsonl"
    argv = [str(script), "score", str(source), "-o", str(out), "--judge", "flaky_judge_for_test:Flaky", "--batch-size", "1"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    down = subprocess.run(argv, env={**env, "FLAKY_MODE": "down"}, capture_output=True, text=True, timeout=120)
    assert down.returncode == 1, down.stderr
    before = out.read_bytes()
    temporary = tmp_path / ".out.jsonl.rejudge.tmp"
    process = subprocess.Popen(argv, env={**env, "FLAKY_MODE": "hang-after-one"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (temporary.exists() and temporary.stat().st_size) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert temporary.stat().st_size, "the re-judging run never wrote its first row"
    finally:
        process.kill()
        process.wait(timeout=60)
    assert out.read_bytes() == before  # killed mid-rewrite: the output is as it was
    up = subprocess.run(argv, env={**env, "FLAKY_MODE": "up"}, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "(0 new, 6 resumed, 6 scored again)" in up.stderr
    assert [r["id"] for r in read_out(out)] == list(range(1, 7)) and not temporary.exists()


# --- the settings of a resume must match the output's --------------------------------------------


def test_every_row_records_its_settings(tmp_path: Path) -> None:
    from gtalign import __version__

    source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1), "{broken", row(3)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out), "--judge", "rule"]) == 1
    expected = {
        "schema": OUTPUT_SCHEMA,
        "version": __version__,
        "preset": "paper",
        "params": {"combine": "cobb_douglas", "ablation": False, "normalize": "none"},
        "judge": "rule",
        "unscored_as_zero": False,
    }
    assert [r[RUN_KEY] for r in read_out(out)] == [expected] * 3


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        ([], ["--unscored-as-zero"], "--unscored-as-zero off (this run: on): resume without --unscored-as-zero"),
        (["--unscored-as-zero"], [], "--unscored-as-zero on (this run: off): resume with --unscored-as-zero"),
        ([], ["--judge", "rule"], "judge none (this run: rule): resume with the same --judge"),
        (["--judge", "http://127.0.0.1:9/v1", "--judge-model", "a"], ["--judge", "http://127.0.0.1:9/v1", "--judge-model", "b"],
         "judge http://127.0.0.1:9/v1 model=a (this run: http://127.0.0.1:9/v1 model=b)"),
        ([], ["--preset", "paper-user"], "preset paper (this run: paper-user): resume with --preset paper,"),
        (["--preset", "paper-ablation"], ["--preset", "paper-ablation", "--batch-size", "2"],
         "--batch-size 256 (this run: 2; preset paper-ablation normalises per batch): resume with --batch-size 256,"),
    ],
)
def test_a_resume_with_other_settings_is_refused_naming_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: list[str], then: list[str], message: str
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    out = tmp_path / "out.jsonl"
    main(["score", str(source), "-o", str(out), *first])
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["score", str(source), "-o", str(out), *then]) == 2
    err = capsys.readouterr().err
    assert message in err and "--no-resume" in err
    assert out.read_bytes() == before
    assert main(["score", str(source), "-o", str(out), *then, "--no-resume"]) in (0, 1)
    assert len(read_out(out)) == 3


def test_a_resume_with_other_preset_parameters_or_version_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 3)])
    out = tmp_path / "out.jsonl"
    REGISTRY.register("preset", "variant-test", lambda **params: PaperPreset("variant-test", "cobb_douglas", **params), replace=True)
    try:
        assert main(["score", str(source), "-o", str(out), "--preset", "variant-test"]) == 0
        REGISTRY.register("preset", "variant-test", lambda **params: PaperPreset("variant-test", "linear", **params), replace=True)
        assert main(["score", str(source), "-o", str(out), "--preset", "variant-test"]) == 2
        assert "parameters of preset variant-test: combine='cobb_douglas' (this run: 'linear')" in capsys.readouterr().err
    finally:
        REGISTRY.unregister("preset", "variant-test")
    assert main(["score", str(source), "-o", str(out), "--no-resume"]) == 0
    monkeypatch.setattr("gtalign.cli._output.__version__", "99.0")
    capsys.readouterr()
    assert main(["score", str(source), "-o", str(out)]) == 2
    assert re.search(r"was scored with other settings: gtalign \S+ \(this is gtalign 99\.0\): pass --no-resume", capsys.readouterr().err)


def test_an_output_without_settings_is_not_resumed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out)]) == 0
    old = [{k: v for k, v in r.items() if k != RUN_KEY} for r in read_out(out)][:2]  # as gtalign 0.1 wrote it
    write_jsonl(out, old)
    assert main(["score", str(source), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"row 1 has no `{RUN_KEY}` settings" in err and "pass --no-resume to start over" in err
    assert main(["score", str(source), "-o", str(out), "--no-resume"]) == 0
    assert len(read_out(out)) == 3


# --- one run at a time on an output -----------------------------------------------------------


def test_the_lock_is_exclusive_and_removed_on_release(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with output_lock(out) as path:
        assert path == lock_path(out) == tmp_path / "out.jsonl.lock"
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputLocked, match=rf"out.jsonl is being written by another run \(pid {os.getpid()}\)"), output_lock(out):
            pass
    assert not path.exists()
    with output_lock(out):
        pass


def test_a_lock_file_removed_by_its_last_holder_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.jsonl"
    with output_lock(out) as path:
        stale = os.open(path, os.O_RDWR)  # opened by a second run just before the first releases
    assert not path.exists()
    real_open = os.open
    opened: list[int] = []

    def open_stale_first(*args: object, **kwargs: object) -> int:
        fd = stale if not opened else real_open(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(fd)
        return fd

    monkeypatch.setattr(os, "open", open_stale_first)
    with output_lock(out):
        monkeypatch.setattr(os, "open", real_open)
        assert len(opened) == 2 and opened[1] != stale  # the removed file's lock was dropped for a new one
        with pytest.raises(OutputLocked), output_lock(out):
            pass


HOLDER = """
import sys
from gtalign.data import output_lock

with output_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def _holder(out: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_run_on_a_locked_output_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 121)])
    out = tmp_path / "out.jsonl"
    holder = _holder(out)  # another process, as a second `gtalign score` on the same output would be
    try:
        assert main(["score", str(source), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"is being written by another run (pid {holder.pid})" in err and "choose another --output" in err
        assert not out.exists()
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0
    assert main(["score", str(source), "-o", str(out)]) == 0
    assert main(["score", str(source), "-o", str(out)]) == 0
    assert [r["id"] for r in read_out(out)] == list(range(1, 121))


def test_a_crashed_holder_does_not_keep_the_output_locked(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1)])
    out = tmp_path / "out.jsonl"
    holder = _holder(out)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    assert lock_path(out).exists()  # left behind by the crash, but no longer locked
    assert main(["score", str(source), "-o", str(out)]) == 0
    assert not lock_path(out).exists()


def test_a_symlink_and_its_target_share_one_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "data" / "out.jsonl"
    target.parent.mkdir()
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)  # dangling until the first run writes the target
    with output_lock(link) as path:
        assert path == lock_path(target) == target.with_name("out.jsonl.lock")
        with pytest.raises(OutputLocked), output_lock(target):
            pass
    with output_lock(target), pytest.raises(OutputLocked), output_lock(link):
        pass
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    holder = _holder(target)  # a run writing the target; a second run is given the link
    try:
        assert main(["score", str(source), "-o", str(link)]) == 2
        assert "is being written by another run" in capsys.readouterr().err
    finally:
        holder.communicate("", timeout=60)
    assert main(["score", str(source), "-o", str(link)]) == 0
    assert link.is_symlink() and [r["id"] for r in read_out(target)] == [1, 2, 3]


def test_without_fcntl_there_is_no_lock_and_one_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    from gtalign.data import _lock

    monkeypatch.setattr(_lock, "fcntl", None)  # as on Windows
    monkeypatch.setattr(_lock, "_warned", False)
    out = tmp_path / "out.jsonl"
    with caplog.at_level("WARNING", logger="gtalign.data._lock"):
        with output_lock(out), output_lock(out):  # nothing excludes the second
            pass
        source = write_jsonl(tmp_path / "in.jsonl", [row(1, verdict=1)])
        assert main(["score", str(source), "-o", str(out)]) == 0
    warnings = [record.getMessage() for record in caplog.records if record.name == "gtalign.data._lock"]
    assert len(warnings) == 1 and "no file locking on this system (fcntl is missing" in warnings[0]
    assert not lock_path(out).exists()
    capsys.readouterr()
    assert main(["score", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "holds OUT.lock" in help_text and "where file locking is missing (no fcntl, e.g. Windows) there is no lock, and a warning says so" in help_text


# --- the settings record ------------------------------------------------------------------------


def test_run_settings_keep_the_schema_1_record_and_read_it_back() -> None:
    from gtalign.cli._output import RunSettings
    from gtalign.reward import get_preset

    settings = RunSettings.of(get_preset("paper"), judge="rule", unscored_as_zero=False, batch_size=8)
    record = settings.to_json()
    assert list(record) == ["schema", "version", "preset", "params", "judge", "unscored_as_zero"]  # as written before RunSettings
    assert record["schema"] == OUTPUT_SCHEMA == 1 and record["params"] == {"combine": "cobb_douglas", "ablation": False, "normalize": "none"}
    assert RunSettings.from_json(json.loads(json.dumps(record))) == settings
    ablation = RunSettings.of(get_preset("paper-ablation"), judge=None, unscored_as_zero=True, batch_size=8)
    assert list(ablation.to_json())[-1] == "batch_size" and RunSettings.from_json(ablation.to_json()) == ablation
    assert settings.diff(settings) is None
    assert settings.diff(dataclasses.replace(settings, judge="http://x/v1 model=m", unscored_as_zero=True)) == "judge rule (this run: http://x/v1 model=m)"
    assert settings.diff(dataclasses.replace(settings, unscored_as_zero=True)) == "--unscored-as-zero off (this run: on)"
    assert settings.differing(ablation) == "preset"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (None, "has no `gtalign_run` settings"),
        ([1], "has a malformed `gtalign_run`: an array, not an object"),
        ({"schema": "1"}, "'schema' must be an integer, got a string"),
        ({"schema": 2}, "has rows of output schema 2; this gtalign writes schema 1"),
        ({"schema": 1, "version": "0.1"}, "has a malformed `gtalign_run`: no 'preset', 'params', 'judge', 'unscored_as_zero'"),
        ({"schema": 1, "colour": "red"}, "unknown setting 'colour'"),
        ({"schema": 1, "version": "0.1", "preset": "paper", "params": {}, "judge": None, "unscored_as_zero": "yes"},
         "'unscored_as_zero' must be true or false, got a string"),
        ({"schema": 1, "version": "0.1", "preset": "paper", "params": {}, "judge": None, "unscored_as_zero": False, "batch_size": 0},
         "'batch_size' must be a positive integer, got a number"),
    ],
)
def test_a_malformed_settings_record_is_a_clear_error(record: object, message: str) -> None:
    from gtalign.cli._output import RunSettings, SettingsError

    with pytest.raises(SettingsError, match=re.escape(message)):
        RunSettings.from_json(record)


def test_a_resume_over_a_malformed_settings_record_names_the_row_and_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [row(i, verdict=1) for i in range(1, 4)])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(source), "-o", str(out)]) == 0
    rows = read_out(out)
    rows[1][RUN_KEY]["unscored_as_zero"] = "no"
    write_jsonl(out, rows)
    assert main(["score", str(source), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "out.jsonl row 2 has a malformed `gtalign_run`: 'unscored_as_zero' must be true or false, got a string" in err
    assert "--no-resume" in err
