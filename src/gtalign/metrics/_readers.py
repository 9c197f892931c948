"""Readers: records from a run log or from a verl validation dump (the only I/O of the package).

A verl validation dump is JSONL, one generation per line, with ``input``, ``output``, ``score`` and
the reward's extra fields (``user_reward``, ``llm_reward``, ``answer_reward``, ``format_reward``,
``source``, ...). It has no prompt ids, so a row's id is its line number (from 0): two dumps of the
same validation set join by position. It has no judge verdict either; on the ambiguity and safety
tasks the logged ``answer_reward`` is the verdict itself (SPEC §3), so it is recorded as
``judge_value`` there and the classification views work. A row's label comes from its ground truth
(``gts``, ``ground_truth`` or ``reward_model.ground_truth``) when the dump has one, else from the
benchmark it was asked from when one is given (``labels=``, joined on the prompt text:
`gtalign.metrics._labels`).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from gtalign.eval._log import LogProblem, RunHeader, SampleRecord, read_run_log
from gtalign.metrics._labels import LabelJoin, join_labels

if TYPE_CHECKING:
    from gtalign.benchmarks import Benchmark

Labels = Union["Benchmark", str, "os.PathLike[str]"]
"""A benchmark to take a dump's labels from: loaded, or a name or file for `load_benchmark`."""

__all__ = ["LabelJoin", "Labels", "LoadedRun", "labels_benchmark", "load_records", "load_run", "read_verl_dump",
           "records_from_verl_dump"]

_TEXT_FIELDS = ("input", "output", "gts", "ground_truth", "reward_model", "extra_info", "prompt")


@dataclass(frozen=True, slots=True)
class LoadedRun:
    """What `load_run` read: the records, where from (``kind`` ``run-log`` or ``verl-dump``), a
    name for reports, the run header (run logs only), the lines that were skipped, and how a
    dump's rows were labelled from a benchmark (``labels``; None when none was given)."""

    path: Path
    kind: str
    name: str
    records: tuple[SampleRecord, ...]
    header: RunHeader | None = None
    problems: tuple[LogProblem, ...] = ()
    labels: LabelJoin | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ground_truth(row: Mapping[str, Any]) -> str:
    for key in ("gts", "ground_truth"):
        if isinstance(row.get(key), str):
            return row[key]
    model = row.get("reward_model")
    if isinstance(model, Mapping) and isinstance(model.get("ground_truth"), str):
        return model["ground_truth"]
    return ""


def _task(source: str) -> Any:
    from gtalign._registry import REGISTRY, RegistryError

    if ("task", source) not in REGISTRY:
        return None
    try:
        return REGISTRY.get("task", source)
    except RegistryError:
        return None


def _record(index: int, row: Mapping[str, Any]) -> SampleRecord:
    from gtalign.eval._answer import answer_parse

    output = row.get("output")
    if not isinstance(output, str):
        raise ValueError("no 'output' text")
    source = row.get("source", row.get("data_source"))
    if not isinstance(source, str) or not source:
        raise ValueError("no 'source' (or 'data_source')")
    reward: dict[str, Any] = {
        key: value for key, value in row.items()
        if key not in _TEXT_FIELDS and (isinstance(value, str) or _number(value) is not None)
    }
    reward["source"] = source
    u, l = _number(row.get("user_reward")), _number(row.get("llm_reward"))
    if _number(reward.get("utility")) is None and u is not None and l is not None and u * l >= 0:
        reward["utility"] = math.sqrt(u * l)
    ground_truth = _ground_truth(row)
    task = _task(source)
    label = task.label(ground_truth) if task is not None else ""
    answer = _number(row.get("answer_reward"))
    if task is not None and task.task in ("ambiguity", "safety") and answer is not None and task.valid(answer):
        reward.setdefault("judge_value", answer)
        reward.setdefault("judge_status", "ok")
    scored = _number(row.get("score")) is not None
    return SampleRecord(
        id=str(index), epoch=0, benchmark=source, data_source=source, label=label,
        status="scored" if scored else "unscored",
        prompt=({"role": "user", "content": row["input"]},) if isinstance(row.get("input"), str) else (),
        ground_truth=ground_truth, answer=output, parse=answer_parse(output), reward=reward,
        error="" if scored else "the dump row has no finite 'score'",
    )


def read_verl_dump(path: str | Path, labels: Benchmark | None = None) -> tuple[list[SampleRecord], list[LogProblem], LabelJoin | None]:
    """Records of a verl validation dump, the lines skipped (not JSON, no output or source), and,
    given the ``labels`` benchmark, how its rows were joined to the dump's (`join_labels`)."""
    records: list[SampleRecord] = []
    problems: list[LogProblem] = []
    with Path(path).open("rb") as handle:
        for index, raw in enumerate(handle):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                problems.append(LogProblem(index + 1, f"not JSON: {exc}"))
                continue
            try:
                if not isinstance(row, Mapping):
                    raise ValueError(f"a JSON {type(row).__name__}, not an object")
                records.append(_record(index, row))
            except (ValueError, TypeError) as exc:
                problems.append(LogProblem(index + 1, str(exc)))
    join = None
    if labels is not None:
        records, join = join_labels(records, labels.rows, f"{labels.name} ({labels.location})")
    _warn_unlabelled(path, records, join)
    return records, problems, join


def _warn_unlabelled(path: str | Path, records: Sequence[SampleRecord], join: LabelJoin | None) -> None:
    """A dump in verl's minimal form (input, output, score, rewards, source) has no ground truth, so
    safety and ambiguity rows get no label: the action mix by label, the classification views and
    SPEC section 5's "harmful 0.5 counts as 1" then cannot apply. Say so once per dump, and how to
    fix it."""
    missing: dict[str, int] = {}
    for record in records:
        task = _task(record.data_source)
        if task is not None and task.task in ("ambiguity", "safety") and not record.label:
            missing[record.data_source] = missing.get(record.data_source, 0) + 1
    if missing:
        listed = ", ".join(f"{source} ({count})" for source, count in sorted(missing.items()))
        fix = (f"the join with the benchmark left them out ({join.describe()})" if join is not None else
               "pass the benchmark the dump was asked from to label its rows by their prompt: gtalign metrics DUMP "
               "--labels BENCHMARK_OR_FILE (load_run(path, labels=...)), or add a 'ground_truth' (or 'gts') field "
               "to the dump rows")
        warnings.warn(
            f"{path}: {sum(missing.values())} row(s) of labelled tasks carry no ground truth ({listed}): their label-based "
            f"views (action mix by label, classification, harmful 0.5 counted as 1) are left out; {fix}",
            stacklevel=3,
        )


def records_from_verl_dump(path: str | Path, labels: Labels | None = None, *,
                           labels_data: str | os.PathLike[str] | None = None) -> list[SampleRecord]:
    """The records of a verl validation dump (see the module's docstring), labelled from
    ``labels`` when given (as `load_run`). A bad line is skipped with a warning that names it,
    never fatal; `load_run` returns the problems instead."""
    records, problems, _ = read_verl_dump(path, labels_benchmark(labels, labels_data))
    if problems:
        shown = "; ".join(str(p) for p in problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        warnings.warn(f"{path}: skipped {len(problems)} line(s): {shown}", stacklevel=2)
    return records


def _is_run_log(path: Path, lines: int = 20) -> bool:
    """A run log has a header or sample line among its first lines (one of them may be corrupt)."""
    with path.open("rb") as handle:
        for _, raw in zip(range(lines), handle, strict=False):
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if isinstance(data, Mapping) and data.get("kind") in ("header", "sample"):
                return True
    return False


def labels_benchmark(labels: Labels | None, data: str | os.PathLike[str] | None) -> Benchmark | None:
    """``labels`` as a loaded `Benchmark` (loaded once, so several dumps share it); None stays None."""
    if labels is None or not isinstance(labels, (str, os.PathLike)):
        return labels
    from gtalign.benchmarks import load_benchmark

    return load_benchmark(labels, data=data)


def load_run(path: str | Path, labels: Labels | None = None, *,
             labels_data: str | os.PathLike[str] | None = None) -> LoadedRun:
    """A run folder (its ``run.jsonl``) or run log file, else a verl validation dump.

    ``labels``: the benchmark a dump was asked from (a loaded `Benchmark`, or a name or file for
    `gtalign.benchmarks.load_benchmark`, with ``labels_data`` as its ``data``); dump rows without a
    ground truth take their benchmark row's label and ground truth, matched on the prompt text
    (`LoadedRun.labels` says how many matched). A run log carries its own labels: it is read as is.
    Raises ``BenchmarkError`` (a ``ValueError``) when the benchmark cannot be loaded.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "run.jsonl").is_file():
            raise FileNotFoundError(f"{path} is a folder without a run.jsonl: not a gtalign run folder")
        path = path / "run.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such run folder, run log or verl dump")
    if _is_run_log(path):
        log = read_run_log(path)
        return LoadedRun(path, "run-log", log.name, log.records, log.header, log.problems)
    records, problems, join = read_verl_dump(path, labels_benchmark(labels, labels_data))
    if not records and problems:
        raise ValueError(f"{path} is neither a gtalign run log nor a verl validation dump: {problems[0]}")
    return LoadedRun(path, "verl-dump", path.stem, tuple(records), None, tuple(problems), join)


def load_records(path: str | Path) -> list[SampleRecord]:
    """The records of a run folder, run log or verl dump (skipped lines: see `load_run`)."""
    return list(load_run(path).records)
