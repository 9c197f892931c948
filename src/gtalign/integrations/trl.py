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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gtalign.integrations._common import AdapterConfig, build_judge, report_unscored, run_blocking, to_sample
from gtalign.reward._engine import RewardScorer, get_preset
from gtalign.reward._preset import RewardPreset
from gtalign.reward._types import RewardResult, Sample

if TYPE_CHECKING:
    from gtalign.judges._base import Judge

__all__ = ["TRLWelfareReward", "TRLWelfareRewardSync", "make_trl_reward"]

logger = logging.getLogger(__name__)

DEFAULT_NAME = "gtalign_welfare"
# Means over the scored rows of a batch; ``score`` is the trained reward (the welfare sqrt(U*L)
# under the paper preset, U or L under its baselines).
_METRICS: tuple[str, ...] = (
    "score", "user_reward", "llm_reward", "utility", "answer_reward", "format_reward", "format", "reward_gap",
)


def _column(kwargs: Mapping[str, Any], name: str, count: int) -> Sequence[Any] | None:
    values = kwargs.get(name)
    if values is None:
        return None
    values = list(values)
    if len(values) != count:
        raise ValueError(f"column {name!r} has {len(values)} values for {count} completions")
    return values


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


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

    @property
    def __name__(self) -> str:  # TRL names the reward (logs, completions table) after __name__
        return self.name

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scorer"] = None
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
        sources = _column(kwargs, "data_source", count)
        if sources is None:
            if self.data_source is None:
                raise ValueError(
                    "the dataset has no 'data_source' column: add one (verl-style rows have it) or pass "
                    "make_trl_reward(..., data_source='math-hard')"
                )
            sources = [self.data_source] * count
        truths = _column(kwargs, "ground_truth", count) or [None] * count
        reward_models = _column(kwargs, "reward_model", count) or [None] * count
        infos = _column(kwargs, "extra_info", count) or [None] * count
        verdicts = _column(kwargs, "judge_verdict", count)
        if verdicts is not None:
            infos = [{**(info or {}), "judge_verdict": verdict} for info, verdict in zip(infos, verdicts)]
        return [to_sample(*row) for row in zip(sources, completions, truths, infos, reward_models)]

    async def score(self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[float | None]:
        results = await self.scorer.ascore(self.samples(prompts, completions, kwargs))
        report_unscored(logger, f"TRL reward {self.name}", results, "returned as None: TRL leaves them out of the reward")
        self._log(results, kwargs.get("log_metric"), kwargs.get("log_extra"))
        return [result.score for result in results]

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
                log_metric(f"gtalign/{metric}", _mean(values))


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
