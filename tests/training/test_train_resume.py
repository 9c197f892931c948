"""Resume after a real kill: ``gtalign train sft`` in a subprocess is killed with SIGKILL as soon as
its first checkpoint is complete (found by polling the run folder), a half-written checkpoint is
left behind as a kill while saving would leave it, and the same command then finishes the run
from the newest complete checkpoint: the torn one removed, every step trained once in the
checkpoint's history, the run record and metrics log telling both runs apart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gtalign.cli._main import main
from gtalign.training._train_run import FINAL_DIR, METRICS_LOG, RECORD_NAME, complete_checkpoint, latest_checkpoint
from tests.training.test_train_fixtures import embedded_model, finite, sft_data  # noqa: F401

pytestmark = pytest.mark.engine  # TRL's trainers run here

DEADLINE = 240.0  # seconds the first checkpoint may take on a slow, busy machine before the test gives up


def test_a_killed_run_resumes_from_its_newest_complete_checkpoint(embedded_model: Path, sft_data: Path,  # noqa: F811
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = ["train", "sft", "--data", str(sft_data), "--out", str(out), "--lora-param", "r=4", "--threads", "1",
            "--max-steps", "4", "--save-steps", "1", "--batch-size", "2", "--seed", "0",
            "--trl", "gradient_checkpointing=false", "--trl", "bf16=false", "--trl", "max_length=256"]
    log = tmp_path / "killed.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "gtalign.cli", *argv], stdout=subprocess.DEVNULL, stderr=stderr,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
        started = time.monotonic()
        try:
            while not complete_checkpoint(out / "checkpoint-1"):
                assert process.poll() is None, f"the run ended before its first checkpoint: {log.read_text()[-2000:]}"
                assert time.monotonic() - started < DEADLINE, "no checkpoint in time"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait()
    assert process.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    newest = latest_checkpoint(out)
    assert newest is not None and not (out / FINAL_DIR).exists()
    killed_at = int(newest.name.split("-")[1])
    assert killed_at < 4
    record = json.loads((out / RECORD_NAME).read_text())
    assert [run["finished"] for run in record["runs"]] == [False]

    torn = out / f"checkpoint-{killed_at + 1}"  # what a kill while saving leaves: files, no trainer_state.json
    torn.mkdir(exist_ok=True)
    (torn / "adapter_model.safetensors").write_bytes(b"torn")
    (torn / "trainer_state.json").unlink(missing_ok=True)

    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"removed {torn}" in err and f"resuming from {newest}" in err
    assert f"(resumed from checkpoint-{killed_at})" in err

    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    trained = [row for row in state["log_history"] if "loss" in row]
    assert [row["step"] for row in trained] == [1, 2, 3, 4]  # every step once: none lost, none repeated
    assert finite([row["loss"] for row in trained])
    record = json.loads((out / RECORD_NAME).read_text())
    assert [(run["resumed_from"], run["finished"]) for run in record["runs"]] == [(None, False), (newest.name, True)]
    assert record["runs"][1]["global_step"] == 4
    logged = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    second = [row["step"] for row in logged if row["run"] == 2 and "loss" in row]
    assert second == list(range(killed_at + 1, 5))
    assert (out / FINAL_DIR / "adapter_model.safetensors").is_file()
