"""Loading a benchmark: find its data, read every row, keep the good ones and report the others.

A row that cannot be used (unreadable, a missing or mistyped key, a ground truth its task cannot
label, a prompt that does not end with a user turn) is reported in `Benchmark.skipped` with its
index and the reason; it never stops the load and is never dropped silently.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, get_args

import gtalign.data as data_io
from gtalign._registry import REGISTRY
from gtalign.benchmarks._specs import BenchmarkError, BenchmarkSpec, get_benchmark
from gtalign.benchmarks._types import BenchmarkRow, PromptMode
from gtalign.data import JSONL_SUFFIXES, PARQUET_SUFFIXES, Row, RowSource, SourceError
from gtalign.protocol import build_messages
from gtalign.protocol._prompt import messages_from_row
from gtalign.reward._tasks import ADVBENCH, AMBIGUITY, SAFETY, TaskSpec, last_user_message

__all__ = ["DATA_ENV", "DEFAULT_DATA", "Benchmark", "SkippedRow", "default_data", "load_benchmark", "resolve_spec"]

DATA_ENV = "GTALIGN_DATA"
DEFAULT_DATA = Path("..") / "shared" / "data" / "gtalign"
"""The paper's data folder, relative to the current directory (where a checkout keeps it)."""

_FILE_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES
_PROMPT_MODES: tuple[str, ...] = get_args(PromptMode)
_RULE_SPECS: Mapping[str, TaskSpec] = {"ambiguity": AMBIGUITY, "safety": SAFETY, "harmful": ADVBENCH}
_EXPECTED_LABELS = {
    "ambiguity": "'multipleQAs###...' / 'singleAnswer###...' or 'ambiguous' / 'non_ambiguous'",
    "safety": "'harmful' or 'unharmful'",
}


class SkippedRow(NamedTuple):
    """A row left out because it cannot be used: its index in the source and why."""

    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A loaded benchmark: its rows in source order, the rows that could not be used, and where
    they were read from (``source``). ``warnings`` name results that are valid but suspicious
    (rows of other data sources left out, a ``sources`` filter that matched nothing, a data
    source no reward task knows)."""

    name: str
    spec: BenchmarkSpec
    source: RowSource
    rows: tuple[BenchmarkRow, ...]
    skipped: tuple[SkippedRow, ...] = ()
    prompt: PromptMode = "stored"
    warnings: tuple[str, ...] = ()

    @property
    def location(self) -> str:
        """The file, folder or hub id the rows came from."""
        return self.source.location

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[BenchmarkRow]:
        return iter(self.rows)

    def label_counts(self) -> dict[str, int]:
        """Rows per label (``""`` for rows without one)."""
        return dict(Counter(row.label for row in self.rows))


def resolve_spec(name_or_path: str | os.PathLike[str] | BenchmarkSpec) -> BenchmarkSpec:
    """The spec a benchmark name, dotted path or file stands for.

    A ``.jsonl`` / ``.parquet`` path (or any `os.PathLike`) is an ad-hoc benchmark named after the
    file's stem, whose rows declare their own ``data_source``; any other string is a name."""
    if isinstance(name_or_path, BenchmarkSpec):
        return name_or_path
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if isinstance(name_or_path, str) and path.suffix.lower() not in _FILE_SUFFIXES:
        return get_benchmark(text)
    if not path.is_file():
        raise BenchmarkError(f"no such benchmark file: {text}")
    return BenchmarkSpec(path.stem, "custom", labels="task", path=str(path), description=f"rows of {text}")


def default_data(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The paper's data folder when none is given: ``$GTALIGN_DATA`` if set, else
    ``../shared/data/gtalign`` when it exists; otherwise an error that says what to pass."""
    environ = os.environ if environ is None else environ
    configured = environ.get(DATA_ENV, "").strip()
    if configured:
        folder = Path(configured).expanduser()
        if not folder.is_dir():
            raise BenchmarkError(f"{DATA_ENV}={configured} is not a folder; point it at the paper's data folder or pass --data PATH")
        return folder
    folder = (cwd or Path.cwd()) / DEFAULT_DATA
    if folder.is_dir():
        return folder
    raise BenchmarkError(
        f"no data folder: {DEFAULT_DATA} does not exist here ({cwd or Path.cwd()}) and {DATA_ENV} is not set. "
        "Pass --data PATH (data= in Python): a folder in the paper's layout, a .parquet/.jsonl file, "
        "or a dataset hub id owner/name; or run the shipped benchmark 'sample'"
    )


def _looks_local(text: str) -> bool:
    """Whether ``data`` is meant as a path (so a missing one is an error, never a hub id)."""
    return (
        text.startswith((".", "/", "~", "\\"))
        or "\\" in text
        or text.count("/") != 1
        or Path(text).suffix.lower() in _FILE_SUFFIXES
        or Path(text).drive != ""
    )


def _is_dataset_folder(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("dataset_dict.json", "state.json"))


def _locate(spec: BenchmarkSpec, data: str | os.PathLike[str] | None, split: str | None) -> RowSource:
    """Where ``spec``'s rows are: its own file, or in ``data`` (a folder in the paper's layout, a
    file, a dataset folder or a hub id), or in the default data folder."""
    try:
        if spec.path is not None:
            return RowSource.resolve(spec.path, split)
        if data is None:
            return _in_folder(spec, default_data(), split)
        text = os.fspath(data)
        path = Path(text).expanduser()
        if path.is_dir():
            if _is_dataset_folder(path):
                return RowSource("dataset", str(path), split)
            return _in_folder(spec, path, split)
        if path.is_file():
            return RowSource.resolve(str(path), split)
        if _looks_local(text):
            raise BenchmarkError(f"no such file or folder: {text} (pass --data PATH to the paper's data folder or a file, or a hub id owner/name)")
        return RowSource.resolve(text, split)
    except SourceError as exc:
        raise BenchmarkError(f"benchmark {spec.name!r}: {exc}") from exc


def _in_folder(spec: BenchmarkSpec, folder: Path, split: str | None) -> RowSource:
    relative = spec.file_for(split)
    candidate = folder / relative
    if not candidate.is_file():
        sibling = folder / Path(relative).name  # the benchmark's own folder, e.g. train_test/math-hard
        if not sibling.is_file():
            raise BenchmarkError(
                f"no {spec.name!r} data in {folder}: expected {candidate} (the paper's layout) or {sibling}; "
                "pass --data with the folder holding the paper's data, or the file itself"
            )
        candidate = sibling
    return RowSource.resolve(str(candidate))


def _read(source: RowSource) -> Iterator[Row]:
    """The source's rows; a dataset goes through `gtalign.data.read_dataset`."""
    if source.kind == "dataset":
        return data_io.read_dataset(source.location, source.split)
    return source.rows()


class _Unusable(Exception):
    """Why one row cannot be used (becomes a `SkippedRow`)."""


def _text(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None:
        raise _Unusable(f"missing key {key!r}")
    if not isinstance(value, str):
        raise _Unusable(f"key {key!r} must be a string, got {type(value).__name__}")
    return value


def _ground_truth(fields: Mapping[str, Any]) -> str:
    if fields.get("ground_truth") is not None:
        value, key = fields["ground_truth"], "ground_truth"
    else:
        nested = fields.get("reward_model")
        if nested is None:
            raise _Unusable("missing key 'reward_model.ground_truth' (or 'ground_truth')")
        if not isinstance(nested, Mapping):
            raise _Unusable(f"key 'reward_model' must be an object, got {type(nested).__name__}")
        value, key = nested.get("ground_truth"), "reward_model.ground_truth"
        if value is None:
            raise _Unusable(f"missing key {key!r}")
    if not isinstance(value, str):
        raise _Unusable(f"key {key!r} must be a string, got {type(value).__name__}")
    return value


def _question(extra_info: Mapping[str, Any]) -> str:
    single = extra_info.get("single_turn_prompt")
    if isinstance(single, str) and single.strip():
        return single
    question = last_user_message(extra_info)
    if question.strip():
        return question
    raise _Unusable("no question to build the prompt from: 'extra_info' has no 'single_turn_prompt' and no user turn in 'chat_history'")


def _messages(fields: Mapping[str, Any], extra_info: Mapping[str, Any], mode: PromptMode) -> tuple[dict[str, str], ...]:
    if mode == "builder":
        try:
            return tuple(build_messages(_question(extra_info)))
        except (ValueError, TypeError) as exc:
            raise _Unusable(f"cannot build the prompt: {exc}") from None
    stored = fields.get("prompt")
    if stored is None:
        raise _Unusable("missing key 'prompt' (pass prompt='builder' to build it from extra_info)")
    if isinstance(stored, str):
        messages = [{"role": "user", "content": stored}]
    else:
        try:
            messages = messages_from_row(fields)
        except ValueError as exc:
            raise _Unusable(f"key 'prompt': {exc}") from None
    if not messages or messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise _Unusable("key 'prompt' must end with a non-empty user message")
    return tuple(messages)


@dataclass
class _Reader:
    """Turns rows into `BenchmarkRow`s for one load (caches the task of each data source)."""

    spec: BenchmarkSpec
    mode: PromptMode
    sources: frozenset[str] | None
    excluded: Counter[str] = field(default_factory=Counter)
    unknown_tasks: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)
    empty_truths: list[str] = field(default_factory=list)
    _tasks: dict[str, Any] = field(default_factory=dict)

    def task(self, data_source: str) -> Any:
        """The task registered for ``data_source``, or None (a name from the data is never
        imported as a dotted path)."""
        if data_source not in self._tasks:
            self._tasks[data_source] = REGISTRY.get("task", data_source) if ("task", data_source) in REGISTRY else None
        return self._tasks[data_source]

    def label(self, data_source: str, ground_truth: str) -> str:
        rule = self.spec.labels
        if rule == "none":
            return ""
        task = _RULE_SPECS.get(rule) or self.task(data_source)
        labeller = getattr(task, "label", None)
        if not callable(labeller):
            return ""
        label = str(labeller(ground_truth))
        kind = "harmful" if getattr(task, "always_harmful", False) else getattr(task, "task", "")
        if not label and kind in _EXPECTED_LABELS:
            raise _Unusable(f"ground truth {ground_truth[:80]!r} gives no label for the {kind} task; expected {_EXPECTED_LABELS[kind]}")
        return label

    def read(self, row: Row) -> BenchmarkRow | SkippedRow | None:
        """The row as a `BenchmarkRow`, a `SkippedRow` saying why not, or None when a filter
        leaves it out."""
        index = row.number - 1
        if not row.ok or row.fields is None:
            return SkippedRow(index, row.error or "no fields")
        try:
            return self._convert(index, row.fields)
        except _Unusable as exc:
            return SkippedRow(index, str(exc))
        except Exception as exc:  # a row must never stop the load
            return SkippedRow(index, f"{type(exc).__name__}: {exc}")

    def _convert(self, index: int, fields: Mapping[str, Any]) -> BenchmarkRow | None:
        data_source = _text(fields, "data_source").strip()
        if not data_source:
            raise _Unusable("key 'data_source' is empty")
        self.seen.add(data_source)
        if (self.spec.data_sources and data_source not in self.spec.data_sources) or (
            self.sources is not None and data_source not in self.sources
        ):
            self.excluded[data_source] += 1
            return None
        ground_truth = _ground_truth(fields)
        extra_info = fields.get("extra_info")
        if extra_info is None:
            extra_info = {}
        elif not isinstance(extra_info, Mapping):
            raise _Unusable(f"key 'extra_info' must be an object, got {type(extra_info).__name__}")
        label = self.label(data_source, ground_truth)
        messages = _messages(fields, extra_info, self.mode)
        if self.task(data_source) is None:
            self.unknown_tasks[data_source] += 1
        row_id = f"{self.spec.name}/{index}"
        if not ground_truth.strip():
            self.empty_truths.append(row_id)
        return BenchmarkRow(
            id=row_id,
            benchmark=self.spec.name,
            data_source=data_source,
            messages=messages,
            ground_truth=ground_truth,
            label=label,
            extra_info=MappingProxyType(dict(extra_info)),
        )


def _check_options(limit: int | None, seed: int | None, prompt: str, sources: Iterable[str] | str | None) -> frozenset[str] | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BenchmarkError(f"limit must be a positive integer, got {limit!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BenchmarkError(f"seed must be an integer, got {seed!r}")
    if prompt not in _PROMPT_MODES:
        raise BenchmarkError(f"prompt must be one of {', '.join(_PROMPT_MODES)}, got {prompt!r}")
    if sources is None:
        return None
    chosen = frozenset([sources] if isinstance(sources, str) else sources)
    if not chosen or not all(isinstance(name, str) and name for name in chosen):
        raise BenchmarkError(f"sources must be non-empty data source names, got {sorted(map(repr, chosen))}")
    return chosen


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _warnings(spec: BenchmarkSpec, reader: _Reader, sources: frozenset[str] | None, complete: bool) -> tuple[str, ...]:
    """Notes on what was left out; ``complete`` is False when a limit stopped reading early (so a
    source not seen yet may well be further on)."""
    notes = []
    outside = {name: n for name, n in reader.excluded.items() if spec.data_sources and name not in spec.data_sources}
    if outside:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(outside.items()))
        notes.append(f"{_rows(sum(outside.values()))} of other data sources left out (this benchmark is {', '.join(spec.data_sources)}): {listed}")
    if sources is not None and complete:
        for name in sorted(sources - reader.seen):
            found = ", ".join(sorted(reader.seen)) or "none"
            notes.append(f"source {name!r} matches no row (data sources read: {found})")
    if reader.empty_truths:
        shown = ", ".join(reader.empty_truths[:5]) + (", ..." if len(reader.empty_truths) > 5 else "")
        notes.append(
            f"{_rows(len(reader.empty_truths))} with an empty ground truth ({shown}): a judge that needs "
            "a reference answers such a row with an invalid verdict, so it stays unscored"
        )
    for name, n in sorted(reader.unknown_tasks.items()):
        notes.append(
            f"data source {name!r} ({_rows(n)}) is not a registered task, so no reward preset can score it; "
            f"register one: REGISTRY.register('task', {name!r}, ...)"
        )
    return tuple(notes)


def sample_indices(count: int, limit: int, seed: int) -> list[int]:
    """``limit`` of ``range(count)`` drawn with ``random.Random(seed)``, in increasing order (all
    of them when ``count <= limit``): a seeded sample kept in file order."""
    if count <= limit:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), limit))


def load_benchmark(
    name_or_path: str | os.PathLike[str] | BenchmarkSpec,
    *,
    data: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    seed: int | None = None,
    sources: Iterable[str] | str | None = None,
    prompt: PromptMode = "stored",
    split: str | None = None,
) -> Benchmark:
    """Load a benchmark by name (``math-hard``, ``sample``, a registered one) or from a file.

    ``data``: a folder in the paper's layout (default: ``$GTALIGN_DATA``, else
    ``../shared/data/gtalign`` when present), one file, a dataset folder, or a dataset hub id
    (read through `gtalign.data.read_dataset`; a path that looks local is never tried as one).
    A benchmark with a file of its own (``sample``, a path) ignores ``data``. ``split``: another
    split of the same folder (``train``) or of the dataset. ``sources``: keep rows of these data
    sources. ``limit``: keep that many rows: the first ones (reading stops there, so ``skipped``
    covers the rows read), or with ``seed`` a random sample of all usable rows, kept in source
    order. ``prompt``: the row's ``stored`` prompt, or one rebuilt by gtalign's ``builder`` from
    the row's question (``extra_info.single_turn_prompt``, else the last user turn of
    ``chat_history``). Ids are ``benchmark/index``, the index being the row's place in the
    source before any filter or sample, so runs on the same data join on them.
    """
    chosen = _check_options(limit, seed, prompt, sources)
    spec = resolve_spec(name_or_path)
    source = _locate(spec, data, split)
    reader = _Reader(spec, prompt, chosen)
    kept: list[BenchmarkRow] = []
    skipped: list[SkippedRow] = []
    complete = True
    try:
        for row in _read(source):
            result = reader.read(row)
            if isinstance(result, SkippedRow):
                skipped.append(result)
            elif result is not None:
                kept.append(result)
                if limit is not None and seed is None and len(kept) >= limit:
                    complete = False
                    break
    except SourceError as exc:
        raise BenchmarkError(f"benchmark {spec.name!r}: {exc}") from exc
    if limit is not None and seed is not None and len(kept) > limit:
        kept = [kept[i] for i in sample_indices(len(kept), limit, seed)]
    return Benchmark(spec.name, spec, source, tuple(kept), tuple(skipped), prompt, _warnings(spec, reader, chosen, complete))
