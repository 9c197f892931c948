"""What the engine adapters share: one configuration, one scorer per configuration, engine rows to
`Sample`, results to the flat numbers engines log, and one event loop for synchronous callers.

Engines load a reward function by file path or by name and pass it only their own arguments, so
the adapters take their configuration in layers: defaults < environment (``GTALIGN_*``) < the
arguments an engine forwards (verl's ``reward_kwargs``) or a factory receives (TRL).
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import threading
import warnings
from collections.abc import Coroutine, Iterable, Mapping, Sequence
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
    "ENV_JUDGE_MODEL",
    "ENV_JUDGE_URL",
    "ENV_PRESET",
    "ENV_UNSCORED_SCORE",
    "LOG_KEYS",
    "AdapterConfig",
    "build_judge",
    "build_scorer",
    "completion_text",
    "engine_log",
    "engine_score",
    "ground_truth_text",
    "option_names",
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

_ENV = {
    "preset": ENV_PRESET,
    "judge": ENV_JUDGE,
    "judge_url": ENV_JUDGE_URL,
    "judge_model": ENV_JUDGE_MODEL,
    "unscored_score": ENV_UNSCORED_SCORE,
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
    ``judge_url`` is set and no judge otherwise. ``unscored_score`` is what engines that need a float (verl, OpenRLHF) get
    for an unscored row; the row's logged ``unscored`` flag says it happened.
    """

    preset: str = "paper"
    judge: str | None = None
    judge_url: str | None = None
    judge_model: str | None = None
    unscored_score: float = 0.0

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
        return cls(**values)


def _finite_float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r} (also settable as {ENV_UNSCORED_SCORE})") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite (engines train on it), got {value!r}")
    return number


def _as_judge(candidate: Any, spec: str) -> Judge:
    if not callable(getattr(candidate, "judge", None)):
        raise TypeError(f"judge {spec!r} gave a {type(candidate).__name__}, which has no async judge(requests) method")
    judge: Judge = candidate
    return judge


def build_judge(judge: Judge | str | None, judge_url: str | None = None, judge_model: str | None = None) -> Judge | None:
    """A judge from a spec (see `AdapterConfig`); an object with the Judge protocol is returned as is."""
    if judge is not None and not isinstance(judge, str):
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
        return _as_judge(REGISTRY.create("judge", name), name)
    if not judge_url:
        raise ValueError(f"the LLM judge needs a server: pass judge_url= or set {ENV_JUDGE_URL}")
    if not judge_model:
        raise ValueError(f"the LLM judge at {judge_url} needs a model name: pass judge_model= or set {ENV_JUDGE_MODEL}")
    return _as_judge(REGISTRY.create("judge", "openai", base_url=judge_url, model=judge_model), name)


def build_scorer(config: AdapterConfig, judge: Judge | None = None) -> RewardScorer:
    """A scorer for ``config``; ``judge`` (an object) overrides the config's judge spec."""
    if judge is None:
        judge = build_judge(config.judge, config.judge_url, config.judge_model)
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


def warn_ignored(options: Iterable[str], where: str, known: Sequence[str] = ()) -> None:
    """Warn about keyword arguments an adapter does not use (a typo in a config would otherwise pass)."""
    ignored = sorted(set(options) - set(known))
    if ignored:
        warnings.warn(f"{where} ignores keyword argument(s) {ignored}", stacklevel=3)


def option_names() -> tuple[str, ...]:
    """The configuration keywords every adapter accepts."""
    return tuple(f.name for f in fields(AdapterConfig))
