"""``gtalign train grpo``: TRL's `GRPOTrainer` with gtalign's welfare reward.

The reward is `gtalign.integrations.trl`'s: one function (the preset's score, the welfare
sqrt(U*L) under ``paper``) or, with ``reward.mode: user-llm``, U and L as two functions that TRL
combines by ``reward_weights`` and ``multi_objective_aggregation``. Every batch logs U, L, welfare,
format, payoff reward, consistency (where the preset computes it) and the shares of unscored rows
and judge failures under ``gtalign/``; a row the preset cannot score (a judge failure, an unknown
data source) is None for TRL, which leaves it out of the advantage, never 0.

With ``reward.mode: game`` the one reward function is `gtalign.training._games.GamePayoffReward`
(``game_payoff``): the learner's payoff in a classic game's decision rows, its metrics under
``games/`` (payoff mean and variance, invalid answers, distance from equilibrium, regret, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gtalign.training._config import RewardSettings, TrainConfig, TrainSetupError

__all__ = ["build_grpo_trainer", "reward_functions"]


def reward_functions(settings: RewardSettings) -> list[Any]:
    """The TRL reward functions of ``settings``, their scorer and judge built now, so a preset or
    judge that cannot be used fails before the model loads. ``mode: game``: the game payoff
    reward alone (no preset, no judge)."""
    if settings.mode == "game":
        from gtalign.training._games import GamePayoffReward

        return [GamePayoffReward(normalise=settings.normalise, samples=settings.samples)]
    from gtalign.integrations.trl import make_trl_reward, make_trl_reward_parts
    from gtalign.reward import get_preset

    try:
        preset = get_preset(settings.preset, **settings.preset_params)
    except (LookupError, TypeError, ValueError, ImportError) as exc:
        raise TrainSetupError(f"reward.preset {settings.preset!r}: {exc}") from None
    options: dict[str, Any] = {
        "judge_model": settings.judge_model,
        "judge_max_retries": settings.judge_max_retries,
        "judge_total_timeout": settings.judge_total_timeout,
        "judge_attempt_timeout": settings.judge_attempt_timeout,
    }
    judge = settings.judge if settings.judge is not None else "none"
    if settings.mode == "welfare":
        functions: list[Any] = [make_trl_reward(preset, judge, **options)]
        shared = functions[0]
    else:
        functions = list(make_trl_reward_parts(preset, judge, **options))
        shared = functions[0].source
    try:
        shared.scorer  # noqa: B018 (builds the judge)
    except (LookupError, TypeError, ValueError, ImportError) as exc:
        raise TrainSetupError(f"reward.judge {settings.judge!r}: {exc}") from None
    return functions


def build_grpo_trainer(
    config: TrainConfig,
    args: Any,
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    reward_funcs: Sequence[Any],
    *,
    peft_config: Any = None,
    callbacks: Sequence[Any] = (),
    processing_class: Any = None,
) -> Any:
    """A `GRPOTrainer` for ``config`` over ``rows`` (prompt, data_source, ground_truth,
    extra_info, id), from ``model``: a local folder (TRL loads the model and its
    tokenizer) or a model object (with ``processing_class``, its tokenizer). ``peft_config`` adds
    a new LoRA adapter, except to a `peft.PeftModel`, whose own adapter is trained (TRL keeps a
    frozen copy of it as the KL reference when ``beta`` is not 0)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from gtalign.training._sft import new_adapter_config

    dataset = Dataset.from_list([dict(row) for row in rows])
    return GRPOTrainer(model=model, reward_funcs=list(reward_funcs), args=args, train_dataset=dataset,
                       peft_config=new_adapter_config(model, peft_config), callbacks=list(callbacks),
                       processing_class=processing_class)
