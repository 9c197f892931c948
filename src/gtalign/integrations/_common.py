"""What the engine adapters share: one configuration, one scorer per configuration, engine rows to
`Sample`, results to the flat numbers engines log, and one event loop for synchronous callers.

Engines load a reward function by file path or by name and pass it only their own arguments, so
the adapters take their configuration in layers: defaults < environment (``GTALIGN_*``) < the
arguments an engine forwards (verl's ``reward_kwargs``) or a factory receives (TRL).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import json
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from gtalign._registry import REGISTRY
from gtalign.reward._engine import RewardScorer, get_preset
from gtalign.reward._types import RewardResult, Sample, Verdict

if TYPE_CHECKING:
    from gtalign.judges._base import Judge

__all__ = [
    "ENV_DATA_SOURCE",
    "ENV_JUDGE",
    "ENV_JUDGE_ATTEMPT_TIMEOUT",
    "ENV_JUDGE_MAX_RETRIES",
    "ENV_JUDGE_MODEL",
    "ENV_JUDGE_TOTAL_TIMEOUT",
    "ENV_JUDGE_URL",
    "ENV_PRESET",
    "ENV_UNSCORED_SCORE",
    "LOG_KEYS",
    "AdapterConfig",
    "BurstReport",
    "build_judge",
    "build_scorer",
    "completion_text",
    "engine_log",
    "engine_score",
    "ground_truth_text",
    "option_names",
    "report_unscored",
    "require_per_sample_preset",
    "run_blocking",
    "scorer_for",
    "to_sample",
    "warn_ignored",
]

ENV_PRESET = "GTALIGN_PRESET"
ENV_JUDGE = "GTALIGN_JUDGE"
ENV_JUDGE_URL = "GTALIGN_JUDGE_URL"
ENV_JUDGE_MODEL = "GTALIGN_JUDGE_MODEL"
ENV_UNSCORED_SCORE = "GTALIGN_UNSCORED_SCORE"
ENV_DATA_SOURCE = "GTALIGN_DATA_SOURCE"
ENV_JUDGE_MAX_RETRIES = "GTALIGN_JUDGE_MAX_RETRIES"
ENV_JUDGE_TOTAL_TIMEOUT = "GTALIGN_JUDGE_TOTAL_TIMEOUT"
ENV_JUDGE_ATTEMPT_TIMEOUT = "GTALIGN_JUDGE_ATTEMPT_TIMEOUT"

_ENV = {
    "preset": ENV_PRESET,
    "judge": ENV_JUDGE,
    "judge_url": ENV_JUDGE_URL,
    "judge_model": ENV_JUDGE_MODEL,
    "unscored_score": ENV_UNSCORED_SCORE,
    "judge_max_retries": ENV_JUDGE_MAX_RETRIES,
    "judge_total_timeout": ENV_JUDGE_TOTAL_TIMEOUT,
    "judge_attempt_timeout": ENV_JUDGE_ATTEMPT_TIMEOUT,
}
# Adapter option -> the LLM judge's `ClientConfig` field it sets.
_CLIENT_FIELDS = {
    "judge_max_retries": "max_retries",
    "judge_total_timeout": "total_timeout",
    "judge_attempt_timeout": "attempt_timeout",
}
_LLM_JUDGE_NAMES = frozenset({"llm", "openai"})
_NO_JUDGE_NAMES = frozenset({"none", "null"})

# The numbers every adapter logs per row, in this order; ``unscored`` and ``judge_failed`` are 0/1
# flags, so a judge failure or a fallback score is never indistinguishable from a bad answer.
LOG_KEYS: tuple[str, ...] = (
    "score",
    "user_reward",
    "llm_reward",
    "answer_reward",
    "format_reward",
    "utility",
    "reward_gap",
    "format",
    "payoff_reward",
    "unscored",
    "judge_failed",
)

T = TypeVar("T")


@dataclass(frozen=True)
class AdapterConfig:
    """How an adapter scores: preset, judge and the float an engine gets for an unscored row.

    ``judge``: ``"none"`` (no judge: rows that need one are unscored), ``"rule"``, ``"llm"`` /
    ``"openai"`` (the LLM judge at ``judge_url`` serving ``judge_model``), an ``http(s)://`` URL
    (the LLM judge there), or any registry name or dotted path. Unset, it is the LLM judge when a
    ``judge_url`` is set and no judge otherwise. ``unscored_score`` is what engines that need a
    float (verl, OpenRLHF) get for an unscored row; the row's logged ``unscored`` flag says it
    happened.

    ``judge_max_retries``, ``judge_total_timeout`` and ``judge_attempt_timeout`` set the LLM
    judge's `ClientConfig` ``max_retries`` (retries after the first attempt), ``total_timeout``
    (seconds for one verdict, retries and waits included) and ``attempt_timeout`` (seconds for
    one HTTP attempt); unset, the client's defaults apply. They bound how long an unreachable
    judge holds up a batch. Other judges do not use them.
    """

    preset: str = "paper"
    judge: str | None = None
    judge_url: str | None = None
    judge_model: str | None = None
    unscored_score: float = 0.0
    judge_max_retries: int | None = None
    judge_total_timeout: float | None = None
    judge_attempt_timeout: float | None = None

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, **given: Any) -> AdapterConfig:
        """Defaults, then ``GTALIGN_*`` variables, then the arguments given (None means not given)."""
        env = os.environ if environ is None else environ
        unknown = sorted(set(given) - set(_ENV))
        if unknown:
            raise TypeError(f"unknown gtalign adapter option(s) {unknown}; valid: {', '.join(_ENV)}")
        values: dict[str, Any] = {}
        for name, var in _ENV.items():
            if given.get(name) is not None:
                values[name] = given[name]
            elif env.get(var):
                values[name] = env[var]
        if "unscored_score" in values:
            values["unscored_score"] = _finite_float(values["unscored_score"], "unscored_score")
        if "judge_max_retries" in values:
            values["judge_max_retries"] = _retries(values["judge_max_retries"])
        for name in ("judge_total_timeout", "judge_attempt_timeout"):
            if name in values:
                values[name] = _seconds(values[name], name)
        return cls(**values)

    def client_options(self) -> dict[str, Any]:
        """The LLM judge's `ClientConfig` fields this configuration sets (those not left unset)."""
        return {field: getattr(self, option) for option, field in _CLIENT_FIELDS.items() if getattr(self, option) is not None}


def _finite_float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r} (also settable as {_ENV[name]})") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r} (also settable as {_ENV[name]})")
    return number


def _seconds(value: Any, name: str) -> float:
    number = _finite_float(value, name)
    if number <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r} (also settable as {_ENV[name]})")
    return number


def _retries(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    else:
        number = -1
    if number < 0:
        raise ValueError(
            f"judge_max_retries must be a whole number >= 0, got {value!r} (also settable as {ENV_JUDGE_MAX_RETRIES})"
        )
    return number


def _as_judge(candidate: Any, spec: str) -> Judge:
    if not callable(getattr(candidate, "judge", None)):
        raise TypeError(f"judge {spec!r} gave a {type(candidate).__name__}, which has no async judge(requests) method")
    judge: Judge = candidate
    return judge


def _unused_client_options(client_options: Mapping[str, Any], judge: str) -> None:
    if client_options:
        names = sorted(option for option, field in _CLIENT_FIELDS.items() if field in client_options)
        warnings.warn(f"judge {judge!r} is not the LLM judge, so it does not use {', '.join(names)}", stacklevel=3)


def build_judge(
    judge: Judge | str | None,
    judge_url: str | None = None,
    judge_model: str | None = None,
    **client_options: Any,
) -> Judge | None:
    """A judge from a spec (see `AdapterConfig`); an object with the Judge protocol is returned as is.

    ``client_options`` are `ClientConfig` fields (``max_retries``, ``total_timeout``,
    ``attempt_timeout``; see `AdapterConfig.client_options`) for the LLM judge.
    """
    if judge is not None and not isinstance(judge, str):
        _unused_client_options(client_options, type(judge).__name__)
        return _as_judge(judge, type(judge).__name__)
    name = (judge or "").strip()
    if name.startswith(("http://", "https://")):
        name, judge_url = "openai", name
    elif name.lower() in _NO_JUDGE_NAMES:
        return None
    elif not name:
        if not judge_url:
            return None
        name = "openai"
    if name.lower() not in _LLM_JUDGE_NAMES:
        _unused_client_options(client_options, name)
        return _as_judge(REGISTRY.create("judge", name), name)
    if not judge_url:
        raise ValueError(f"the LLM judge needs a server: pass judge_url= or set {ENV_JUDGE_URL}")
    if not judge_model:
        raise ValueError(f"the LLM judge at {judge_url} needs a model name: pass judge_model= or set {ENV_JUDGE_MODEL}")
    return _as_judge(REGISTRY.create("judge", "openai", base_url=judge_url, model=judge_model, **client_options), name)


def build_scorer(config: AdapterConfig, judge: Judge | None = None) -> RewardScorer:
    """A scorer for ``config``; ``judge`` (an object) overrides the config's judge spec."""
    if judge is None:
        judge = build_judge(config.judge, config.judge_url, config.judge_model, **config.client_options())
    return RewardScorer(get_preset(config.preset), judge)


@functools.lru_cache(maxsize=16)
def scorer_for(config: AdapterConfig) -> RewardScorer:
    """One scorer per configuration and process (engines call per row; a judge keeps its client)."""
    return build_scorer(config)


def require_per_sample_preset(scorer: RewardScorer, where: str, batched: str) -> None:
    """Refuse a preset that normalises per batch when the engine hands over one row at a time:
    a z-score of one row is always 0, which would train on nothing without saying so."""
    normalize = getattr(scorer.preset, "normalize", "none")
    if normalize != "none":
        raise ValueError(
            f"preset {scorer.preset.name!r} normalises scores per batch ({normalize}), but {where} scores one "
            f"row at a time; use {batched} instead"
        )


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, Iterable):
        return "".join(_text_of(part) for part in content)
    return str(content)


def completion_text(completion: Any) -> str:
    """The assistant's text: a string as is; a conversational completion (a message or a list of
    messages, content a string or a list of parts) as its assistant messages joined."""
    if completion is None or isinstance(completion, str):
        return completion or ""
    if isinstance(completion, Mapping):
        return _text_of(completion.get("content"))
    messages = list(completion)
    assistant = [m for m in messages if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"]
    return "".join(_text_of(m.get("content")) for m in assistant)


def batch_column(kwargs: Mapping[str, Any], name: str, count: int) -> list[Any] | None:
    """A dataset column TRL passes a reward function as a keyword (one value per completion), or
    None when the data has no such column; a column of another length is the caller's bug."""
    values = kwargs.get(name)
    if values is None:
        return None
    values = list(values)
    if len(values) != count:
        raise ValueError(f"column {name!r} has {len(values)} values for {count} completions")
    return values


def mean(values: Sequence[float]) -> float:
    """The exactly rounded mean of a non-empty batch of values."""
    return math.fsum(values) / len(values)


def ground_truth_text(ground_truth: Any = None, reward_model: Any = None) -> str:
    """The ground truth as a string, from a plain value or a verl ``reward_model`` dict."""
    if ground_truth is None and isinstance(reward_model, Mapping):
        ground_truth = reward_model.get("ground_truth")
    if isinstance(ground_truth, Mapping):
        ground_truth = ground_truth.get("ground_truth")
    if ground_truth is None:
        return ""
    return ground_truth if isinstance(ground_truth, str) else str(ground_truth)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f"{what} is a string that is not a JSON object: {value[:80]!r}") from None
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping, got {type(value).__name__}")
    return value


def _given_verdict(extra_info: Mapping[str, Any]) -> Verdict | None:
    value = extra_info.get("judge_verdict")
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return Verdict.failure("invalid", f"judge_verdict {value!r} is not a number", judge="given")
    if not math.isfinite(number):
        return Verdict.failure("invalid", f"judge_verdict {value!r} is not finite", judge="given")
    return Verdict(number, judge="given")


def to_sample(
    data_source: Any,
    completion: Any,
    ground_truth: Any = None,
    extra_info: Any = None,
    reward_model: Any = None,
) -> Sample:
    """One engine row as a `Sample`.

    ``extra_info["judge_verdict"]`` (a number on the task's judge scale), when present, is used as
    the verdict and no judge is asked, as with the ``judge_verdict`` column of ``gtalign score``.
    """
    if data_source is None or (isinstance(data_source, str) and not data_source):
        raise ValueError(f"a row has no data_source (set the column, or {ENV_DATA_SOURCE} where the adapter reads it)")
    info = _mapping(extra_info, "extra_info")
    return Sample(
        data_source=str(data_source),
        completion=completion_text(completion),
        ground_truth=ground_truth_text(ground_truth, reward_model),
        extra_info=info,
        verdict=_given_verdict(info),
    )


def engine_score(result: RewardResult, unscored_score: float) -> float:
    """The float an engine trains on: the score, or the configured fallback for an unscored row."""
    return float(result.score) if result.score is not None else unscored_score


def engine_log(result: RewardResult, unscored_score: float, missing: float | None = None) -> dict[str, float | None]:
    """The `LOG_KEYS` numbers of one result; components a result lacks become ``missing``."""
    judge_failed = result.judge_status is not None and result.judge_status != "ok"
    row: dict[str, float | None] = {}
    for key in LOG_KEYS:
        if key == "score":
            value: float | None = engine_score(result, unscored_score)
        elif key == "unscored":
            value = 0.0 if result.scored else 1.0
        elif key == "judge_failed":
            value = 1.0 if judge_failed else 0.0
        else:
            raw = getattr(result, key)
            value = missing if raw is None else float(raw)
        row[key] = value
    return row


class _LoopThread:
    """One event loop on a daemon thread, for synchronous callers.

    Engines call a synchronous reward function from many threads (OpenRLHF) or once per row
    (verl's legacy managers). Running every call on one long-lived loop lets the judge keep its
    connection pool and apply its concurrency limit across all of them, which a fresh loop per
    call (``asyncio.run``) would not. A forked child starts its own loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name="gtalign-adapter-loop", daemon=True).start()
                ready.wait()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("a synchronous gtalign reward function was called from its own event loop; await the async one")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


_LOOP = _LoopThread()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the adapters' shared loop and wait (safe inside a running loop too)."""
    return _LOOP.run(coro)


def _judge_failed(result: RewardResult) -> bool:
    return result.judge_status is not None and result.judge_status != "ok"


@dataclass(frozen=True)
class _Tally:
    """Rows seen, rows unscored, judge failures, and the first problem's reason."""

    rows: int = 0
    unscored: int = 0
    judge_failed: int = 0
    first_reason: str = ""

    def add(self, results: Sequence[RewardResult]) -> _Tally:
        unscored = sum(1 for r in results if not r.scored)
        failed = sum(1 for r in results if _judge_failed(r))
        first = self.first_reason or next((r.reason for r in results if not r.scored or _judge_failed(r)), "")
        return _Tally(self.rows + len(results), self.unscored + unscored, self.judge_failed + failed, first)

    def log(self, logger: logging.Logger, where: str, consequence: str) -> None:
        if self.unscored or self.judge_failed:
            logger.warning(
                "gtalign (%s): %d of %d rows unscored, no usable judge verdict on %d (%s); first reason: %s",
                where, self.unscored, self.rows, self.judge_failed, consequence, self.first_reason or "none given",
            )


def report_unscored(logger: logging.Logger, where: str, results: Sequence[RewardResult], consequence: str) -> None:
    """Log one warning for a batch with unscored rows or judge failures: the counts and the first
    reason (engines otherwise show only their own generic message, or nothing)."""
    _Tally().add(results).log(logger, where, consequence)


Schedule = Callable[[float, Callable[[], None]], None]
"""``schedule(delay, callback)``: call ``callback`` about ``delay`` seconds from now, on any thread."""


def _schedule_on_adapter_loop(delay: float, callback: Callable[[], None]) -> None:
    loop = _LOOP.loop()
    loop.call_soon_threadsafe(loop.call_later, delay, callback)


class BurstReport:
    """`report_unscored` for engines that call a reward function once per row (verl's per-row
    forms, OpenRLHF) and never say where a batch ends.

    Calls that overlap or follow each other within ``quiet`` seconds count as one batch; its
    warning is logged once no call has been in flight for ``quiet`` seconds (or when the next
    batch starts, or at exit), and at the latest ``max_delay`` seconds after the first problem,
    so an engine whose calls never pause (verl's async reward loop) still hears within that time.
    Wrap each call in `enter` / `leave`.
    """

    def __init__(
        self,
        logger: logging.Logger,
        where: str,
        *,
        quiet: float = 1.0,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = _schedule_on_adapter_loop,
    ) -> None:
        self.logger, self.where, self.quiet, self.max_delay = logger, where, quiet, max_delay
        self._clock, self._schedule = clock, schedule
        self._lock = threading.Lock()
        self._tally = _Tally()
        self._consequence = ""
        self._in_flight = 0
        self._generation = 0
        self._last_leave = -math.inf
        self._problem_since = math.inf  # when the pending tally got its first problem
        self._at_exit = False

    def enter(self) -> None:
        """A call starts; a gap of ``quiet`` seconds since the last one ends the previous batch."""
        with self._lock:
            ended = self._take() if self._in_flight == 0 and self._clock() - self._last_leave >= self.quiet else None
            self._in_flight += 1
            self._generation += 1
        self._log(ended)

    def leave(self, results: Sequence[RewardResult], consequence: str) -> None:
        """A call ends with ``results`` (``consequence``: what the engine does with unscored rows)."""
        overdue = None
        with self._lock:
            self._in_flight -= 1
            self._tally = self._tally.add(results)
            self._consequence = consequence
            now = self._last_leave = self._clock()
            problems = bool(self._tally.unscored or self._tally.judge_failed)
            if problems and self._problem_since == math.inf:
                self._problem_since = now
            if problems and now - self._problem_since >= self.max_delay:
                overdue = self._take()
            due = self._in_flight == 0 and problems and overdue is None
            generation = self._generation
            if problems and not self._at_exit:
                self._at_exit = True
                atexit.register(self.flush)
        self._log(overdue)
        if due:
            self._schedule(self.quiet, functools.partial(self._flush_if_quiet, generation))

    def flush(self) -> None:
        """Log what is pending now."""
        with self._lock:
            pending = self._take()
        self._log(pending)

    def _flush_if_quiet(self, generation: int) -> None:
        with self._lock:
            pending = self._take() if self._in_flight == 0 and generation == self._generation else None
        self._log(pending)

    def _take(self) -> tuple[_Tally, str]:
        pending, self._tally = (self._tally, self._consequence), _Tally()
        self._problem_since = math.inf
        return pending

    def _log(self, pending: tuple[_Tally, str] | None) -> None:
        if pending is not None:
            pending[0].log(self.logger, self.where, pending[1])


def warn_ignored(options: Iterable[str], where: str, known: Sequence[str] = ()) -> None:
    """Warn about keyword arguments an adapter does not use (a typo in a config would otherwise pass)."""
    ignored = sorted(set(options) - set(known))
    if ignored:
        warnings.warn(f"{where} ignores keyword argument(s) {ignored}", stacklevel=3)


def option_names() -> tuple[str, ...]:
    """The configuration keywords every adapter accepts."""
    return tuple(f.name for f in fields(AdapterConfig))
