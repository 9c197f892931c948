"""Answers taken from another run (``answers_from``, ``--answers-from RUN_DIR``): the same generated
answers scored under another preset or judge, without running the model again.

`read_answer_source` reads the source run's log; `resolve_answers_from` gives the config its
source's answer settings (`take_answer_settings`); `check_source_rows` refuses a plan whose rows
differ from what the source answered (the data changed); `source_answer` finds a row's answer, or
says why there is none (that row is recorded as ``generation_failed`` and never generated).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gtalign.benchmarks import BenchmarkRow
from gtalign.eval._config import EvalConfig, EvalSetupError, take_answer_settings
from gtalign.eval._log import RunHeader, SampleRecord, read_run_log
from gtalign.eval._resume import LOG_NAME, row_differs

__all__ = ["AnswerSource", "check_source_rows", "read_answer_source", "resolve_answers_from", "source_answer"]


@dataclass(frozen=True, slots=True)
class AnswerSource:
    """A run whose answers are scored again: its folder as given, its header, its records by key."""

    run_dir: str
    header: RunHeader
    records: Mapping[tuple[str, int], SampleRecord]

    @property
    def backend(self) -> str:
        """The header's ``backend`` of a run that scores these answers."""
        return f"answers from {self.run_dir} (backend {self.header.backend})"


def read_answer_source(run_dir: str | os.PathLike[str]) -> AnswerSource:
    """The run log in ``run_dir``; `EvalSetupError` when there is none or it has no header. Lines
    that cannot be read are skipped: their rows have no answer."""
    folder = Path(run_dir)
    log = folder / LOG_NAME if folder.is_dir() or not folder.name.endswith(".jsonl") else folder
    if not log.is_file():
        raise EvalSetupError(f"answers_from {os.fspath(run_dir)}: no run log there ({log} does not exist); "
                             "give the --out folder of a gtalign eval run")
    found = read_run_log(log)
    if found.header is None:
        why = "; ".join(str(problem) for problem in found.problems[:3])
        raise EvalSetupError(f"answers_from {os.fspath(run_dir)}: {log} is not a run log this gtalign reads ({why})")
    return AnswerSource(os.fspath(run_dir), found.header, found.by_key())


def resolve_answers_from(config: EvalConfig, source: AnswerSource, given: Mapping[str, object] | None = None,
                         flags: Mapping[str, str] | None = None) -> EvalConfig:
    """``config`` with ``source``'s answer settings and config hash (`take_answer_settings`)."""
    return take_answer_settings(config, source.header.config, source.header.config_hash, given, flags)


def check_source_rows(source: AnswerSource, rows: Sequence[BenchmarkRow], epochs: int) -> list[str]:
    """Refuse (`EvalSetupError`, naming the row) a planned row whose prompt, ground truth or data
    source differs from the source's record of it; notes on source records no planned row has."""
    by_id = {row.id: row for row in rows}
    unplanned = 0
    for record in source.records.values():
        row = by_id.get(record.id)
        if row is None or record.epoch >= epochs:
            unplanned += 1
            continue
        changed = row_differs(record, row)
        if changed is not None:
            raise EvalSetupError(
                f"answers_from {source.run_dir}: {changed} of {record.id} differs from the benchmark's row now: the data "
                "changed since that run, so its answers are not answers to these prompts; run the model again instead")
    if unplanned:
        return [f"answers_from {source.run_dir}: {unplanned} of its records are not among this run's rows and are not used"]
    return []


def source_answer(source: AnswerSource, key: tuple[str, int]) -> SampleRecord | str:
    """The source's record of ``key`` when the model answered there (scored or unscored, whatever
    its judge said: this run judges it again), else why there is no answer."""
    record = source.records.get(key)
    where = f"no answer in {source.run_dir} for {key[0]}/{key[1]}"
    if record is None:
        return f"{where}: the run has no record of it"
    if record.status not in ("scored", "unscored"):
        return f"{where}: its record is {record.status} ({record.error or 'no reason given'})"
    return record
