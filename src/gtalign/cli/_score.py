"""``gtalign score``: stream rows through a reward preset and a judge into an ordered, resumable JSONL.

Memory is constant in the number of rows: rows are read lazily, scored in batches (at most two in
flight, so the judge stays busy while a finished batch is written), and each batch is appended
and flushed before the next is read. Output row ``k`` is always input row ``k``, which is what
makes resuming exact: the number of complete lines in the output is the number of input rows done.

Every output row records the settings that produced it (`gtalign.cli._output`), so a resume with
other settings is refused instead of mixing rows. A resumed run first scores again the rows of the
output that a rerun can change (`gtalign.cli._output.RERUN`: the judge failed on them, unscored or
scored as verdict 0; their scoring raised; they could not be read): it rewrites the output into a
temporary file and moves it over the output, so a crash part-way leaves the old output whole. A
lock file keeps a second run off the same output.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import itertools
import json
import math
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from gtalign._registry import RegistryError
from gtalign._sync import run_sync
from gtalign.cli._judges import JudgeOptions, JudgeSetupError, build_judge, close_judge, describe_judge
from gtalign.cli._main import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CommandFailed, UsageError
from gtalign.cli._output import RERUN, RUN_KEY, SCORING_FAILED, Cause, RunSettings, refusal, row_cause, to_rerun
from gtalign.cli._progress import ScoreProgress
from gtalign.data import (
    JsonlWriter,
    OutputLocked,
    Row,
    RowError,
    RowSource,
    SourceError,
    output_lock,
    read_jsonl,
    row_to_sample,
    truncate_torn_tail,
)
from gtalign.reward import RewardPreset, RewardResult, RewardScorer, get_preset

__all__ = ["EXAMPLE_OUTPUT", "ScoreOptions", "ScoreSummary", "default_output", "example_rollouts", "run_score", "score_file"]

EXAMPLE_OUTPUT = "gtalign-example.scored.jsonl"
STDOUT = "-"
_IN_FLIGHT = 2
_MAX_CHUNK = 4096  # items per batch when a rewrite carries many kept rows between rows scored again


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """What ``gtalign score`` is asked to do; each command-line option is one field.

    input: a JSONL or parquet path, a dataset folder or a hub id (None with ``example``).
    output: the output JSONL (None: `default_output`; ``-``: standard output, never resumed).
    example: score the rollouts shipped with gtalign (`example_rollouts`).
    resume: continue after the rows already in ``output`` (False: overwrite it).
    """

    input: str | None = None
    output: str | None = None
    example: bool = False
    preset: str = "paper"
    judge: JudgeOptions = field(default_factory=JudgeOptions)
    split: str | None = None
    batch_size: int = 256
    unscored_as_zero: bool = False
    resume: bool = True
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """What a run left in its output file, resumed rows included (so the exit code describes the
    whole file, not just the part written by the last run).

    causes: how many rows have no score from a usable verdict, by cause (`Cause`), whatever their
        status: with ``--unscored-as-zero`` a judge failure is scored as verdict 0 and counted here.
    rerun: rows of an earlier run this run scored again (`RERUN`).
    unscored_as_zero, url_judge: how the run was configured (for the wording of the hints).
    """

    output: Path
    rows: int
    scored: int
    unscored: int
    errors: int
    resumed: int
    mean_by_source: tuple[tuple[str, float, int], ...] = ()
    interrupted: bool = False
    judge: str = ""
    causes: tuple[tuple[Cause, int], ...] = ()
    rerun: int = 0
    unscored_as_zero: bool = False
    url_judge: bool = False

    def count(self, cause: Cause) -> int:
        """Rows with no score from a usable verdict for ``cause``."""
        return dict(self.causes).get(cause, 0)

    @property
    def judge_failures(self) -> int:
        """Rows the judge failed on (a rerun of the same command judges them again), unscored or
        scored as verdict 0."""
        return self.count("judge failed")

    @property
    def unjudged(self) -> int:
        """Rows that needed a verdict when no judge was given."""
        return self.count("no judge")

    @property
    def ok(self) -> bool:
        """Every row scored, and none as verdict 0 for a judge that failed: never a silent 0."""
        return not self.interrupted and self.errors == 0 and self.unscored == 0 and self.judge_failures == 0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.ok else EXIT_FAILED

    def line(self) -> str:
        """The one-line summary printed on stderr."""
        means = ", ".join(f"{source} {mean:.4f} (n={n})" for source, mean, n in self.mean_by_source) or "none"
        where = "standard output" if str(self.output) == STDOUT else str(self.output)
        again = f", {self.rerun} scored again" if self.rerun else ""
        return (
            f"gtalign score: {self.rows} rows in {where} ({self.rows - self.resumed} new, {self.resumed} resumed{again}): "
            f"{self.scored} scored, {self.unscored} unscored, {self.errors} errors; mean score by data_source: {means}"
        )

    def hints(self) -> list[str]:
        """What to do about the rows without a score from a usable verdict, one line per cause."""
        zero = self.unscored_as_zero
        out = []
        if n := self.count("judge failed"):
            slow = " (--judge-timeout and --judge-retries give a slow judge more time)" if self.url_judge else ""
            if zero:
                out.append(
                    f"{n} rows were scored as verdict 0 because the judge failed on them (--unscored-as-zero; see their `reason`): "
                    f"that 0 is not a verdict; run the same command again to re-judge them{slow}"
                )
            else:
                out.append(f"{n} unscored rows are judge failures (see their `reason`): run the same command again to re-judge them{slow}")
        if n := self.count("no judge"):
            if zero:
                out.append(f"{n} rows have no judge_verdict and no judge was given: scored as verdict 0, as --unscored-as-zero asks")
            else:
                out.append(
                    f"{n} rows have no judge_verdict and no judge was given: rerun with --judge JUDGE "
                    "(or --unscored-as-zero to score them 0) and --no-resume"
                )
        if n := self.count("unusable verdict"):
            what = "were scored as verdict 0 (--unscored-as-zero)" if zero else "are unscored"
            out.append(
                f"{n} rows {what}: the judge answered without a usable verdict (unparsable, invalid, refused or off the "
                "task's scale; see their `reason`); a rerun keeps them as they are"
            )
        if n := self.count("input verdict"):
            out.append(
                f"{n} rows carry a judge_verdict that cannot be used (off the task's scale, or not ok; see their `reason`): "
                "fix it in the input, then rerun with --no-resume"
            )
        if n := self.count("unknown data_source"):
            out.append(
                f"{n} unscored rows have a data_source no task is registered for (their `reason` lists the known ones): "
                "fix the input, then rerun with --no-resume"
            )
        if n := self.count("scoring failed"):
            out.append(
                f"{n} rows failed in the preset (their `reason` or `error` says {SCORING_FAILED!r}: a value it cannot handle, "
                "or a bug): a rerun of the same command scores them again"
            )
        if n := self.count("bad row"):
            out.append(
                f"{n} error rows could not be read, mapped onto a sample or written back (see their `error`): "
                "fix those input rows; a rerun of the same command reads them again"
            )
        if n := self.count("other"):
            out.append(f"{n} unscored rows have no usable verdict (see their `reason`); a rerun keeps them as they are")
        return out


@dataclass
class _Counts:
    """Running counts over output rows (a private accumulator; `ScoreSummary` is the result)."""

    rows: int = 0
    scored: int = 0
    unscored: int = 0
    errors: int = 0
    causes: dict[Cause, int] = field(default_factory=dict)
    sums: dict[str, list[float]] = field(default_factory=dict)

    def add(self, out: Mapping[str, Any]) -> None:
        self.rows += 1
        status, score = out.get("status"), out.get("score")
        if status == "scored" and isinstance(score, (int, float)) and math.isfinite(score):
            self.scored += 1
            source = out.get("source") or out.get("data_source") or "?"
            acc = self.sums.setdefault(str(source), [0.0, 0])
            acc[0] += float(score)
            acc[1] += 1
        elif status == "unscored":
            self.unscored += 1
        else:
            self.errors += 1
        cause = row_cause(out)
        if cause is not None:
            self.causes[cause] = self.causes.get(cause, 0) + 1

    def summary(self, output: Path, resumed: int, options: ScoreOptions, *, interrupted: bool = False, judge: str = "", rerun: int = 0) -> ScoreSummary:
        means = tuple((source, total / n, int(n)) for source, (total, n) in sorted(self.sums.items()))
        return ScoreSummary(
            output, self.rows, self.scored, self.unscored, self.errors, resumed, means, interrupted, judge,
            tuple(sorted(self.causes.items())), rerun, options.unscored_as_zero, options.judge.is_url,
        )


@dataclass(frozen=True, slots=True)
class _Out:
    """One output row: its fields (for the counts), its JSON line, and the input row number when
    this run scored it (None: a row of the existing output, carried over as it is)."""

    fields: Mapping[str, Any]
    line: str
    number: int | None = None


def example_rollouts() -> importlib.resources.abc.Traversable:
    """The example rollouts shipped with gtalign (every task, two malformed answers, verdicts given)."""
    return importlib.resources.files("gtalign").joinpath("examples", "rollouts.jsonl")


def default_output(source: RowSource) -> Path:
    """A file INPUT with a ``.scored.jsonl`` suffix, next to it; for a dataset (folder or hub id),
    ``NAME[.SPLIT].scored.jsonl`` in the current directory, since dataset folders are often shared
    or read-only."""
    if source.kind in ("jsonl", "parquet"):
        path = Path(source.location)
        return path.with_name(path.stem + ".scored.jsonl")
    name = Path(source.location).resolve().name if Path(source.location).is_dir() else source.location.rstrip("/").rpartition("/")[2]
    return Path(name + (f".{source.split}" if source.split else "") + ".scored.jsonl")


def _make_preset(options: ScoreOptions) -> RewardPreset:
    params = {"unscored_as_zero": True} if options.unscored_as_zero else {}
    try:
        return get_preset(options.preset, **params)
    except RegistryError as exc:
        raise UsageError(f"--preset: {exc}") from None
    except TypeError as exc:
        if params:
            raise UsageError(f"preset {options.preset!r} does not take --unscored-as-zero ({exc})") from None
        raise UsageError(f"preset {options.preset!r} cannot be built: {exc}") from None


def _error_row(row: Row, message: str, preset: str, template: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row.fields or {})
    out.update(template)
    source = out.get("data_source")
    out.update(status="error", preset=preset, source=source if isinstance(source, str) else None, error=message)
    return out


def _finish(row: Row, out: dict[str, Any], preset: str, template: Mapping[str, Any]) -> _Out:
    """``out`` serialised; a row that cannot be (a value JSON cannot hold) becomes an error row
    without the input's fields, so the run goes on."""
    try:
        return _Out(out, JsonlWriter.dumps(out), row.number)
    except (ValueError, TypeError, RecursionError) as exc:
        bare = _error_row(Row(row.number, None), f"{row.where}: cannot be written as JSON: {type(exc).__name__}: {exc}", preset, template)
        return _Out(bare, JsonlWriter.dumps(bare), row.number)


async def _score_samples(scorer: RewardScorer, samples: Sequence[Any]) -> list[RewardResult | BaseException]:
    """Score a batch; if the preset raises (a bug on some row), score row by row so that only the
    offending rows fail."""
    if not samples:
        return []
    try:
        return list(await scorer.ascore(samples))
    except Exception:
        if len(samples) == 1:
            raise
    results: list[RewardResult | BaseException] = []
    for sample in samples:
        try:
            results.extend(await scorer.ascore([sample]))
        except Exception as exc:
            results.append(exc)
    return results


async def _score_batch(scorer: RewardScorer, items: Sequence[Row | _Out], template: Mapping[str, Any]) -> list[_Out]:
    """Score the rows of ``items``; rows carried over (`_Out`) keep their place unchanged."""
    preset = scorer.preset.name
    slots: list[int] = []
    samples = []
    outputs: list[_Out | None] = [None] * len(items)
    for index, item in enumerate(items):
        if isinstance(item, _Out):
            outputs[index] = item
            continue
        try:
            samples.append(row_to_sample(item))
            slots.append(index)
        except RowError as exc:
            outputs[index] = _finish(item, _error_row(item, str(exc), preset, template), preset, template)
    try:
        results = await _score_samples(scorer, samples)
    except Exception as exc:
        results = [exc] * len(samples)
    for index, result in zip(slots, results):
        row = items[index]
        assert isinstance(row, Row)
        if isinstance(result, BaseException):
            out = _error_row(row, f"{row.where}: {SCORING_FAILED} {type(result).__name__}: {result}", preset, template)
        else:
            out = dict(row.fields or {})
            out.update(result.to_log())
            out["error"] = None
            out[RUN_KEY] = template[RUN_KEY]
        outputs[index] = _finish(row, out, preset, template)
    return [out for out in outputs if out is not None]


def _chunks(items: Iterable[Row | _Out], size: int) -> Iterator[list[Row | _Out]]:
    """Batches of ``size`` rows to score, with the carried-over rows between them (at most
    `_MAX_CHUNK` items a batch, so memory stays bounded however sparse the rows to score are)."""
    batch: list[Row | _Out] = []
    rows = 0
    for item in items:
        batch.append(item)
        rows += isinstance(item, Row)
        if rows >= size or len(batch) >= max(size, _MAX_CHUNK):
            yield batch
            batch, rows = [], 0
    if batch:
        yield batch


def _template(scorer: RewardScorer, settings: Mapping[str, Any]) -> dict[str, Any]:
    template: dict[str, Any] = dict.fromkeys(RewardResult(scorer.preset.name, "", "unscored", None).to_log())
    template[RUN_KEY] = dict(settings)
    return template


@dataclass
class _Sink:
    """Where scored batches go, in order: the writer, the counts and the progress."""

    writer: JsonlWriter
    counts: _Counts
    progress: ScoreProgress
    scored: int = 0  # rows this run scored (not carried over)
    counted: int = 0  # rows written and counted
    _writing: list[_Out] = field(default_factory=list)  # the batch being written

    def __call__(self, outs: list[_Out]) -> None:
        self._writing = outs
        self.writer.write_lines([out.line for out in outs])
        self._count(outs)
        self._writing = []

    def _count(self, outs: Sequence[_Out]) -> None:
        for out in outs:
            self.counts.add(out.fields)
        self.counted += len(outs)
        fresh = [(out.number, out.fields) for out in outs if out.number is not None]
        self.scored += len(fresh)
        self.progress.advance(fresh)

    def settle(self, lines: int) -> None:
        """After an interruption, with ``lines`` complete rows in the file this sink wrote from its
        start: count the rows of the batch being written that reached the file (Ctrl-C can land
        after a write's flush and before its rows were counted)."""
        reached = lines - self.counted
        if reached > 0:
            self._count(self._writing[:reached])
        self._writing = []

    async def wait(self, future: asyncio.Future[list[_Out]]) -> list[_Out]:
        """The batch ``future`` brings; while it is not done, a progress line whenever one is due,
        so a slow or unreachable judge is not silence."""
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.progress.poll)
            if done:
                return future.result()
            self.progress.tick()


async def _score_stream(items: Iterable[Row | _Out], scorer: RewardScorer, template: Mapping[str, Any], sink: _Sink, batch_size: int) -> None:
    pending: deque[asyncio.Future[list[_Out]]] = deque()
    try:
        for batch in _chunks(items, batch_size):
            pending.append(asyncio.ensure_future(_score_batch(scorer, batch, template)))
            if len(pending) >= _IN_FLIGHT:
                sink(await sink.wait(pending[0]))
                pending.popleft()
        while pending:
            sink(await sink.wait(pending[0]))
            pending.popleft()
    finally:
        for future in pending:
            future.cancel()


@dataclass
class _Existing:
    """What a resumed run found in its output: the counts, the bytes of a torn last line it cut,
    and the rows to score again (`RERUN`: how many of each cause, and the first one's row number)."""

    counts: _Counts = field(default_factory=_Counts)
    cut: int = 0
    retry: dict[Cause, int] = field(default_factory=dict)
    first_retry: int = 0

    @property
    def retries(self) -> int:
        return sum(self.retry.values())

    def note(self) -> str:
        """What a resumed run says before it scores rows again."""
        words: dict[Cause, str] = {"judge failed": "the judge failed on", "scoring failed": "whose scoring failed", "bad row": "that could not be read"}
        parts = ", ".join(f"{self.retry[cause]} {words[cause]}" for cause in ("judge failed", "scoring failed", "bad row") if self.retry.get(cause))
        return f"scoring again {self.retries} rows of an earlier run (from row {self.first_retry}): {parts}"


def _read_existing(output: Path, settings: RunSettings) -> _Existing:
    """Cut a torn last line, check that every row was written with ``settings`` (`UsageError`
    saying which setting differs), and count the rows."""
    found = _Existing(cut=truncate_torn_tail(output))
    wanted = settings.to_json()
    for row in read_jsonl(output):
        if not row.ok or row.fields is None:
            raise UsageError(f"{output} {row.where} is not an output row ({row.error}): pass --no-resume to start over, or choose another --output")
        if row.fields.get(RUN_KEY) != wanted:
            raise UsageError(refusal(output, row.number, row.fields.get(RUN_KEY), settings))
        found.counts.add(row.fields)
        cause = row_cause(row.fields)
        if cause in RERUN:
            found.retry[cause] = found.retry.get(cause, 0) + 1
            found.first_retry = found.first_retry or row.number
    return found


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _check_same_input(output: Path, number: int, row: Row, out: Mapping[str, Any], written: frozenset[str]) -> None:
    """Refuse to score output row ``number`` again from an input row that is not the one it was
    scored from (the input was edited since): every input key the scorer does not write must match.
    A row written without the input's fields (one that could not be read, or written back) has
    nothing to compare: it is read again as the input has it now."""
    if all(key in written for key in out):
        return
    if not row.ok or row.fields is None:
        raise UsageError(f"{output} row {number} was scored from input {row.where}, which now cannot be read ({row.error}): pass --no-resume to start over")
    for key, value in row.fields.items():
        if key not in written and _canonical(out.get(key)) != _canonical(value):
            raise UsageError(
                f"{output} row {number} does not match input {row.where} (key {key!r} differs): the input changed since "
                f"{output} was written; pass --no-resume to start over, or choose another --output"
            )


def _output_lines(output: Path) -> Iterator[tuple[int, str]]:
    with open(output, "rb") as handle:
        number = 0
        for raw in handle:
            if raw.isspace():
                continue
            number += 1
            yield number, raw.decode("utf-8").rstrip("\r\n")


def _rejudge_items(output: Path, source: RowSource, first: int, written: frozenset[str]) -> Iterator[Row | _Out]:
    """The rows of ``output`` in order: the rows to score again (`to_rerun`) as their input rows,
    every other row carried over as it is. Input rows are read from row ``first`` on."""
    rows = source.rows(skip=first - 1)
    try:
        for number, line in _output_lines(output):
            fields = json.loads(line)
            if number < first:
                yield _Out(fields, line)
                continue
            row = next(rows, None)
            if row is None:
                raise UsageError(f"{output} has more rows than the input ({number - 1}): it is not the output of this input; pass --no-resume to start over")
            if to_rerun(fields):
                _check_same_input(output, number, row, fields, written)
                yield row
            else:
                yield _Out(fields, line)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def _rejudge(output: Path, source: RowSource, existing: _Existing, scorer: RewardScorer, template: Mapping[str, Any],
             batch_size: int, progress: ScoreProgress, counts: _Counts, console: Console) -> tuple[int, bool]:
    """Rewrite ``output`` with the rows to score again (`RERUN`) scored again, through a temporary
    file moved over it at the end; returns the rows scored again and whether Ctrl-C interrupted.

    Ctrl-C keeps what was scored again and copies the rest as it was, from the first row not
    complete in the temporary file (counted in the file: Ctrl-C may land between a write and its
    count). A second Ctrl-C while copying abandons the rewrite; so does any other failure: then
    ``output`` is left as it was."""
    output = output.resolve()  # a symlinked output: rewrite the file it points to, keep the link
    temporary = _rewrite_path(output)
    items = _rejudge_items(output, source, existing.first_retry, frozenset(template) | {"error"})
    interrupted = False
    try:
        with JsonlWriter(temporary, append=False) as writer:
            sink = _Sink(writer, counts, progress)
            try:
                run_sync(_score_stream(items, scorer, template, sink, batch_size))
                writer.sync()
            except (KeyboardInterrupt, asyncio.CancelledError):
                interrupted = True
        if interrupted:
            try:
                truncate_torn_tail(temporary)
                done = _count_lines(temporary)
                sink.settle(done)
                with JsonlWriter(temporary) as rest:
                    sink.writer = rest
                    for chunk in _batched(itertools.islice(_output_lines(output), done, None), _MAX_CHUNK):
                        sink([_Out(json.loads(line), line) for _, line in chunk])
                    rest.sync()
            except KeyboardInterrupt:
                console.print(f"interrupted again while keeping the rows scored again: {output} is left as it was", markup=False, soft_wrap=True)
                raise
        shutil.copymode(output, temporary)
        os.replace(temporary, output)
    finally:
        items.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return sink.scored, interrupted


def _count_lines(path: Path, chunk: int = 1 << 20) -> int:
    """The newlines in ``path`` (rows of a file `JsonlWriter` wrote: no blank lines)."""
    lines = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            lines += block.count(b"\n")
    return lines


def _rewrite_path(output: Path) -> Path:
    """The temporary file a run scoring rows again writes before moving it over ``output``."""
    return output.with_name(f".{output.name}.rejudge.tmp")


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@contextlib.contextmanager
def _input_location(options: ScoreOptions) -> Iterator[str]:
    if options.example:
        if options.input is not None:
            raise UsageError("give INPUT or --example, not both")
        with importlib.resources.as_file(example_rollouts()) as path:
            yield str(path)
        return
    if options.input is None:
        raise UsageError("give INPUT (a .jsonl or .parquet file, a dataset folder or hub id), or --example")
    yield options.input


@contextlib.contextmanager
def _locked(output: Path) -> Iterator[None]:
    if str(output) == STDOUT:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(output_lock(output))
        except OutputLocked as exc:
            raise UsageError(f"{exc}: wait for it to finish, or choose another --output") from None
        except OSError as exc:
            raise UsageError(f"cannot write {output}: cannot create its lock file: {exc}") from None
        yield


def score_file(
    options: ScoreOptions,
    console: Console | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    progress_every: float = 30.0,
) -> ScoreSummary:
    """Run one scoring job; the summary describes the whole output file.

    When stderr is not a terminal, a progress line is printed every ``progress_every`` seconds of
    ``clock``.
    """
    console = console or Console(file=sys.stderr, highlight=False)
    with _input_location(options) as location:
        try:
            source = RowSource.resolve(location, options.split)
        except SourceError as exc:
            raise UsageError(str(exc)) from None
        if options.output is not None:
            output = Path(options.output)
        elif options.example:
            output = Path(EXAMPLE_OUTPUT)
        else:
            output = default_output(source)
        if options.output != STDOUT:
            if source.kind != "dataset" and output.resolve() == Path(source.location).resolve():
                raise UsageError(f"--output {output} is the input file; choose another path")
            if output.is_dir():
                raise UsageError(f"--output {output} is a directory; give a file path")
        preset = _make_preset(options)
        settings = RunSettings.of(
            preset, judge=options.judge.identity, unscored_as_zero=options.unscored_as_zero, batch_size=options.batch_size
        )
        try:
            judge = build_judge(options.judge)
        except JudgeSetupError as exc:
            raise UsageError(str(exc)) from None
        try:
            with _locked(output):
                return _run(options, source, output, preset, settings, judge, console, clock, progress_every)
        finally:
            if judge is not None:
                run_sync(close_judge(judge))


def _run(
    options: ScoreOptions,
    source: RowSource,
    output: Path,
    preset: RewardPreset,
    settings: RunSettings,
    judge: Any,
    console: Console,
    clock: Callable[[], float],
    every: float,
) -> ScoreSummary:
    notes = not options.quiet
    to_stdout = str(output) == STDOUT
    existing = _Existing()
    if not to_stdout:  # what a run killed while rewriting left behind (this run holds the lock)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_rewrite_path(output.resolve()))
    if options.resume and not to_stdout and output.exists():
        existing = _read_existing(output, settings)
        if notes and (existing.counts.rows or existing.cut):
            torn = f" (cut a torn last line of {existing.cut} bytes)" if existing.cut else ""
            console.print(f"resuming: {existing.counts.rows} rows already in {output}{torn}; skipping them in the input", markup=False, soft_wrap=True)
    resumed = existing.counts.rows
    if notes and existing.retries:
        console.print(existing.note(), markup=False, soft_wrap=True)
    if notes and source.is_hub:
        console.print(f"{source.location}: no such local file or folder; reading it from the dataset hub", markup=False, soft_wrap=True)
    scorer = RewardScorer(preset, judge)
    template = _template(scorer, settings.to_json())
    total = _safe_count(source) if notes else None
    todo = None if total is None else max(0, total - resumed) + existing.retries
    progress = ScoreProgress(console, enabled=notes, total=todo, clock=clock, every=every)
    counts = existing.counts
    rerun = 0
    with progress:
        if existing.retries:
            counts = _Counts()
            try:
                rerun, interrupted = _rejudge(output, source, existing, scorer, template, options.batch_size, progress, counts, console)
            except SourceError as exc:
                raise CommandFailed(f"{exc} (while scoring rows again; {output} is unchanged)") from None
            if interrupted:
                return counts.summary(output, resumed, options, interrupted=True, judge=describe_judge(judge), rerun=rerun)
        reader = source.rows(skip=resumed)
        try:  # open the source before the output, so a source that cannot be read leaves no file behind
            head = list(itertools.islice(reader, 1))
        except SourceError as exc:
            raise UsageError(str(exc)) from None
        try:
            writer = JsonlWriter(output, append=options.resume)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc}") from None
        with writer:
            try:
                try:
                    run_sync(_score_stream(itertools.chain(head, reader), scorer, template, _Sink(writer, counts, progress), options.batch_size))
                finally:
                    close = getattr(reader, "close", None)
                    if close is not None:
                        close()
            except (KeyboardInterrupt, asyncio.CancelledError):
                return counts.summary(output, resumed, options, interrupted=True, judge=describe_judge(judge), rerun=rerun)
            except SourceError as exc:
                raise CommandFailed(f"{exc} (after {writer.written} new rows; {output} holds {counts.rows}, rerun to resume)") from None
        new_rows = writer.written
    if resumed and not new_rows:
        count = _safe_count(source)
        if count is not None and count < resumed:
            raise UsageError(
                f"{output} has {resumed} rows but the input only {count}: it is not the output of this input; "
                "pass --no-resume to start over, or choose another --output"
            )
    return counts.summary(output, resumed, options, judge=describe_judge(judge), rerun=rerun)


def _safe_count(source: RowSource) -> int | None:
    try:
        return source.count()
    except Exception:
        return None


def run_score(options: ScoreOptions) -> int:
    """``gtalign score``: run, print the summary on stderr, return the exit code."""
    console = Console(file=sys.stderr, highlight=False)
    summary = score_file(options, console)
    if summary.interrupted:
        where = "standard output got" if str(summary.output) == STDOUT else f"{summary.output} holds"
        again = "" if str(summary.output) == STDOUT else " Run the same command again to resume after them (--no-resume starts over)."
        print(f"gtalign score: interrupted; {where} {summary.rows} complete rows.{again}", file=sys.stderr)
        return summary.exit_code
    if not options.quiet or not summary.ok:
        print(summary.line(), file=sys.stderr)
        for hint in summary.hints():
            print(f"  {hint}", file=sys.stderr)
        if summary.judge and not options.quiet:
            print(f"  {summary.judge}", file=sys.stderr)
    return summary.exit_code
