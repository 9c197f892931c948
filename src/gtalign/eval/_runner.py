"""The evaluation runner: every benchmark row at every epoch through the model (in one pass, or
steered), parsed, scored by the preset and the judge, and appended to the run log.

Rows are generated with a bounded number in flight; finished rows are judged in batches (as many as
are ready, up to `JUDGE_BATCH`) while the next rows generate, and each batch is appended, flushed
and fsynced before the next. Records go in finishing order; ``(id, epoch)`` joins them. A lock
(`gtalign.data.output_lock`) keeps a second run off the folder, and a rerun resumes
(`gtalign.eval._resume`): nothing final is generated or judged twice.

With ``answers_from`` nothing is generated: each row's answer (with its steering record, tokens and
generate seconds) is taken from another run's record of the same ``(id, epoch)``
(`gtalign.eval._answers`) and scored with this run's preset and judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gtalign import __version__
from gtalign._sync import run_sync
from gtalign.data import OutputLocked, output_lock
from gtalign.eval._answer import answer_parse
from gtalign.eval._answers import AnswerSource, check_source_rows, read_answer_source, resolve_answers_from, source_answer
from gtalign.eval._config import EvalConfig, EvalSetupError
from gtalign.eval._log import AnswerParse, RunHeader, SampleRecord, write_records
from gtalign.eval._progress import EvalProgress
from gtalign.eval._resume import LOG_NAME, ResumeRefused, ResumeState, choose_run_dir, read_resume_state
from gtalign.eval._setup import (
    Concurrency,
    build_eval_backend,
    build_eval_judge,
    build_eval_policy,
    build_eval_preset,
    check_rows,
    check_rule,
    choose_concurrency,
    describe_backend,
    load_rows,
)
from gtalign.eval._summary import EvalSummary, summarize_sources

if TYPE_CHECKING:
    from gtalign.backends._base import ChatBackend
    from gtalign.benchmarks import BenchmarkRow
    from gtalign.reward import JudgeRequest, RewardResult, RewardScorer, Verdict

__all__ = ["JUDGE_BATCH", "run_eval"]

JUDGE_BATCH = 64
"""Finished rows judged (and written) together at most; fewer when fewer are ready, so a fast judge
never waits for a batch to fill."""

Counter = Callable[[Sequence[str]], Awaitable["list[int] | None"]]
"""A backend's `TokenCounter.count_tokens`."""


@dataclass(frozen=True, slots=True)
class _Item:
    """One sample to run; ``previous`` is an earlier record whose answer is judged again."""

    row: BenchmarkRow
    epoch: int
    previous: SampleRecord | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    """A row after generation: the final answer, or why there is none (``failure``: the model call
    failed, run again on resume; ``error``: the row itself cannot be run)."""

    item: _Item
    text: str = ""
    steering: Mapping[str, Any] | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    seconds: float = 0.0
    failure: str = ""
    error: str = ""
    tokens_by_block: Mapping[str, int] | None = None
    """Known already (the record it comes from has them); None: count them when scoring."""
    constraint: Mapping[str, Any] | None = None


def _row_problem(row: BenchmarkRow) -> str:
    if not row.messages:
        return f"row {row.id}: no messages to send"
    for index, message in enumerate(row.messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            return f"row {row.id}: message {index} needs string 'role' and 'content'"
    return ""


class _Generator:
    """One answer per (row, epoch): a plain generation, or a steered one through `SteeringEngine`
    (one engine per epoch, since the seed is part of its sampling parameters)."""

    def __init__(self, backend: ChatBackend, config: EvalConfig) -> None:
        self.backend = backend
        self.config = config
        self.policy = build_eval_policy(config) if config.steer else None
        # Every epoch's engine is made now, so a policy that does not fit the strategy space fails
        # here, before any row is generated.
        self._engines = {epoch: self._make_engine(epoch) for epoch in range(config.epochs)} if config.steer else {}

    def params(self, epoch: int) -> Any:
        from gtalign.backends._base import SamplingParams

        from gtalign.backends._base import Constraint

        config = self.config
        constraint = None if config.constrain == "off" else Constraint(stage="full", required=config.constrain == "on")
        return SamplingParams(max_tokens=config.max_tokens, temperature=config.effective_temperature, seed=config.seed_for(epoch),
                              constraint=constraint)

    def _make_engine(self, epoch: int) -> Any:
        from gtalign.steering import Fallback, SteeringEngine

        try:
            return SteeringEngine(self.backend, self.policy, rule=self.config.rule, params=replace(self.params(epoch), constraint=None),
                                  fallback=Fallback.when_ignored(self.config.on_ignored),  # type: ignore[arg-type]
                                  constrain=self.config.constrain)  # type: ignore[arg-type]
        except ValueError as exc:
            raise EvalSetupError(f"steering: {exc}") from None

    async def answer(self, item: _Item) -> _Answer:
        settled = _settled(item)
        if settled is not None:
            return settled
        start = time.perf_counter()
        if self.config.steer:
            return self._steered(item, await self._engines[item.epoch].run(item.row.messages), time.perf_counter() - start)
        from gtalign.backends._base import constraint_gate, with_constraint_record

        params, record, failed = constraint_gate(self.backend, self.params(item.epoch))
        try:
            generation = failed or await self.backend.generate(item.row.messages, params=params)
        except Exception as exc:  # a backend bug: the row failed, the run goes on
            return _Answer(item, seconds=time.perf_counter() - start, failure=f"the backend raised {type(exc).__name__}: {exc}")
        generation = with_constraint_record(generation, record)
        seconds = time.perf_counter() - start
        if not generation.ok:
            return _Answer(item, tokens_in=generation.tokens_in, seconds=seconds,
                           failure=f"{generation.status}: {generation.reason or 'no reason given'}")
        constraint = generation.extra.get("constraint") if generation.extra else None
        return _Answer(item, generation.text, None, generation.tokens_in, generation.tokens_out, seconds,
                       constraint=constraint if isinstance(constraint, Mapping) else None)

    @staticmethod
    def _steered(item: _Item, result: Any, seconds: float) -> _Answer:
        record = result.to_record()
        stages = result.stages
        tokens_in = stages[0].tokens_in if stages else None
        if result.status == "failed" and any(stage.status != "ok" for stage in stages):
            return _Answer(item, steering=record, tokens_in=tokens_in, tokens_out=result.tokens_out, seconds=seconds,
                           failure=f"steering failed: {result.reason}")
        # Otherwise the model wrote something (possibly without a response): score what it wrote.
        return _Answer(item, result.text, record, tokens_in, result.tokens_out, seconds)


def _settled(item: _Item) -> _Answer | None:
    """The answer a row has without asking anyone: an error for a broken row, or the one its
    previous record holds (a row re-judged on resume). None: the row needs an answer."""
    problem = _row_problem(item.row)
    if problem:
        return _Answer(item, error=problem)
    if item.previous is not None:
        return _recorded(item, item.previous)
    return None


def _recorded(item: _Item, record: SampleRecord) -> _Answer:
    """The answer ``record`` holds, as if it had just been generated (its block counts included,
    when it has them)."""
    return _Answer(item, record.answer, record.steering, record.tokens_in, record.tokens_out, record.seconds.get("generate", 0.0),
                   tokens_by_block=record.tokens_by_block or None, constraint=record.constraint)


class _SourceAnswers:
    """Answers from another run (``answers_from``): the source's record of each ``(id, epoch)``, or a
    generation failure saying why it has none. The model is never called."""

    def __init__(self, source: AnswerSource) -> None:
        self.source = source

    async def answer(self, item: _Item) -> _Answer:
        settled = _settled(item)
        if settled is not None:
            return settled
        found = source_answer(self.source, (item.row.id, item.epoch))
        if isinstance(found, str):
            return _Answer(item, failure=found)
        return _recorded(item, found)


class _RecordingJudge:
    """Forwards to the judge and keeps each request's raw reply, for the record's ``judge_raw``."""

    def __init__(self, judge: Any) -> None:
        self.inner = judge
        self.name = judge.name
        self.replies: dict[JudgeRequest, str | None] = {}

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        verdicts = list(await self.inner.judge(requests))
        for request, verdict in zip(requests, verdicts):
            self.replies[request] = getattr(verdict, "raw", None)
        return verdicts


class _Scorer:
    """Turns a batch of answers into records: parse, one `RewardScorer.ascore` call, the judge's
    replies, and (while the judge works) the blocks' token counts from ``counter``, the backend's
    `TokenCounter.count_tokens` (None: the answers are not counted)."""

    def __init__(self, config: EvalConfig, preset: Any, judge: Any, counter: Counter | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        from gtalign.game import welfare_rule
        from gtalign.reward import RewardScorer

        self.rule = welfare_rule(config.rule)
        self.recorder = None if judge is None else _RecordingJudge(judge)
        self.scorer: RewardScorer = RewardScorer(preset, self.recorder)
        self.counter = counter
        self.clock = clock

    async def records(self, answers: Sequence[_Answer]) -> list[SampleRecord]:
        scored = [answer for answer in answers if not answer.failure and not answer.error]
        samples = [answer.item.row.to_sample(answer.text) for answer in scored]
        parses = [answer_parse(answer.text, self.rule) for answer in scored]
        if self.recorder is not None:
            self.recorder.replies.clear()
        texts = [content for answer, parse in zip(scored, parses) if answer.tokens_by_block is None
                 for content in parse.blocks.values() if content]
        if texts and self.counter is not None:  # counted while the judge works
            (results, batch_seconds), counts = await asyncio.gather(self._timed_score(samples), self._count(texts))
        else:
            (results, batch_seconds), counts = await self._timed_score(samples), None
        tokens = self._block_tokens(scored, parses, counts)
        # Each row's share of its batch, so that seconds summed over rows add up to the judge's time.
        seconds = {"judge": round(batch_seconds / len(samples), 6), "judge_batch": round(batch_seconds, 6)} if samples else {}
        raws = self._raws(samples)
        by_answer = {id(a): (parse, result, raw, found) for a, parse, result, raw, found in zip(scored, parses, results, raws, tokens)}
        out = []
        for answer in answers:
            if id(answer) in by_answer:
                out.append(self._record(answer, *by_answer[id(answer)], seconds))
            else:
                out.append(_unanswered(answer))
        return out

    async def _timed_score(self, samples: list[Any]) -> tuple[list[RewardResult | BaseException], float]:
        start = self.clock()
        results = await self._score(samples)
        return results, self.clock() - start

    async def _count(self, texts: list[str]) -> list[int] | None:
        """One count per text in one call for the whole batch; None when it fails in any way."""
        assert self.counter is not None
        try:
            counts = await self.counter(texts)
        except Exception:  # a backend's bug in counting loses no row
            return None
        return counts if counts is not None and len(counts) == len(texts) else None

    def _block_tokens(self, answers: Sequence[_Answer], parses: Sequence[AnswerParse], counts: list[int] | None) -> list[Mapping[str, int]]:
        """Each answer's tokens per block: what its record already says, else from ``counts`` (the
        batch's non-empty blocks in order; an empty block is 0). Without counts nothing is recorded."""
        found: list[Mapping[str, int]] = []
        position = 0
        for answer, parse in zip(answers, parses):
            if answer.tokens_by_block is not None:
                found.append(answer.tokens_by_block)
                continue
            tokens: dict[str, int] = {}
            if self.counter is not None and (counts is not None or not any(parse.blocks.values())):
                for name, content in parse.blocks.items():
                    tokens[name] = counts[position] if content and counts is not None else 0
                    position += bool(content)
            found.append(tokens)
        return found

    async def _score(self, samples: list[Any]) -> list[RewardResult | BaseException]:
        """The batch's results; if scoring raises (a bug), row by row so only the offending rows fail."""
        if not samples:
            return []
        try:
            return list(await self.scorer.ascore(samples))
        except Exception:
            pass
        results: list[RewardResult | BaseException] = []
        for sample in samples:
            try:
                results.extend(await self.scorer.ascore([sample]))
            except Exception as exc:
                results.append(exc)
        return results

    def _raws(self, samples: list[Any]) -> list[str | None]:
        """Each sample's judge reply (the scorer sends identical requests once, so each sample's own
        request is found again from the preset's parse)."""
        if self.recorder is None or not self.recorder.replies:
            return [None] * len(samples)
        replies = self.recorder.replies
        return [None if item.request is None else replies.get(item.request) for item in self.scorer.prepare(samples)]

    @staticmethod
    def _record(answer: _Answer, parse: AnswerParse, result: RewardResult | BaseException, raw: str | None,
                tokens: Mapping[str, int], judge_seconds: Mapping[str, float]) -> SampleRecord:
        base = replace(_base_record(answer), answer=answer.text, parse=parse, tokens_by_block=tokens,
                       seconds={"generate": round(answer.seconds, 6), **judge_seconds})
        if isinstance(result, BaseException):
            return replace(base, status="error", error=f"scoring failed: {type(result).__name__}: {result}")
        return replace(base, status=result.status, reward=result.to_log(), judge_raw=raw)


def _base_record(answer: _Answer) -> SampleRecord:
    row = answer.item.row
    return SampleRecord(
        id=row.id, epoch=answer.item.epoch, benchmark=row.benchmark, data_source=row.data_source, status="error",
        label=row.label, prompt=tuple(dict(m) for m in row.messages), ground_truth=row.ground_truth,
        steering=answer.steering, tokens_in=answer.tokens_in, tokens_out=answer.tokens_out,
        seconds={"generate": round(answer.seconds, 6)}, constraint=answer.constraint,
    )


def _unanswered(answer: _Answer) -> SampleRecord:
    if answer.error:
        return replace(_base_record(answer), status="error", error=answer.error)
    return replace(_base_record(answer), status="generation_failed", error=answer.failure)


def _encode(record: SampleRecord) -> str:
    """One JSON line; a record JSON cannot hold (a NaN, an object in extra_info) becomes an error
    record of the same row, so the batch is still written."""
    buffer = io.StringIO()
    try:
        write_records([record], buffer)
    except (TypeError, ValueError, RecursionError) as exc:
        buffer = io.StringIO()
        bare = SampleRecord(id=record.id, epoch=record.epoch, benchmark=record.benchmark, data_source=record.data_source,
                            status="error", label=record.label, ground_truth=record.ground_truth,
                            error=f"the record cannot be written as JSON: {type(exc).__name__}: {exc}")
        write_records([bare], buffer)
    return buffer.getvalue()


class _LogFile:
    """The run log, appended batch by batch; each batch is flushed and fsynced before the next."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: TextIO = open(path, "a", encoding="utf-8", errors="backslashreplace", newline="\n")

    def write(self, lines: Sequence[str]) -> None:
        self.handle.write("".join(lines))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


@dataclass
class _Run:
    """The state of one `run_eval` call while its pipeline runs."""

    config: EvalConfig
    log: _LogFile
    generator: _Generator | _SourceAnswers
    scorer: _Scorer
    progress: EvalProgress | None
    concurrency: int
    records: dict[tuple[str, int], SampleRecord]
    ran: int = 0

    def write(self, records: Sequence[SampleRecord]) -> None:
        self.log.write([_encode(record) for record in records])
        for record in records:
            self.records[record.key] = record
        self.ran += len(records)
        if self.progress is not None:
            self.progress.advance(records)

    async def pipeline(self, todo: Sequence[_Item]) -> None:
        ready: asyncio.Queue[_Answer] = asyncio.Queue()
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()

        async def one(item: _Item) -> None:
            try:
                answer = await self.generator.answer(item)
            except Exception as exc:  # a bug in generation loses neither the row nor the run
                answer = _Answer(item, failure=f"generation raised {type(exc).__name__}: {exc}")
            finally:
                slots.release()
            ready.put_nowait(answer)

        async def feed() -> None:
            for item in todo:
                await slots.acquire()
                task = asyncio.create_task(one(item))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(_seen)

        feeder = asyncio.create_task(feed())
        ticker = asyncio.create_task(self._tick()) if self.progress is not None else None
        try:
            written = 0
            while written < len(todo):
                batch = [await ready.get()]
                while len(batch) < JUDGE_BATCH and not ready.empty():
                    batch.append(ready.get_nowait())
                records = await self.scorer.records(batch)
                self.write(records)
                written += len(records)
        finally:
            pending = [task for task in (feeder, ticker, *running) if task is not None]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _tick(self) -> None:
        assert self.progress is not None
        while True:
            await asyncio.sleep(self.progress.poll)
            self.progress.tick()


def _seen(task: asyncio.Task[None]) -> None:
    """Mark a row's finished task as seen. Only Ctrl-C (`KeyboardInterrupt` raised inside the row)
    ends one with an exception; the loop re-raises it, and without this its garbage collection
    would also log "Task exception was never retrieved"."""
    if not task.cancelled():
        task.exception()


def _counter(backend: Any) -> Counter | None:
    """The backend's token counter, when it has that capability."""
    from gtalign.backends._base import TokenCounter

    return backend.count_tokens if isinstance(backend, TokenCounter) else None


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


async def _close(backend: Any, judge: Any) -> None:
    if backend is not None:
        with contextlib.suppress(Exception):
            await backend.aclose()
    if judge is not None:
        from gtalign.cli._judges import close_judge

        with contextlib.suppress(Exception):
            await close_judge(judge)


def run_eval(
    config: EvalConfig,
    out_dir: str | os.PathLike[str],
    *,
    new: bool = False,
    progress: EvalProgress | None = None,
    clock: Callable[[], float] = time.monotonic,
    rows: Sequence[BenchmarkRow] | None = None,
    backend: ChatBackend | None = None,
    judge: Any = None,
) -> EvalSummary:
    """Run ``config`` into ``out_dir/run.jsonl`` and return what the log holds then.

    A folder that already holds this run is resumed: its final records are kept and only the rest
    run (a different config, or changed benchmark data, raises `ResumeRefused` naming the
    difference). ``new``: when ``out_dir`` holds a run, write to ``OUT-2``, ``OUT-3``, ... instead.
    ``rows``, ``backend`` and ``judge`` replace what the config names (rows of a benchmark built in
    code, a backend or judge object already made); objects passed in are not closed. With
    ``config.answers_from`` the answers are that run's (its answer settings are taken, and those
    set in ``config`` must agree) and no backend is built or called. ``clock``
    times the run for the summary and each judge batch (the records' ``seconds``). Ctrl-C ends the run with ``interrupted`` set; what was written
    stays, and the same call resumes it. Raises `EvalSetupError` for a setting that cannot be used.
    """
    started = clock()
    run_dir, moved = choose_run_dir(out_dir, new)
    notes: list[str] = [moved] if moved else []
    if progress is not None and moved:
        progress.note(moved)
    source = None
    if config.answers_from is not None:
        source = read_answer_source(config.answers_from)
        if Path(config.answers_from).resolve() in (run_dir.resolve(), (run_dir / LOG_NAME).resolve()):
            raise EvalSetupError(f"answers_from {config.answers_from} is the run's own folder: give another --out")
        config = resolve_answers_from(config, source)
    check_rule(config)
    preset = build_eval_preset(config)
    loaded_notes: list[str] = []
    if rows is None:
        rows, loaded_notes = load_rows(config)
    rows = list(rows)
    check_rows(rows)
    if source is not None:
        loaded_notes.extend(check_source_rows(source, rows, config.epochs))
    log_path = run_dir / LOG_NAME
    try:
        with output_lock(log_path):
            state = read_resume_state(log_path, config, rows)
            for note in (*loaded_notes, *state.notes):
                notes.append(note)
                if progress is not None:
                    progress.note(note)
            todo = [_Item(row, epoch, state.rejudge.get((row.id, epoch))) for epoch in range(config.epochs) for row in rows
                    if (row.id, epoch) not in state.kept]
            records = dict(state.kept)
            interrupted = False
            ran = 0
            if todo:
                ran, interrupted = _execute(config, log_path, state, todo, records, progress, backend, judge, preset, source,
                                            clock)
    except OutputLocked as exc:
        raise ResumeRefused(f"{exc}: wait for it to finish, or pass another --out") from None
    planned = {(row.id, epoch) for epoch in range(config.epochs) for row in rows}
    final = [record for key, record in records.items() if key in planned]
    return EvalSummary(run_dir=run_dir, log=log_path, prompts=len(rows), epochs=config.epochs, kept=len(state.kept), ran=ran,
                       sources=summarize_sources(final), interrupted=interrupted, notes=tuple(notes), seconds=clock() - started)


def _warm_up(judge: Any, todo: Sequence[_Item]) -> None:
    """Start a judge's slow parts (the rule judge's math workers) in the background while the model
    loads and the first rows generate, when a row to run will need them."""
    warm_up = getattr(judge, "warm_up", None)
    if callable(warm_up) and any(_task_kind(item.row.data_source) == "math" for item in todo):
        warm_up()


def _task_kind(data_source: str) -> str | None:
    from gtalign._registry import REGISTRY, RegistryError

    if ("task", data_source) not in REGISTRY:
        return None
    try:
        return getattr(REGISTRY.get("task", data_source), "task", None)
    except RegistryError:
        return None


def _execute(config: EvalConfig, log_path: Path, state: ResumeState, todo: list[_Item], records: dict[tuple[str, int], SampleRecord],
             progress: EvalProgress | None, backend: Any, judge: Any, preset: Any, source: AnswerSource | None,
             clock: Callable[[], float]) -> tuple[int, bool]:
    """Build what the config names (unless given), write the header of a new log, run the pipeline.
    With a ``source`` of answers no backend is built, and one passed in is not called."""
    own_backend = backend is None and source is None
    own_judge = judge is None
    if own_backend:
        backend = build_eval_backend(config.backend, config.model, config.concurrency)
    generator: _Generator | _SourceAnswers
    try:
        if own_judge:
            judge = build_eval_judge(config)
        _warm_up(judge, todo)
        generator = _SourceAnswers(source) if source is not None else _Generator(backend, config)
        scorer = _Scorer(config, preset, judge, _counter(backend) if source is None else None, clock)
    except BaseException:
        run_sync(_close(backend if own_backend else None, judge if own_judge else None))
        raise
    if source is not None:
        described = source.backend
        concurrency = (choose_concurrency(config.concurrency, None) if config.concurrency is not None
                       else Concurrency(JUDGE_BATCH, "the judge's batch: answers from another run wait for nothing"))
    else:
        described = describe_backend(backend)
        concurrency = choose_concurrency(config.concurrency, backend)
    load = getattr(backend, "aload", None) if own_backend else None
    if load is not None:  # the embedded model: load it now, so a model that does not load fails before any row
        if progress is not None:
            progress.note(f"gtalign eval: loading the model of {describe_backend(backend)} ...")
        try:
            run_sync(load())
        except Exception as exc:
            run_sync(_close(backend, judge if own_judge else None))
            raise EvalSetupError(f"backend {config.backend!r}: the model does not load: {type(exc).__name__}: {exc}") from None
    try:
        log = _LogFile(log_path)
    except BaseException:  # the log cannot be opened: nothing ran, but what was built is closed
        run_sync(_close(backend if own_backend else None, judge if own_judge else None))
        raise
    run = _Run(config, log, generator, scorer, progress, concurrency.rows, records)
    interrupted = False
    handed_over = False  # once _main runs, it closes the backend and the judge itself
    try:
        if state.header is None:
            header = RunHeader(config=config.header_json(), config_hash=config.hash, gtalign=__version__, created=_now(),
                               backend=described, judge=_describe_judge(config, judge))
            log.write([_line(header)])
        if progress is not None:
            progress.note(f"gtalign eval: {len(todo)} samples to run ({len(state.kept)} kept) with "
                          f"{described}, {concurrency}; log: {log_path}")
            progress.start(len(todo))
        handed_over = True
        try:
            run_sync(_main(run, todo, backend if own_backend else None, judge if own_judge else None))
        except KeyboardInterrupt:
            interrupted = True
    finally:
        if not handed_over:  # the header could not be written
            run_sync(_close(backend if own_backend else None, judge if own_judge else None))
        if progress is not None:
            progress.close()
        log.close()
    return run.ran, interrupted


async def _main(run: _Run, todo: list[_Item], backend: Any, judge: Any) -> None:
    try:
        await run.pipeline(todo)
    finally:
        await _close(backend, judge)


def _line(header: RunHeader) -> str:
    buffer = io.StringIO()
    write_records([header], buffer)
    return buffer.getvalue()


def _describe_judge(config: EvalConfig, judge: Any) -> str:
    if judge is None:
        return ""
    name = str(getattr(judge, "name", type(judge).__name__))
    return f"{name} model={config.judge_model}" if config.judge_model else name
