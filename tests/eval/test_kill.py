"""A real ``gtalign eval`` process killed with SIGKILL mid-run, twice, then rerun: the log it finishes
with holds the same records as an uninterrupted run (seconds aside).

The fake backend (`tests.eval._fakes.SlowBackend`) answers a known number of calls and then hangs,
so each killed run is stuck at a known number of records; the test waits for that many lines in
the log (polling the file, never sleeping for a guessed time) and then kills it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from gtalign.eval import read_run_log

ROOT = Path(__file__).resolve().parents[2]
ROWS, EPOCHS, HANG_AFTER = 8, 2, 5


def command(out: Path) -> list[str]:
    return [sys.executable, "-m", "tests.eval._fakes", "eval", "--benchmark", "fake", "--backend", "tests.eval._fakes:SlowBackend",
            "--preset", "paper", "--judge", "rule", "--epochs", str(EPOCHS), "--concurrency", "2", "--out", str(out)]


def environment(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "FAKE_ROWS": str(ROWS), **extra}


def complete_lines(log: Path) -> int:
    return log.read_bytes().count(b"\n") if log.exists() else 0


def run_until_stuck_then_kill(out: Path, lines: int) -> None:
    """Start a run whose backend hangs after `HANG_AFTER` calls, wait until the log has ``lines``
    complete lines, and SIGKILL it."""
    log = out / "run.jsonl"
    process = subprocess.Popen(command(out), cwd=ROOT, env=environment(FAKE_HANG_AFTER=str(HANG_AFTER)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while complete_lines(log) < lines and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, f"the run ended on its own: {process.stderr.read().decode()}"
        assert complete_lines(log) == lines, f"expected {lines} lines, found {complete_lines(log)}"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def test_killed_twice_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    run_until_stuck_then_kill(out, 1 + HANG_AFTER)  # header + 5 records
    run_until_stuck_then_kill(out, 1 + 2 * HANG_AFTER)  # resumed: 5 more
    log = out / "run.jsonl"
    whole = log.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    torn = json.loads(whole[last_start:])
    log.write_bytes(whole[: last_start + 50])  # as if the second kill had landed while the last line was written

    finished = subprocess.run(command(out), cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert f"cut the torn record of {torn['id']} epoch {torn['epoch']} (" in finished.stderr
    assert "that row runs again" in finished.stderr
    assert f"{ROWS * EPOCHS - 2 * HANG_AFTER + 1} run now, {2 * HANG_AFTER - 1} kept from an earlier run" in finished.stderr

    clean = tmp_path / "clean"
    uninterrupted = subprocess.run(command(clean), cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    resumed, reference = read_run_log(out), read_run_log(clean)
    assert resumed.problems == () and reference.problems == ()
    assert resumed.header.config == reference.header.config and resumed.header.config_hash == reference.header.config_hash
    assert len(reference.records) == ROWS * EPOCHS

    def comparable(log):
        return {record.key: replace(record, seconds={}) for record in log.records}

    assert comparable(resumed) == comparable(reference)
