"""``gtalign score``: stream rows through a reward preset and a judge into an ordered, resumable JSONL.

Memory is constant in the number of rows: rows are read lazily, scored in batches (at most two in
flight, so the judge stays busy while a finished batch is written), and each batch is appended
and flushed before the next is read. Output row ``k`` is always input row ``k``, which is what
makes resuming exact: the number of complete lines in the output is the number of input rows done.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import itertools
import math
import sys
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from gtalign._registry import RegistryError
from gtalign._sync import run_sync
from gtalign.cli._judges import JudgeOptions, JudgeSetupError, build_judge, close_judge, describe_judge
from gtalign.cli._main import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CommandFailed, UsageError
from gtalign.data import JsonlWriter, Row, RowError, RowSource, SourceError, read_jsonl, row_to_sample, truncate_torn_tail
from gtalign.reward import RewardPreset, RewardResult, RewardScorer, get_preset

__all__ = ["EXAMPLE_OUTPUT", "ScoreOptions", "ScoreSummary", "default_output", "example_rollouts", "run_score", "score_file"]

EXAMPLE_OUTPUT = "gtalign-example.scored.jsonl"
_IN_FLIGHT = 2


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """What ``gtalign score`` is asked to do; each command-line option is one field.

    input: a JSONL or parquet path, a dataset folder or a hub id (None with ``example``).
    output: the output JSONL (None: `default_output`).
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
    whole file, not just the part written by the last run)."""

    output: Path
    rows: int
    scored: int
    unscored: int
    errors: int
    resumed: int
    mean_by_source: tuple[tuple[str, float, int], ...] = ()
    interrupted: bool = False
    judge: str = ""

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.errors == 0 and self.unscored == 0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.ok else EXIT_FAILED

    def line(self) -> str:
        """The one-line summary printed on stderr."""
        means = ", ".join(f"{source} {mean:.4f} (n={n})" for source, mean, n in self.mean_by_source) or "none"
        return (
            f"gtalign score: {self.rows} rows in {self.output} ({self.rows - self.resumed} new, {self.resumed} resumed): "
            f"{self.scored} scored, {self.unscored} unscored, {self.errors} errors; mean score by data_source: {means}"
        )

    def hints(self) -> list[str]:
        out = []
        if self.unscored:
            out.append("unscored rows have no usable judge verdict (see their `reason`): pass --judge, or --unscored-as-zero to score them 0")
        if self.errors:
            out.append("error rows could not be read or mapped onto a sample (see their `error`)")
        return out


@dataclass
class _Tally:
    """Running counts over output rows (a private accumulator; `ScoreSummary` is the result)."""

    rows: int = 0
    scored: int = 0
    unscored: int = 0
    errors: int = 0
    sums: dict[str, list[float]] = field(default_factory=dict)
    presets: set[str] = field(default_factory=set)

    def add(self, out: Mapping[str, Any] | None) -> None:
        self.rows += 1
        if out is None:
            self.errors += 1
            return
        if isinstance(out.get("preset"), str):
            self.presets.add(out["preset"])
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

    def summary(self, output: Path, resumed: int, *, interrupted: bool = False, judge: str = "") -> ScoreSummary:
        means = tuple((source, total / n, int(n)) for source, (total, n) in sorted(self.sums.items()))
        return ScoreSummary(output, self.rows, self.scored, self.unscored, self.errors, resumed, means, interrupted, judge)


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


async def _score_batch(scorer: RewardScorer, rows: list[Row], template: Mapping[str, Any]) -> list[dict[str, Any]]:
    preset = scorer.preset.name
    slots: list[int] = []
    samples = []
    outputs: list[dict[str, Any] | None] = [None] * len(rows)
    for index, row in enumerate(rows):
        try:
            samples.append(row_to_sample(row))
            slots.append(index)
        except RowError as exc:
            outputs[index] = _error_row(row, str(exc), preset, template)
    try:
        results = await _score_samples(scorer, samples)
    except Exception as exc:
        results = [exc] * len(samples)
    for index, result in zip(slots, results):
        row = rows[index]
        if isinstance(result, BaseException):
            outputs[index] = _error_row(row, f"{row.where}: scoring failed: {type(result).__name__}: {result}", preset, template)
        else:
            out = dict(row.fields or {})
            out.update(result.to_log())
            out["error"] = None
            outputs[index] = out
    return [out for out in outputs if out is not None]


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _score_stream(
    rows: Iterator[Row],
    scorer: RewardScorer,
    writer: JsonlWriter,
    on_written: Callable[[list[dict[str, Any]]], None],
    batch_size: int,
) -> None:
    template = dict.fromkeys(RewardResult(scorer.preset.name, "", "unscored", None).to_log())
    pending: deque[asyncio.Future[list[dict[str, Any]]]] = deque()
    try:
        for batch in _chunks(rows, batch_size):
            pending.append(asyncio.ensure_future(_score_batch(scorer, batch, template)))
            if len(pending) >= _IN_FLIGHT:
                done = await pending.popleft()
                writer.write_many(done)
                on_written(done)
        while pending:
            done = await pending.popleft()
            writer.write_many(done)
            on_written(done)
    finally:
        for future in pending:
            future.cancel()


def _read_existing(output: Path, preset: str) -> tuple[_Tally, int]:
    """Cut a torn last line and tally the rows already in ``output``; returns the tally and the
    number of bytes cut."""
    cut = truncate_torn_tail(output)
    tally = _Tally()
    for row in read_jsonl(output):
        tally.add(row.fields if row.ok else None)
    other = sorted(tally.presets - {preset})
    if other:
        raise UsageError(
            f"{output} holds rows scored with preset {', '.join(other)}, not {preset}: "
            f"resume with --preset {other[0]}, or pass --no-resume to start over"
        )
    return tally, cut


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


def score_file(options: ScoreOptions, console: Console | None = None) -> ScoreSummary:
    """Run one scoring job; the summary describes the whole output file."""
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
        if source.kind != "dataset" and output.resolve() == Path(source.location).resolve():
            raise UsageError(f"--output {output} is the input file; choose another path")
        if output.is_dir():
            raise UsageError(f"--output {output} is a directory; give a file path")
        preset = _make_preset(options)
        try:
            judge = build_judge(options.judge)
        except JudgeSetupError as exc:
            raise UsageError(str(exc)) from None
        try:
            return _run(options, source, output, preset, judge, console)
        finally:
            if judge is not None:
                run_sync(close_judge(judge))


def _run(options: ScoreOptions, source: RowSource, output: Path, preset: RewardPreset, judge: Any, console: Console) -> ScoreSummary:
    notes = not options.quiet
    tally = _Tally()
    if options.resume and output.exists():
        tally, cut = _read_existing(output, preset.name)
        if notes and (tally.rows or cut):
            torn = f" (cut a torn last line of {cut} bytes)" if cut else ""
            console.print(f"resuming: {tally.rows} rows already in {output}{torn}; skipping them in the input", markup=False)
    resumed = tally.rows
    scorer = RewardScorer(preset, judge)
    show = notes and console.is_terminal
    progress = _progress(console) if show else None
    task: Any = None
    new_rows = 0
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
        rows = itertools.chain(head, reader)

        def on_written(done: list[dict[str, Any]]) -> None:
            nonlocal new_rows
            for out in done:
                tally.add(out)
            new_rows += len(done)
            if progress is not None:
                progress.advance(task, len(done))

        try:
            if progress is not None:
                task = progress.add_task("scoring", total=_safe_count(source), completed=resumed)
                progress.start()
            try:
                run_sync(_score_stream(rows, scorer, writer, on_written, options.batch_size))
            finally:
                if progress is not None:
                    progress.stop()
                close = getattr(reader, "close", None)
                if close is not None:
                    close()
        except (KeyboardInterrupt, asyncio.CancelledError):
            return tally.summary(output, resumed, interrupted=True, judge=describe_judge(judge))
        except SourceError as exc:
            raise CommandFailed(f"{exc} (after {new_rows} new rows; {output} holds {tally.rows}, rerun to resume)") from None
    if resumed and not new_rows:
        total = _safe_count(source)
        if total is not None and total < resumed:
            raise UsageError(
                f"{output} has {resumed} rows but the input only {total}: it is not the output of this input; "
                "pass --no-resume to start over, or choose another --output"
            )
    return tally.summary(output, resumed, judge=describe_judge(judge))


def _safe_count(source: RowSource) -> int | None:
    try:
        return source.count()
    except Exception:
        return None


def _progress(console: Console) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def run_score(options: ScoreOptions) -> int:
    """``gtalign score``: run, print the summary on stderr, return the exit code."""
    console = Console(file=sys.stderr, highlight=False)
    summary = score_file(options, console)
    if summary.interrupted:
        print(
            f"gtalign score: interrupted; {summary.output} holds {summary.rows} complete rows. "
            "Run the same command again to resume after them (--no-resume starts over).",
            file=sys.stderr,
        )
        return summary.exit_code
    if not options.quiet or not summary.ok:
        print(summary.line(), file=sys.stderr)
        for hint in summary.hints():
            print(f"  {hint}", file=sys.stderr)
        if summary.judge and not options.quiet:
            print(f"  {summary.judge}", file=sys.stderr)
    return summary.exit_code
