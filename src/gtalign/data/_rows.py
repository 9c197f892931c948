"""Streaming row I/O: JSONL, parquet and dataset readers, the row -> `Sample` mapping, and an
append-only JSONL writer.

Every reader yields `Row` records one at a time, in constant memory (JSONL line by line, parquet
batch by batch, datasets in streaming mode). A row that cannot be read (bad JSON, not an object,
invalid UTF-8) is still yielded, as a `Row` with an ``error``: it keeps its place, so outputs stay
aligned with inputs and a resumed run skips exactly the rows already written.
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from gtalign.reward._types import Sample, Verdict, VerdictStatus

__all__ = [
    "DATASETS_EXTRA",
    "JSONL_SUFFIXES",
    "MAX_NESTING",
    "PARQUET_SUFFIXES",
    "JsonlWriter",
    "NestingError",
    "Row",
    "RowError",
    "RowSource",
    "SourceError",
    "SourceKind",
    "parse_verdict",
    "plain",
    "read_dataset",
    "read_jsonl",
    "read_parquet",
    "row_to_sample",
    "too_deep",
    "truncate_torn_tail",
]

SourceKind = Literal["jsonl", "parquet", "dataset"]
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
DATASETS_EXTRA = "pip install 'gtalign[hub]'  (or just: pip install datasets)"
MAX_NESTING = 128
"""Deepest nesting of objects and arrays a row may have (serde_json's default limit). Python's JSON
encoder and decoder, and most code that walks values, recurse once per level, so a row nested near
the interpreter's recursion limit (1,000) fails wherever it goes next: it is an error row instead."""

_VERDICT_STATUSES: tuple[VerdictStatus, ...] = ("ok", "failed", "unparsable", "invalid", "refused")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")


class SourceError(ValueError):
    """An input that cannot be opened at all (missing file, unknown format, missing extra)."""


class NestingError(ValueError):
    """A value nested deeper than `MAX_NESTING` levels of objects and arrays."""


class RowError(ValueError):
    """A row that was read but does not map onto a `Sample`; names the row and the key."""

    def __init__(self, message: str, *, row: int, key: str | None = None) -> None:
        super().__init__(message)
        self.row = row
        self.key = key


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its 1-based number in the stream, its fields, or why it could not be read.

    ``fields`` is a plain, JSON-ready dict (None when the row could not be parsed at all);
    ``line`` is the line number in a JSONL file (None for other sources).
    """

    number: int
    fields: Mapping[str, Any] | None
    error: str = ""
    line: int | None = None

    @property
    def ok(self) -> bool:
        return self.fields is not None and not self.error

    @property
    def where(self) -> str:
        """``row 3``, or ``row 3 (line 5)`` when blank lines make the two differ."""
        if self.line is None or self.line == self.number:
            return f"row {self.number}"
        return f"row {self.number} (line {self.line})"


def plain(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON-ready Python: numpy arrays and scalars, tuples, bytes, dates and
    decimals (what parquet and ``datasets`` rows may hold) become lists, numbers and strings.

    Raises `NestingError` for a value nested deeper than `MAX_NESTING`."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (Mapping, list, tuple)):
        if _depth >= MAX_NESTING:
            raise NestingError(f"nested deeper than {MAX_NESTING} levels")
        if isinstance(value, Mapping):
            return {str(k): plain(v, _depth + 1) for k, v in value.items()}
        return [plain(v, _depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return plain(tolist(), _depth)
    item = getattr(value, "item", None)
    if callable(item):
        return plain(item(), _depth)
    return str(value)


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` (decoded JSON) nests objects and arrays more than ``limit`` levels deep;
    iterative, so it is safe on any depth."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _json_default(value: Any) -> Any:
    converted = plain(value)
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return converted


def _at(where: str, key: str) -> str:
    return f"{where}: key {key!r}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _verdict_error(message: str, where: str, number: int, key: str, sub: str = "") -> RowError:
    name = f"{key}.{sub}" if sub else key
    return RowError(f"{_at(where, name)} {message}", row=number, key=name)


def parse_verdict(value: Any, *, where: str = "row", number: int = 0, key: str = "judge_verdict") -> Verdict | None:
    """A ``judge_verdict`` field as a `Verdict`: a number on the judge's scale, or an object
    ``{"value": number | null, "status": "ok" | "failed" | ..., "reason": str}``; None when absent.
    ``where`` and ``number`` name the row in errors."""
    if value is None:
        return None
    if _number(value):
        if not math.isfinite(value):
            raise _verdict_error(f"must be a finite number, got {value!r}", where, number, key)
        return Verdict(float(value), judge="judge_verdict")
    if not isinstance(value, Mapping):
        raise _verdict_error(f"must be a number or an object {{value, status, reason}}, got {type(value).__name__}", where, number, key)
    unknown = sorted(map(str, set(value) - {"value", "status", "reason", "raw", "judge"}))
    if unknown:
        raise _verdict_error(f"has unknown keys {unknown}; valid: value, status, reason, raw, judge", where, number, key)
    status = value.get("status", "ok")
    if status not in _VERDICT_STATUSES:
        raise _verdict_error(f"must be one of {', '.join(_VERDICT_STATUSES)}, got {status!r}", where, number, key, "status")
    reason = value.get("reason", "")
    if not isinstance(reason, str):
        raise _verdict_error(f"must be a string, got {type(reason).__name__}", where, number, key, "reason")
    found = value.get("value")
    if found is not None and not (_number(found) and math.isfinite(found)):
        raise _verdict_error(f"must be a finite number or null, got {found!r}", where, number, key, "value")
    if status == "ok" and found is None:
        raise _verdict_error("is required when the status is 'ok'", where, number, key, "value")
    if status != "ok" and found is not None:
        raise _verdict_error(f"must be null when the status is {status!r}", where, number, key, "value")
    raw = value.get("raw")
    judge = str(value.get("judge") or "judge_verdict")
    return Verdict(None if found is None else float(found), status, reason, None if raw is None else str(raw), judge)


def _text(fields: Mapping[str, Any], row: Row, *keys: str) -> str:
    for key in keys:
        found = fields.get(key)
        if found is not None:
            if not isinstance(found, str):
                raise RowError(f"{_at(row.where, key)} must be a string, got {type(found).__name__}", row=row.number, key=key)
            return found
    names = " or ".join(repr(k) for k in keys)
    raise RowError(f"{row.where}: missing key {names}", row=row.number, key=keys[0])


def _ground_truth(fields: Mapping[str, Any], row: Row) -> str:
    if fields.get("ground_truth") is not None:
        return _text(fields, row, "ground_truth")
    if fields.get("reward_model") is None:
        raise RowError(f"{row.where}: missing key 'ground_truth' (or 'reward_model.ground_truth')", row=row.number, key="ground_truth")
    nested = fields["reward_model"]
    key = "reward_model.ground_truth"
    if not isinstance(nested, Mapping):
        raise RowError(f"{_at(row.where, 'reward_model')} must be an object, got {type(nested).__name__}", row=row.number, key="reward_model")
    found = nested.get("ground_truth")
    if found is None:
        raise RowError(f"{row.where}: missing key {key!r}", row=row.number, key=key)
    if not isinstance(found, str):
        raise RowError(f"{_at(row.where, key)} must be a string, got {type(found).__name__}", row=row.number, key=key)
    return found


def row_to_sample(row: Row) -> Sample:
    """Map a row onto a `Sample`.

    Keys: ``data_source``; ``completion`` (or ``solution_str``); ``ground_truth`` (or the paper
    data's ``reward_model.ground_truth``); optional ``extra_info`` (an object); optional
    ``judge_verdict`` (see `parse_verdict`). Raises `RowError` naming the row and the key.
    """
    if not row.ok or row.fields is None:
        raise RowError(row.error or f"{row.where}: no fields", row=row.number)
    fields = row.fields
    data_source = _text(fields, row, "data_source")
    if not data_source.strip():
        raise RowError(f"{_at(row.where, 'data_source')} is empty", row=row.number, key="data_source")
    completion = _text(fields, row, "completion", "solution_str")
    ground_truth = _ground_truth(fields, row)
    extra_info = fields.get("extra_info")
    if extra_info is None:
        extra_info = {}
    elif not isinstance(extra_info, Mapping):
        raise RowError(f"{_at(row.where, 'extra_info')} must be an object, got {type(extra_info).__name__}", row=row.number, key="extra_info")
    verdict = parse_verdict(fields.get("judge_verdict"), where=row.where, number=row.number)
    return Sample(data_source, completion, ground_truth, extra_info, verdict)


def _decode_line(raw: bytes, number: int, line: int) -> Row:
    try:
        text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return Row(number, None, f"line {line}: not valid UTF-8 ({exc.reason} at byte {exc.start})", line)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return Row(number, None, f"line {line}: invalid JSON: {exc}", line)
    except RecursionError:
        return _too_deep_row(number, line)
    # Counting brackets is fast and bounds the depth, so only a row with many of them is walked.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and too_deep(value):
        return _too_deep_row(number, line)
    if not isinstance(value, dict):
        return Row(number, None, f"line {line}: a row must be a JSON object, got {type(value).__name__}", line)
    return Row(number, value, "", line)


def _too_deep_row(number: int, line: int) -> Row:
    return Row(number, None, f"line {line}: JSON nested deeper than {MAX_NESTING} levels of objects and arrays", line)


def read_jsonl(source: str | os.PathLike[str] | IO[bytes], skip: int = 0) -> Iterator[Row]:
    """Rows of a JSONL file (a path, or an open binary stream), line by line; blank lines are
    not rows. The first ``skip`` rows are passed over without being parsed."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            yield from _jsonl_rows(handle, skip)
    else:
        yield from _jsonl_rows(source, skip)


def _jsonl_rows(handle: IO[bytes], skip: int) -> Iterator[Row]:
    number = 0
    for line, raw in enumerate(handle, start=1):
        if raw.isspace():
            continue
        number += 1
        if number <= skip:
            continue
        yield _decode_line(raw, number, line)


def read_parquet(path: str | os.PathLike[str], skip: int = 0, batch_size: int = 512) -> Iterator[Row]:
    """Rows of a parquet file, ``batch_size`` at a time; skipped row groups are never read."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise SourceError(f"{os.fspath(path)}: cannot read as parquet: {exc}") from exc
    metadata = parquet.metadata
    first, number = 0, 0
    groups: list[int] = []
    for index in range(metadata.num_row_groups):
        size = metadata.row_group(index).num_rows
        if number + size <= skip:
            number += size
            continue
        if not groups:
            first = number
        groups.append(index)
        number += size
    if not groups:
        return
    number = first
    for batch in parquet.iter_batches(batch_size=batch_size, row_groups=groups):
        if number + batch.num_rows <= skip:
            number += batch.num_rows
            continue
        if number < skip:
            batch = batch.slice(skip - number)
            number = skip
        for record in batch.to_pylist():
            number += 1
            yield _plain_row(number, record)


def _plain_row(number: int, record: Any) -> Row:
    """A parquet or dataset record as a `Row`; one that cannot be made plain is an error row."""
    try:
        fields = plain(record)
    except NestingError as exc:
        return Row(number, None, f"row {number}: {exc}")
    if not isinstance(fields, dict):
        return Row(number, None, f"row {number}: a row must be a mapping, got {type(record).__name__}")
    return Row(number, fields)


def _import_datasets(location: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise SourceError(
            f"{location!r} is read with the `datasets` library, which is not installed: {DATASETS_EXTRA}. "
            "A parquet or JSONL file can be read without it: pass its path."
        ) from None
    return datasets


def _pick_split(splits: Mapping[str, Any], split: str | None, location: str) -> Any:
    names = sorted(splits)
    if split is None:
        if len(names) == 1:
            return splits[names[0]]
        raise SourceError(f"{location!r} has splits {names}: choose one with --split")
    if split not in splits:
        raise SourceError(f"{location!r} has no split {split!r}; valid: {names}")
    return splits[split]


def read_dataset(location: str, split: str | None = None, skip: int = 0) -> Iterator[Row]:
    """Rows of a dataset hub id or a local dataset folder, streamed through ``datasets``.

    A folder written by ``save_to_disk`` is loaded with ``load_from_disk``; anything else (a hub
    id, a folder of data files) with ``load_dataset(..., streaming=True)``.
    """
    datasets = _import_datasets(location)
    folder = Path(location)
    try:
        if folder.is_dir() and any((folder / name).exists() for name in ("dataset_dict.json", "state.json")):
            loaded = datasets.load_from_disk(location)
            if isinstance(loaded, Mapping):
                loaded = _pick_split(loaded, split, location)
            elif split is not None:
                raise SourceError(f"{location!r} is a single dataset without splits; drop --split")
            stream: Iterable[Any] = loaded.to_iterable_dataset() if hasattr(loaded, "to_iterable_dataset") else loaded
        else:
            loaded = datasets.load_dataset(location, split=split, streaming=True)
            if isinstance(loaded, Mapping):
                loaded = _pick_split(loaded, None, location)
            stream = loaded
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"cannot load dataset {location!r}: {type(exc).__name__}: {exc}") from exc
    if skip:
        stream = stream.skip(skip) if hasattr(stream, "skip") else _drop(stream, skip)
    for number, record in enumerate(stream, start=skip + 1):
        yield _plain_row(number, record)


def _drop(stream: Iterable[Any], count: int) -> Iterator[Any]:
    iterator = iter(stream)
    for _ in range(count):
        if next(iterator, _SENTINEL) is _SENTINEL:
            return
    yield from iterator


_SENTINEL = object()


@dataclass(frozen=True, slots=True)
class RowSource:
    """Where rows come from: a JSONL or parquet file (by extension) or a dataset (hub id or folder).

    Build it with `resolve`, which refuses missing files and unknown extensions up front.
    """

    kind: SourceKind
    location: str
    split: str | None = None

    @classmethod
    def resolve(cls, spec: str | os.PathLike[str], split: str | None = None) -> RowSource:
        text = os.fspath(spec)
        path = Path(text)
        suffix = path.suffix.lower()
        if suffix in JSONL_SUFFIXES or suffix in PARQUET_SUFFIXES:
            if not path.is_file():
                raise SourceError(f"no such file: {text}")
            if split is not None:
                raise SourceError("--split applies to datasets (a hub id or a dataset folder), not to files")
            return cls("jsonl" if suffix in JSONL_SUFFIXES else "parquet", text)
        if path.is_dir():
            return cls("dataset", text, split)
        if path.exists():
            raise SourceError(
                f"{text}: unknown file type {suffix or '(no extension)'!r}; "
                f"expected {', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES)}, a dataset folder or a hub id"
            )
        # The file system first: only a missing path of the form owner/name is a hub id, and not
        # when owner/ is a local folder (loading a hub id that does not exist takes ~30 s).
        if _HUB_ID.match(text):
            owner = text.partition("/")[0]
            if not Path(owner).is_dir():
                return cls("dataset", text, split)
            raise SourceError(f"no such file or directory: {text} ({owner}/ is a local folder, so {text} is not read as a dataset hub id)")
        raise SourceError(f"no such file or directory, and not a dataset hub id (owner/name): {text}")

    @property
    def is_hub(self) -> bool:
        """Whether the rows come from the dataset hub (a hub id, not a local file or folder)."""
        return self.kind == "dataset" and not Path(self.location).is_dir()

    def rows(self, skip: int = 0, batch_size: int = 512) -> Iterator[Row]:
        """The rows after the first ``skip``, in order."""
        if self.kind == "jsonl":
            return read_jsonl(self.location, skip)
        if self.kind == "parquet":
            return read_parquet(self.location, skip, batch_size)
        return read_dataset(self.location, self.split, skip)

    def count(self) -> int | None:
        """The number of rows when it is cheap to know (parquet metadata, a scan of JSONL lines)."""
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(self.location).metadata.num_rows)
        if self.kind == "jsonl":
            with open(self.location, "rb") as handle:
                return sum(1 for raw in handle if not raw.isspace())
        return None


class JsonlWriter:
    """Appends rows to a JSONL file (``-``: standard output), one line each, flushed to the OS after
    every call, so a crash or Ctrl-C loses nothing already written (at worst one torn last line,
    which `truncate_torn_tail` removes before a resumed run appends).

    Text is UTF-8; a lone surrogate (which a JSON ``\\ud800`` escape can put in a string) is
    written back as the same ``\\uXXXX`` escape instead of failing the run.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = True) -> None:
        self.path = Path(path)
        self.written = 0
        self._stdout = os.fspath(path) == "-"
        self._handle: IO[bytes] | None
        if self._stdout:
            buffer = getattr(sys.stdout, "buffer", None)
            if buffer is None:
                raise ValueError("standard output has no byte buffer to write JSONL to; write to a file")
            sys.stdout.flush()
            self._handle = buffer
            return
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab" if append else "wb")

    @staticmethod
    def dumps(row: Mapping[str, Any]) -> str:
        return json.dumps(row, ensure_ascii=False, default=_json_default)

    def write(self, row: Mapping[str, Any]) -> None:
        self.write_many((row,))

    def write_many(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write ``rows`` as one chunk and flush; returns how many were written."""
        return self.write_lines([self.dumps(row) for row in rows])

    def write_lines(self, lines: Sequence[str]) -> int:
        """Write rows already serialised as JSON (one per item, no newline) as one chunk and flush."""
        if self._handle is None:
            raise ValueError(f"{self.path}: writer is closed")
        self._handle.write("".join(line + "\n" for line in lines).encode("utf-8", "backslashreplace"))
        self._handle.flush()
        self.written += len(lines)
        return len(lines)

    def sync(self) -> None:
        """Flush and ask the OS to put the bytes on disk (before an ``os.replace`` of the file)."""
        if self._handle is None:
            raise ValueError(f"{self.path}: writer is closed")
        self._handle.flush()
        if not self._stdout:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Close the file (standard output stays open)."""
        handle, self._handle = self._handle, None
        if handle is not None and not self._stdout:
            handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def truncate_torn_tail(path: str | os.PathLike[str], chunk: int = 1 << 16) -> int:
    """Cut a last line that has no newline (a write torn by a crash); returns the bytes removed.

    Reads backwards from the end only as far as the last newline, so it is cheap on big files.
    """
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - chunk)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
            end = start
        handle.truncate(keep)
        return size - keep
