"""verl reward functions: the welfare reward as verl's ``custom_reward_function``, no fork of verl.

verl (0.9) scores one row at a time through its reward loop, with a sync or an async function::

    reward.custom_reward_function.path=pkg://gtalign.integrations.verl   # or this file's path
    reward.custom_reward_function.name=compute_score_async              # or compute_score
    +reward.custom_reward_function.reward_kwargs.preset=paper
    +reward.custom_reward_function.reward_kwargs.judge=rule

``compute_score_async`` lets the reward loop score a batch's rows concurrently against the judge.
The paper's whole PPO run (config, launch script with an LLM judge server) is a recipe shipped in
``gtalign/examples/verl``.
verl's ``BatchRewardManager`` (``reward_model.reward_manager=batch`` in verl versions whose
trainer still uses ``verl.workers.reward_manager``) takes ``compute_score_batch``: one judge call
per batch, and the only form that can run ``paper-ablation``, whose scores are normalised per
batch (the per-row forms refuse it rather than z-score single rows to 0).

Options come from ``reward_kwargs`` (``preset``, ``judge``, ``judge_url``, ``judge_model``,
``unscored_score``, and for the LLM judge ``judge_max_retries``, ``judge_total_timeout``,
``judge_attempt_timeout``), else from ``GTALIGN_*`` variables, else the defaults
(`gtalign.integrations._common.AdapterConfig`)::

    +reward.custom_reward_function.reward_kwargs.judge=http://127.0.0.1:8000/v1
    +reward.custom_reward_function.reward_kwargs.judge_model=Qwen3-32B
    +reward.custom_reward_function.reward_kwargs.judge_max_retries=2
    +reward.custom_reward_function.reward_kwargs.judge_total_timeout=30

verl trains on a float, so an unscored row (a judge failure, an unknown data source) gets
``unscored_score`` (default 0.0) and its extra info says so: ``unscored`` = 1 and ``reason``.
Unscored rows and judge failures are also logged (logger ``gtalign.integrations.verl``): one
warning per batch with the counts and the first reason. verl calls the per-row forms without
saying where a batch ends, so for them a batch is a run of calls with no pause of a second or
more (`gtalign.integrations._common.BurstReport`).
Every row returns the same keys (verl stacks them into arrays): ``score``, the paper's logged
components, the ``unscored`` and ``judge_failed`` flags (components a row lacks are None, which
verl's validation metrics skip) and ``reason`` (a string, empty when scored normally).

This module uses absolute imports only, since verl may load it from its file path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gtalign.integrations._common import (
    AdapterConfig,
    BurstReport,
    engine_log,
    option_names,
    report_unscored,
    require_per_sample_preset,
    run_blocking,
    scorer_for,
    to_sample,
    warn_ignored,
)
from gtalign.reward._engine import RewardScorer
from gtalign.reward._types import RewardResult

__all__ = ["compute_score", "compute_score_async", "compute_score_batch", "verl_result"]

logger = logging.getLogger(__name__)
ROW_REPORT = BurstReport(logger, "verl")
"""Sums the per-row calls' unscored rows into one warning per batch."""

# Keyword arguments verl itself passes to a reward function (reward loop, managers): not ours.
_VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer", "sandbox_fusion_url", "concurrent_semaphore", "memory_limit_mb")


def _configure(kwargs: Mapping[str, Any], where: str) -> tuple[RewardScorer, AdapterConfig]:
    ours = {k: v for k, v in kwargs.items() if k in option_names()}
    warn_ignored(set(kwargs) - set(ours), where, _VERL_KWARGS)
    config = AdapterConfig.resolve(**ours)
    return scorer_for(config), config


def _consequence(config: AdapterConfig) -> str:
    return f"verl trains on unscored_score={config.unscored_score:g} for them"


def verl_result(result: RewardResult, unscored_score: float) -> dict[str, Any]:
    """The dict verl expects from a reward function: ``score`` (a float) plus the logged extras.

    ``preset`` names the reward preset, so a validation dump says how its rows were scored
    (`gtalign metrics` reads advbench's answer quality by it)."""
    out: dict[str, Any] = dict(engine_log(result, unscored_score))
    out["reason"] = result.reason
    out["preset"] = result.preset
    return out


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """One row, awaited on verl's reward-loop event loop (concurrent rows share the judge)."""
    scorer, config = _configure(kwargs, "gtalign compute_score_async")
    require_per_sample_preset(scorer, "verl's per-row compute_score", "compute_score_batch with BatchRewardManager")
    sample = to_sample(data_source, solution_str, ground_truth, extra_info)
    results: list[RewardResult] = []
    ROW_REPORT.enter()
    try:
        results = await scorer.ascore([sample])
    finally:
        ROW_REPORT.leave(results, _consequence(config))
    return verl_result(results[0], config.unscored_score)


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """One row, synchronously (verl's NaiveRewardManager and any verl version)."""
    return run_blocking(compute_score_async(data_source, solution_str, ground_truth, extra_info, **kwargs))


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """A whole batch (verl's BatchRewardManager): one judge call, batch normalisation allowed."""
    scorer, config = _configure(kwargs, "gtalign compute_score_batch")
    count = len(solution_strs)
    infos: Sequence[Mapping[str, Any] | None] = [None] * count if extra_infos is None else extra_infos
    if not len(data_sources) == len(ground_truths) == len(infos) == count:
        raise ValueError(
            f"compute_score_batch got {len(data_sources)} data_sources, {count} solution_strs, "
            f"{len(ground_truths)} ground_truths and {len(infos)} extra_infos; they must be equal"
        )
    samples = [to_sample(*row) for row in zip(data_sources, solution_strs, ground_truths, infos)]
    results = run_blocking(scorer.ascore(samples))
    report_unscored(logger, "verl", results, _consequence(config))
    return [verl_result(result, config.unscored_score) for result in results]
