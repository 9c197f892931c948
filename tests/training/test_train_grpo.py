"""Two real GRPO steps on the embedded SmolLM2-135M-Instruct with gtalign's reward and the rule judge
(LoRA, 2 completions of 16 tokens per prompt): finite losses, the reward's components logged per
step, unscored rows left out (None, never 0), checkpoints written, reloaded and continued from; and
the trainer `gtalign train grpo` builds, with one welfare reward or U and L as two, masking the
failures of an LLM judge that is down."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gtalign.training._config import config_from_settings
from gtalign.training._train_run import FINAL_DIR, METRICS_LOG, RECORD_NAME, complete_checkpoint, plan_training, run_training
from tests.integrations._helpers import answer
from tests.training.test_train_fixtures import (  # noqa: F401
    TINY_GRPO_TRL,
    embedded_model,
    finite,
    grpo_data,
    steps,
)

pytestmark = pytest.mark.engine  # TRL's trainers run here

COMPONENTS = ("score", "user_reward", "llm_reward", "utility", "format", "format_reward", "payoff_reward", "answer_reward")


def grpo_config(data: Path, out: Path, **overrides: Any) -> Any:
    settings: dict[str, Any] = {"data": str(data), "output_dir": str(out), "lora": {"r": 4, "lora_alpha": 8}, "threads": 1,
                                "reward": {"preset": "paper", "judge": "rule"}, "trl": dict(TINY_GRPO_TRL)}
    for key, value in overrides.items():
        settings[key] = {**settings[key], **value} if isinstance(value, dict) and key in settings else value
    return config_from_settings("grpo", settings)


def test_two_grpo_steps_log_the_reward_components_and_continue(embedded_model: Path, grpo_data: Path,  # noqa: F811
                                                               tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    result = run_training(grpo_config(grpo_data, out))
    rows = steps(result.history)
    assert [row["step"] for row in rows] == [1, 2] and finite([row["loss"] for row in rows])

    # every step logs the shares of unscored rows and judge failures; steps with scored rows log U, L, welfare, ...
    for row in rows:
        assert 0 <= row["gtalign/unscored_frac"] <= 1 and row["gtalign/judge_failed_frac"] == 0
    scored = [row for row in rows if row["gtalign/unscored_frac"] < 1]
    assert scored
    for row in scored:
        assert finite([row[f"gtalign/{name}"] for name in COMPONENTS])
        # TRL's reward mean is gtalign's mean over the scored rows. The untrained model's 16-token completions
        # never parse, so every scored row is 0 here: the masking itself is checked with a judge that is down, below
        assert row["rewards/gtalign_welfare/mean"] == pytest.approx(row["gtalign/score"])
    # 4 prompts x 2 completions over two steps: the no-such-task prompt's 2 completions are unscored
    assert sorted(row["gtalign/unscored_frac"] for row in rows) == [0.0, 0.5]

    # the metrics log has the same components, per step
    logged = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    assert {"gtalign/user_reward", "gtalign/llm_reward", "gtalign/score", "gtalign/format"} <= set(logged[0])

    # checkpoints written and reloaded
    assert complete_checkpoint(out / "checkpoint-1") and complete_checkpoint(out / "checkpoint-2")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(embedded_model), out / FINAL_DIR)
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()

    # the same run asked for a third step continues from checkpoint-2 instead of starting over
    more = run_training(grpo_config(grpo_data, out, trl={"max_steps": 3}))
    assert more.resumed_from == "checkpoint-2" and more.global_step == 3
    assert [row["step"] for row in steps(more.history)] == [1, 2, 3]  # the history came back with the checkpoint
    runs = json.loads((out / RECORD_NAME).read_text())["runs"]
    assert [(run["resumed_from"], run["global_step"]) for run in runs] == [(None, 2), ("checkpoint-2", 3)]
    logged = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    assert [(row["run"], row["step"]) for row in logged if "loss" in row] == [(1, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize(("mode", "names"), [("welfare", ["gtalign_welfare"]), ("user-llm", ["gtalign_user", "gtalign_llm"])])
def test_the_trainer_masks_the_failures_of_an_llm_judge_that_is_down(embedded_model: Path, grpo_data: Path,  # noqa: F811
                                                                     tmp_path: Path, mode: str, names: list[str]) -> None:
    from gtalign.training._grpo import build_grpo_trainer

    down = {"judge": "http://127.0.0.1:9/v1", "judge_model": "judge", "judge_max_retries": 0, "judge_total_timeout": 10,
            "mode": mode}
    config = grpo_config(grpo_data, tmp_path / "run", reward=down, trl={"max_steps": 1})
    plan = plan_training(config)
    aggregation = "normalize_then_sum" if mode == "user-llm" else "sum_then_normalize"
    assert plan.trl_args.multi_objective_aggregation == aggregation
    trainer = build_grpo_trainer(config, plan.trl_args, str(plan.model_path), plan.rows.rows, plan.reward_funcs,
                                 peft_config=plan.lora)
    assert trainer.reward_func_names == names

    # TRL's own reward step: a four-block answer needs the judge (down: unscored), plain text fails the format (0)
    inputs = [dict(row) for row in plan.rows.rows[:2]]
    completions = [[{"role": "assistant", "content": answer("Frank Herbert wrote Dune.")}],
                   [{"role": "assistant", "content": "forty-two"}]]
    ids = [trainer.processing_class(c[0]["content"])["input_ids"] for c in completions]
    rewards = trainer._calculate_rewards(inputs, [row["prompt"] for row in inputs], completions, ids)
    assert rewards.shape == (2, len(names))
    assert all(math.isnan(value) for value in rewards[0].tolist())  # the judge failure: None (in U and in L), not 0
    assert rewards[1].tolist() == [0.0] * len(names)
    assert trainer._pending_metrics["gtalign/judge_failed_frac"] == [pytest.approx(0.5)]
    assert trainer._pending_metrics["gtalign/unscored_frac"] == [pytest.approx(0.5)]
    trainer._pending_metrics.clear()

    # and it trains: one step logs each reward function's mean and the components
    trainer.train()
    [row] = steps(trainer.state.log_history)
    assert math.isfinite(row["loss"])
    assert {*(f"rewards/{name}/mean" for name in names), "gtalign/judge_failed_frac"} <= set(row)
