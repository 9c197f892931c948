"""TRL reward functions: the welfare reward as a GRPOTrainer ``reward_funcs`` entry.

    from gtalign.integrations.trl import make_trl_reward
    trainer = GRPOTrainer(model, reward_funcs=make_trl_reward("paper", judge="rule"), ...)

The dataset's columns arrive as keyword lists: ``data_source`` (or the factory's ``data_source``),
``ground_truth`` or verl's ``reward_model`` dicts, and optionally ``extra_info`` (verl-style rows
need no conversion). Completions may be strings or conversational message lists.

An unscored row (judge failure, unknown data source) returns None, which TRL treats as missing:
it is left out of that row's reward instead of being trained on as 0. A batch with unscored rows
or judge failures logs one warning (logger ``gtalign.integrations.trl``) with the counts and the
first reason. When TRL passes
``log_metric`` (TRL >= 1.x), the batch means of the score (the welfare under ``paper``), U, L,
answer and format are logged under ``gtalign/``, with the shares of unscored rows and of judge
failures; ``log_extra`` adds a per-row
``gtalign_status`` column to the completions table.

For the LLM judge, ``judge_max_retries``, ``judge_total_timeout`` and ``judge_attempt_timeout``
bound how long an unreachable judge holds up a batch (see `AdapterConfig`).

The reward is async by default (TRL runs it on its own event loop, next to other async rewards);
``asynchronous=False`` gives a synchronous one for TRL versions without async reward support.

`make_trl_reward_parts` gives U and L as two reward functions instead of their product, so that
TRL combines them (``reward_weights``, ``multi_objective_aggregation="normalize_then_sum"``):

    user, llm = make_trl_reward_parts("paper", judge="rule")
    trainer = GRPOTrainer(model, reward_funcs=[user, llm], args=GRPOConfig(
        multi_objective_aggregation="normalize_then_sum", ...), ...)

Both share one scorer and score each batch once (the second function reuses the first one's
results); the ``gtalign/`` metrics are logged once per batch, as with the single reward. A row
without a score is None in both.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gtalign.integrations._common import (
    AdapterConfig,
    batch_column,
    build_judge,
    completion_text,
    mean,
    report_unscored,
    run_blocking,
    to_sample,
)
from gtalign.reward._engine import RewardScorer, get_preset
from gtalign.reward._preset import RewardPreset
from gtalign.reward._types import RewardResult, Sample

if TYPE_CHECKING:
    from gtalign.judges._base import Judge

__all__ = ["PART_NAMES", "TRLRewardPart", "TRLRewardPartSync", "TRLWelfareReward", "TRLWelfareRewardSync", "make_trl_reward",
           "make_trl_reward_parts"]

logger = logging.getLogger(__name__)

DEFAULT_NAME = "gtalign_welfare"
# Means over the scored rows of a batch; ``score`` is the trained reward (the welfare sqrt(U*L)
# under the paper preset, U or L under its baselines).
_METRICS: tuple[str, ...] = (
    "score", "user_reward", "llm_reward", "utility", "answer_reward", "format_reward", "format", "reward_gap",
    "payoff_reward", "consistency",
)
PART_NAMES: Mapping[str, str] = {"user_reward": "gtalign_user", "llm_reward": "gtalign_llm"}
"""The `RewardResult` field each reward part returns, and the part's default name (TRL's
``rewards/<name>/mean``)."""
_SHARED_BATCHES = 8  # batches a shared reward remembers until every part has read them


@dataclass
class TRLWelfareReward:
    """An async GRPO reward function (picklable; the scorer is rebuilt after unpickling).

    ``judge`` is a spec string (see `gtalign.integrations._common.AdapterConfig`) or an object
    with the Judge protocol (which must itself be picklable to cross processes). The
    ``judge_max_retries`` / ``judge_total_timeout`` / ``judge_attempt_timeout`` options apply to
    an LLM judge built from a spec.
    """

    preset: str | RewardPreset | None = None
    judge: Judge | str | None = None
    judge_url: str | None = None
    judge_model: str | None = None
    data_source: str | None = None
    name: str = DEFAULT_NAME
    judge_max_retries: int | None = None
    judge_total_timeout: float | None = None
    judge_attempt_timeout: float | None = None
    _scorer: RewardScorer | None = field(default=None, init=False, repr=False, compare=False)
    _batches: OrderedDict[str, _SharedBatch] = field(default_factory=OrderedDict, init=False, repr=False, compare=False)

    @property
    def __name__(self) -> str:  # TRL names the reward (logs, completions table) after __name__
        return self.name

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scorer"] = None
        state["_batches"] = OrderedDict()
        return state

    @property
    def scorer(self) -> RewardScorer:
        """The scorer, built on first use (and again after unpickling)."""
        if self._scorer is None:
            preset_is_name = self.preset is None or isinstance(self.preset, str)
            judge_is_spec = self.judge is None or isinstance(self.judge, str)
            config = AdapterConfig.resolve(
                preset=self.preset if preset_is_name else None,
                judge=self.judge if judge_is_spec else None,
                judge_url=self.judge_url,
                judge_model=self.judge_model,
                judge_max_retries=self.judge_max_retries,
                judge_total_timeout=self.judge_total_timeout,
                judge_attempt_timeout=self.judge_attempt_timeout,
            )
            judge = build_judge(config.judge if judge_is_spec else self.judge, config.judge_url, config.judge_model,
                                **config.client_options())
            preset = config.preset if preset_is_name or self.preset is None else self.preset
            self._scorer = RewardScorer(get_preset(preset), judge)
        return self._scorer

    def samples(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Sample]:
        """The batch as samples, from TRL's keyword columns."""
        count = len(completions)
        if len(prompts) != count:
            raise ValueError(f"TRL passed {len(prompts)} prompts for {count} completions")
        sources = batch_column(kwargs, "data_source", count)
        if sources is None:
            if self.data_source is None:
                raise ValueError(
                    "the dataset has no 'data_source' column: add one (verl-style rows have it) or pass "
                    "make_trl_reward(..., data_source='math-hard')"
                )
            sources = [self.data_source] * count
        truths = batch_column(kwargs, "ground_truth", count) or [None] * count
        reward_models = batch_column(kwargs, "reward_model", count) or [None] * count
        infos = batch_column(kwargs, "extra_info", count) or [None] * count
        verdicts = batch_column(kwargs, "judge_verdict", count)
        if verdicts is not None:
            infos = [{**(info or {}), "judge_verdict": verdict} for info, verdict in zip(infos, verdicts)]
        return [to_sample(*row) for row in zip(sources, completions, truths, infos, reward_models)]

    async def results(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[RewardResult]:
        """The batch's results; the batch's warning and ``gtalign/`` metrics are logged once here."""
        results = await self.scorer.ascore(self.samples(prompts, completions, kwargs))
        report_unscored(logger, f"TRL reward {self.name}", results, "returned as None: TRL leaves them out of the reward")
        self._log(results, kwargs.get("log_metric"), kwargs.get("log_extra"))
        return results

    async def score(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[float | None]:
        return [result.score for result in await self.results(prompts, completions, kwargs)]

    async def shared_results(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any],
                             reader: str, readers: int) -> list[RewardResult]:
        """The batch's results, scored once for ``readers`` reward parts (each named ``reader``).

        The first part to ask scores the batch (and logs it); the others get the same results,
        also while the scoring is still running (TRL awaits async rewards together). A part that
        asks again for a batch it has read already gets it scored anew: that is the next step's
        batch, equal by chance."""
        key = _batch_key(prompts, completions, kwargs)
        loop = asyncio.get_running_loop()
        entry = self._batches.get(key)
        if entry is None or reader in entry.readers or entry.loop is not loop:
            entry = _SharedBatch(loop, loop.create_task(self.results(prompts, completions, kwargs)))
            self._batches[key] = entry
            while len(self._batches) > _SHARED_BATCHES:
                self._batches.popitem(last=False)
        entry.readers.add(reader)
        if len(entry.readers) >= readers:
            self._batches.pop(key, None)
        return list(await asyncio.shield(entry.task))

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        return await self.score(prompts, completions, kwargs)

    def _log(self, results: Sequence[RewardResult], log_metric: Callable[[str, float], None] | None,
             log_extra: Callable[[str, list[Any]], None] | None) -> None:
        if log_extra is not None:
            log_extra("gtalign_status", [r.status if not r.reason else f"{r.status}: {r.reason}" for r in results])
        if log_metric is None or not results:
            return
        scored = [r for r in results if r.scored]
        judge_failed = [r for r in results if r.judge_status is not None and r.judge_status != "ok"]
        log_metric("gtalign/unscored_frac", 1 - len(scored) / len(results))
        log_metric("gtalign/judge_failed_frac", len(judge_failed) / len(results))
        for metric in _METRICS:
            values = [float(value) for r in scored if (value := getattr(r, metric)) is not None]
            if values:
                log_metric(f"gtalign/{metric}", mean(values))


@dataclass
class TRLWelfareRewardSync(TRLWelfareReward):
    """The same reward, synchronous (it runs the scorer on the adapters' shared event loop)."""

    def __call__(  # type: ignore[override]
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        return run_blocking(self.score(prompts, completions, kwargs))


def make_trl_reward(
    preset: str | RewardPreset | None = None,
    judge: Judge | str | None = None,
    *,
    judge_url: str | None = None,
    judge_model: str | None = None,
    data_source: str | None = None,
    name: str = DEFAULT_NAME,
    asynchronous: bool = True,
    judge_max_retries: int | None = None,
    judge_total_timeout: float | None = None,
    judge_attempt_timeout: float | None = None,
) -> TRLWelfareReward:
    """A TRL reward function for ``preset`` (a name or a preset object) and ``judge``.

    Options left unset fall back to the ``GTALIGN_*`` variables, then to the ``paper`` preset
    and no judge.
    The scorer (and the judge) is built on first use, so a bad option fails at the first batch;
    call ``reward.scorer`` to build it eagerly.
    """
    cls = TRLWelfareReward if asynchronous else TRLWelfareRewardSync
    return cls(preset=preset, judge=judge, judge_url=judge_url, judge_model=judge_model, data_source=data_source,
               name=name, judge_max_retries=judge_max_retries, judge_total_timeout=judge_total_timeout,
               judge_attempt_timeout=judge_attempt_timeout)


@dataclass
class _SharedBatch:
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[list[RewardResult]]
    readers: set[str] = field(default_factory=set)


def _batch_key(prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """What identifies a batch for the parts that share it: the completions and every column."""
    columns = {name: values for name, values in kwargs.items()
               if name not in ("trainer_state", "log_metric", "log_extra", "environments")}
    return json.dumps([[completion_text(c) for c in completions], [str(p) for p in prompts], columns],
                      sort_keys=True, default=str)


@dataclass
class TRLRewardPart:
    """One component of the reward (``user_reward`` U or ``llm_reward`` L) as an async GRPO reward
    function; the parts made together by `make_trl_reward_parts` share ``source`` and score each
    batch once. A row without a score is None (TRL leaves it out), never 0."""

    source: TRLWelfareReward
    part: str
    name: str
    readers: int = 2

    def __post_init__(self) -> None:
        if self.part not in PART_NAMES:
            raise ValueError(f"unknown reward part {self.part!r}; valid: {', '.join(PART_NAMES)}")

    @property
    def __name__(self) -> str:
        return self.name

    async def score(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[float | None]:
        results = await self.source.shared_results(prompts, completions, kwargs, self.name, self.readers)
        return [float(value) if r.scored and (value := getattr(r, self.part)) is not None else None for r in results]

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        return await self.score(prompts, completions, kwargs)


@dataclass
class TRLRewardPartSync(TRLRewardPart):
    """The same part, synchronous (on the adapters' shared event loop)."""

    def __call__(  # type: ignore[override]
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        return run_blocking(self.score(prompts, completions, kwargs))


def make_trl_reward_parts(
    preset: str | RewardPreset | None = None,
    judge: Judge | str | None = None,
    *,
    parts: Sequence[str] = ("user_reward", "llm_reward"),
    names: Sequence[str] | None = None,
    asynchronous: bool = True,
    **options: Any,
) -> list[TRLRewardPart]:
    """U and L (or other `PART_NAMES`) of ``preset`` as separate TRL reward functions, sharing one
    scorer and one judge call per row: ``reward_funcs=make_trl_reward_parts("paper", judge="rule")``.

    ``names`` default to ``gtalign_user`` and ``gtalign_llm``; ``options`` are those of
    `make_trl_reward` (``judge_url``, ``judge_model``, ``data_source``, ``name`` (of the shared
    scorer, in its warnings), the ``judge_*`` limits). TRL combines the parts by
    ``reward_weights`` and ``multi_objective_aggregation`` instead of the preset's own product.
    """
    parts = list(parts)
    if not parts or len(set(parts)) != len(parts):
        raise ValueError(f"parts must be distinct names from {', '.join(PART_NAMES)}, got {parts}")
    names = list(names) if names is not None else [PART_NAMES.get(part, part) for part in parts]
    if len(names) != len(parts) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(parts)} distinct names, got {names}")
    source = make_trl_reward(preset, judge, asynchronous=True, **options)
    cls = TRLRewardPart if asynchronous else TRLRewardPartSync
    return [cls(source, part, name, readers=len(parts)) for part, name in zip(parts, names)]
