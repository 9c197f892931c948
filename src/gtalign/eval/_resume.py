"""Resuming a run from its log: which folder a run writes to, and what an existing log lets it keep.

A rerun of the same command on the same folder reads ``run.jsonl``, refuses another config (naming
the first setting that differs) or changed benchmark data (naming the row), keeps every record that
is `SampleRecord.final` and runs the rest. A torn last line (a run killed while writing it) is cut
and its row runs again; a corrupt line elsewhere is reported and its row runs again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from gtalign.benchmarks import BenchmarkRow
from gtalign.data import truncate_torn_tail
from gtalign.eval._config import EvalConfig
from gtalign.eval._log import RunHeader, SampleRecord, read_run_log

__all__ = ["LOG_NAME", "ResumeRefused", "ResumeState", "choose_run_dir", "read_resume_state", "row_differs"]

LOG_NAME = "run.jsonl"
_TORN_ID = re.compile(rb'"id": "((?:[^"\\]|\\.)*)", "epoch": (\d+)')
_TAIL = 1 << 16


class ResumeRefused(Exception):
    """The folder holds a run this one cannot continue; the message says why and what to pass."""


def _holds_run(folder: Path) -> bool:
    log = folder / LOG_NAME
    return log.is_file() and log.stat().st_size > 0


def choose_run_dir(out_dir: str | os.PathLike[str], new: bool) -> tuple[Path, str | None]:
    """The folder to write: ``out_dir``, or with ``new`` when it already holds a run, the first of
    ``OUT-2``, ``OUT-3``, ... that does not; and a note saying where, when it moved."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ResumeRefused(f"{out} is a file, not a run folder; give a folder for --out")
    if not new or not _holds_run(out):
        return out, None
    number = 2
    while _holds_run(candidate := out.with_name(f"{out.name}-{number}")) or candidate.is_file():
        number += 1
    return candidate, f"{out} holds a run; --new writes this one to {candidate}"


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What an existing log gives a run. ``header`` None: there is no usable log yet (write one).
    ``kept``: final records of the planned samples; ``retry``: records found that run again;
    ``rejudge``: those of them whose answer is kept and only judged again (the judge failed)."""

    header: RunHeader | None = None
    kept: Mapping[tuple[str, int], SampleRecord] = field(default_factory=lambda: MappingProxyType({}))
    retry: int = 0
    notes: tuple[str, ...] = ()
    rejudge: Mapping[tuple[str, int], SampleRecord] = field(default_factory=lambda: MappingProxyType({}))


def _torn_row(path: Path) -> str:
    """Which record a torn last line was (from the start of its JSON), for the note."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - _TAIL))
        tail = handle.read()
    fragment = tail[tail.rfind(b"\n") + 1:]
    found = _TORN_ID.search(fragment)
    if found is None:
        return "a torn last line"
    return f"the torn record of {found.group(1).decode('utf-8', 'replace')} epoch {int(found.group(2))}"


def row_differs(record: SampleRecord, row: BenchmarkRow) -> str | None:
    """What of ``record`` (its prompt, ground truth or data source) differs from ``row``, or None."""
    if tuple(dict(m) for m in record.prompt) != tuple({str(k): str(v) for k, v in m.items()} for m in row.messages):
        return "its prompt"
    if record.ground_truth != row.ground_truth:
        return "its ground truth"
    if record.data_source != row.data_source:
        return "its data_source"
    return None


def read_resume_state(log: Path, config: EvalConfig, rows: Sequence[BenchmarkRow]) -> ResumeState:
    """Check ``log`` against ``config`` and the planned ``rows``; cut a torn last line. Raises
    `ResumeRefused` for another config, changed data, or a file that is not a run log."""
    if not log.is_file() or log.stat().st_size == 0:
        return ResumeState()
    torn = None
    with open(log, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            torn = _torn_row(log)
    found = read_run_log(log)
    notes: list[str] = []
    others = [p for p in found.problems if not p.reason.startswith("truncated line")]
    if found.header is None:
        if not found.records and all(p.reason == "no run header" for p in others):
            with open(log, "r+b") as handle:
                handle.truncate(0)
            return ResumeState(notes=(f"{log} held only a torn header (a run killed at its start): starting it again",))
        why = "; ".join(str(p) for p in others) or "no run header"
        raise ResumeRefused(f"{log} is not a run log this gtalign can continue ({why}); "
                            "choose another --out, or pass --new to start a new run beside it")
    if found.header.config_hash != config.hash:
        difference = config.diff(found.header.config) or "the config hash differs"
        raise ResumeRefused(
            f"{log} was written by another config ({difference}, this command vs the run): run the same command "
            "to resume it, or pass --new to start a new run beside it")
    recorded_name = found.header.config.get("name")
    if config.name is not None and recorded_name != config.name:
        notes.append(f"the run keeps the name it was started with ({recorded_name!r}); --name {config.name!r} is not used")
    by_id = {row.id: row for row in rows}
    kept: dict[tuple[str, int], SampleRecord] = {}
    rejudge: dict[tuple[str, int], SampleRecord] = {}
    retry = 0
    for record in found.records:
        row = by_id.get(record.id)
        if row is None or record.epoch >= config.epochs:
            raise ResumeRefused(
                f"{log} holds {record.id} epoch {record.epoch}, which the benchmarks no longer yield: the data changed "
                "since the run began; pass --new to start a new run on the data as it is")
        changed = row_differs(record, row)
        if changed is not None:
            raise ResumeRefused(
                f"{log}: {changed} of {record.id} differs from the benchmark's row now: the data changed since the run "
                "began; pass --new to start a new run on the data as it is")
        if record.final:
            kept[record.key] = record
        else:
            retry += 1
            if record.status in ("scored", "unscored"):  # the model answered; only the judge failed
                rejudge[record.key] = record
    if torn is not None:
        cut = truncate_torn_tail(log)
        notes.append(f"cut {torn} ({cut} bytes, left by a run killed while writing it): that row runs again")
    for problem in others:
        notes.append(f"{log} line {problem.line} skipped ({problem.reason}): its row, if any, runs again")
    if kept or retry:
        again = f", {len(rejudge)} of them only judged again" if rejudge else ""
        notes.append(f"resuming {log}: {len(kept)} samples kept, {retry} failed ones run again{again}")
    return ResumeState(found.header, MappingProxyType(kept), retry, tuple(notes), MappingProxyType(rejudge))
