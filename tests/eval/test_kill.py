"""A real ``gtalign eval`` process killed with SIGKILL mid-flight, twice, then rerun to the end: its log
holds the same records as an uninterrupted run, row for row (timings aside), and no row was
generated twice except those in flight at a kill.

The model is a slow loopback server (`gtalign.testing.FakeOpenAI`, its answers delayed), so rows are
always being generated while the test watches the log grow; each kill lands as soon as the log
has a given number of records and the server has requests in flight (polling the file and the
server's counter, never sleeping for a guessed time). The server sees every generation request,
so it can tell which rows were generated more than once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from gtalign.eval import read_run_log
from gtalign.testing import FakeOpenAI, Reply
from tests.eval._fakes import four_blocks, question_of

ROOT = Path(__file__).resolve().parents[2]
ROWS, EPOCHS, CONCURRENCY = 5, 4, 3  # 5 distinct questions: (question, epoch) names a row
LATENCY = 0.15
GUARD = 120.0
"""Seconds a wait gives up after: a guard against a hang, never a measure."""

Key = tuple[str, int]


def script(request) -> Reply:
    return Reply(four_blocks(question_of(request.messages), request.body.get("seed")))


def command(server: FakeOpenAI, out: Path) -> list[str]:
    return [sys.executable, "-m", "tests.eval._fakes", "eval", "--benchmark", "fake", "--backend", server.base_url,
            "--model", server.model, "--preset", "paper", "--judge", "rule", "--epochs", str(EPOCHS),
            "--concurrency", str(CONCURRENCY), "--out", str(out)]


def environment() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "FAKE_ROWS": str(ROWS)}


def complete_lines(log: Path) -> int:
    return log.read_bytes().count(b"\n") if log.exists() else 0


def written(log: Path) -> Counter[Key]:
    """The rows the log holds a record of (the seed of epoch e is e)."""
    return Counter((record.prompt[-1]["content"], record.epoch) for record in read_run_log(log).records)


def requested(server: FakeOpenAI) -> Counter[Key]:
    """Every generation request the server received, by row."""
    return Counter((request.messages[-1]["content"], request.body["seed"]) for request in server.received)


def kill_mid_flight(server: FakeOpenAI, out: Path, lines: int) -> None:
    """Run until the log has at least ``lines`` complete lines while rows are with the server, then SIGKILL."""
    log = out / "run.jsonl"
    process = subprocess.Popen(command(server, out), cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + GUARD
        while not (complete_lines(log) >= lines and server.in_flight > 0):
            assert process.poll() is None, f"the run ended before the kill: {process.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"no kill point within {GUARD}s ({complete_lines(log)} lines)"
            time.sleep(0.005)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def test_killed_twice_mid_flight_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "killed"
    log = out / "run.jsonl"
    lost: list[Counter[Key]] = []  # per kill: rows the server was asked for that the log does not hold
    with FakeOpenAI(script, latency=LATENCY, kind="vllm", model="m") as server:
        kill_mid_flight(server, out, 1 + 4)  # header + 4 records
        lost.append(requested(server) - written(log))
        first = complete_lines(log)
        kill_mid_flight(server, out, first + 5)  # resumed: 5 more
        whole = log.read_bytes()
        last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
        torn = json.loads(whole[last_start:])
        log.write_bytes(whole[: last_start + 50])  # as if the kill had also caught the last line being written
        lost.append(requested(server) - lost[0] - written(log))

        finished = subprocess.run(command(server, out), cwd=ROOT, env=environment(), capture_output=True, text=True,
                                  timeout=GUARD)
        assert finished.returncode == 0, finished.stderr
        assert f"cut the torn record of {torn['id']} epoch {torn['epoch']} (" in finished.stderr
        total = requested(server)

        clean = tmp_path / "clean"  # the same server, so the same --backend URL and config hash
        uninterrupted = subprocess.run(command(server, clean), cwd=ROOT, env=environment(), capture_output=True, text=True,
                                       timeout=GUARD)
        assert uninterrupted.returncode == 0, uninterrupted.stderr

    assert all(sum(kill.values()) >= 1 for kill in lost), f"a kill landed with nothing in flight: {lost}"
    every_row = Counter({key: 1 for key in written(log)})
    assert len(every_row) == ROWS * EPOCHS
    # Each row was generated once, plus once more for each kill that caught it in flight, and never otherwise.
    assert total == every_row + lost[0] + lost[1]

    resumed, reference = read_run_log(out), read_run_log(clean)
    assert resumed.problems == () and reference.problems == ()
    assert resumed.header.config == reference.header.config and resumed.header.config_hash == reference.header.config_hash
    assert len(reference.records) == ROWS * EPOCHS

    def comparable(log):
        return {record.key: replace(record, seconds={}) for record in log.records}

    assert comparable(resumed) == comparable(reference)
