"""Long benchmark runs as a list of named steps, each one or more ordinary gtalign commands.

A step that finished leaves ``OUT/STEP.done`` and is skipped next time; a step that was killed is
run again, and every gtalign command these benchmarks use resumes (from its newest checkpoint, or
its own output file), so rerunning the benchmark's command continues it. Each command's exit code,
wall time, CPU time and peak memory (the child's own, from ``wait4``) go to ``OUT/steps.jsonl``.
Shared by ``bench_training.py`` and ``bench_games.py``; imported from beside them.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: the benchmarks run its .venv's gtalign and write into its benchmarks/ folder."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    commands: tuple[tuple[str, ...], ...]


def stamp() -> str:
    return time.strftime("%H:%M:%S")


def _wait(child: subprocess.Popen[bytes]) -> tuple[int, resource.struct_rusage]:
    """The child's exit code and its own resource use (CPU, peak RSS), not the other steps'."""
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except KeyboardInterrupt:
        child.terminate()
        child.wait()
        raise
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage


def run_steps(out: Path, steps: Sequence[Step], threads: int, until: str | None = None, only: Sequence[str] = ()) -> int:
    """Run every step not yet done (or only those named in ``only``, e.g. to run a step beside
    another in a second process), stopping after ``until``; the first failing command's exit code,
    else 0."""
    out.mkdir(parents=True, exist_ok=True)
    for step in steps:
        if only and step.name not in only:
            continue
        done = out / f"{step.name}.done"
        if done.exists():
            print(f"[{stamp()}] {step.name}: done before", flush=True)
        else:
            started = time.time()
            for command in step.commands:
                print(f"[{stamp()}] {step.name}: {shlex.join(command)}", flush=True)
                command_started = time.time()
                child = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
                code, usage = _wait(child)
                with (out / "steps.jsonl").open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"step": step.name, "command": shlex.join(command), "exit": code,
                                          "wall_s": round(time.time() - command_started, 1),
                                          "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                                          "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2), "finished": time.time()}) + "\n")
                if code != 0:
                    print(f"[{stamp()}] {step.name}: exit {code}; rerun the same command to resume", flush=True)
                    return code
            done.write_text(f"{time.time() - started:.0f} s\n")
            print(f"[{stamp()}] {step.name}: done in {time.time() - started:.0f} s", flush=True)
        if step.name == until:
            break
    return 0


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of ``path`` ([] when it does not exist); a line that is not JSON (a write cut
    off by a kill) is a ValueError naming the file and the line."""
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not a JSON line ({exc.msg}); remove it, or rerun the step that wrote it") from None
    return rows


def steps_log(out: Path, key: str = r"--name (\S+)") -> list[dict[str, Any]]:
    """The last logged row of each step and command (a resumed step logs again); commands of one
    step are told apart by the first group of ``key`` in their text."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for row in read_jsonl(out / "steps.jsonl"):
        name = re.search(key, row["command"])
        last[(row["step"], name.group(1) if name else "")] = row
    return list(last.values())


def portable(command: str, labels: Mapping[str, Path | None]) -> str:
    """``command`` without this machine's paths, for a results file: each labelled path becomes its
    label (``{"OUT": out}``: the run folder becomes OUT), the checkout's prefix goes, and a
    ``--data``/``--data-dir`` folder becomes DATA."""
    for label, path in labels.items():
        if path is not None:
            command = command.replace(str(path), label)
    command = command.replace(str(ROOT) + "/", "")
    return re.sub(r"(--data(?:-dir)?) (/\S+)", r"\1 DATA", command)
