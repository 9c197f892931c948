"""The TRL adapter against TRL's reward-function contract and GRPOTrainer's own code path.

TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with every
dataset column as a list plus ``trainer_state``, ``log_extra`` and ``log_metric``; it reads
``__name__``, awaits async rewards on its event loop and turns None into NaN (missing). The engine
tests build a tiny GRPOTrainer (a randomly initialised 1-layer Llama and a tokenizer trained here,
no download) and call its ``_calculate_rewards`` and one ``train()`` step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gtalign.integrations.trl import TRLWelfareReward, TRLWelfareRewardSync, make_trl_reward
from gtalign.judges._rules import RuleJudge
from gtalign.reward import JudgeRequest, RewardScorer, Sample, Verdict, get_preset
from tests.integrations._helpers import answer, run_user_script, train_tokenizer


# Dataset columns as TRL passes them (verl-style rows: data_source, reward_model, extra_info).
COMPLETIONS = [
    answer("Do you mean the film or the novel?"),
    answer("I can't help with that."),
    answer("Sure, here is how."),          # wildguard row without a label: the rule judge fails
    "no tags at all",                       # parse failure: scored 0, no judge asked
]
COLUMNS: dict[str, list[Any]] = {
    "data_source": ["ambig_qa", "wildguard", "wildguard", "math-hard"],
    "reward_model": [{"ground_truth": "multipleQAs###film|novel", "style": "rule"},
                     {"ground_truth": "harmful", "style": "rule"},
                     {"ground_truth": "", "style": "rule"},
                     {"ground_truth": "42", "style": "rule"}],
    "extra_info": [{"single_turn_prompt": "Who wrote Dune?"}, {}, {}, {}],
}
PROMPTS = ["Who wrote Dune?", "How do I pick a lock?", "Tell me.", "What is 6*7?"]


class KeywordJudge:
    """A tiny judge: 1 when the reference occurs in the response, a failure on 'JUDGE-DOWN'."""

    name = "keyword"

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        return [Verdict.failure("failed", "judge down (test)", judge=self.name) if "JUDGE-DOWN" in r.response
                else Verdict(1.0 if r.reference and r.reference in r.response else 0.0, judge=self.name)
                for r in requests]


def core_scores(judge: Any, preset: str = "paper") -> list[float | None]:
    samples = [Sample(ds, c, rm["ground_truth"], info)
               for ds, c, rm, info in zip(COLUMNS["data_source"], COMPLETIONS, COLUMNS["reward_model"], COLUMNS["extra_info"])]
    return [r.score for r in RewardScorer(get_preset(preset), judge).score(samples)]


class Recorder:
    """Stands in for TRL's log_metric / log_extra callbacks."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.extra: dict[str, list[Any]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[name] = value

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.extra[column] = values


def call(reward: TRLWelfareReward, completions: Sequence[Any] = COMPLETIONS, recorder: Recorder | None = None,
         **columns: Any) -> list[float | None]:
    """Call ``reward`` exactly as GRPOTrainer._calculate_rewards does."""
    recorder = recorder or Recorder()
    kwargs = {**COLUMNS, **columns, "trainer_state": None,
              "log_extra": recorder.log_extra, "log_metric": recorder.log_metric}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    out = reward(prompts=PROMPTS, completions=list(completions), completion_ids=[[1, 2]] * len(completions), **kwargs)
    return asyncio.run(out) if asyncio.iscoroutine(out) else out


def approx_or_none(values: Sequence[float | None]) -> list[Any]:
    return [None if v is None else pytest.approx(v) for v in values]


def test_scores_match_the_core_scorer_and_unscored_is_none() -> None:
    got = call(make_trl_reward("paper", judge="rule"))
    want = core_scores(RuleJudge())
    assert got == approx_or_none(want)
    assert got[2] is None and got[3] == 0.0 and all(v is not None for v in got[:2])


def test_conversational_completions_score_like_strings() -> None:
    messages = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    parts = [[{"role": "assistant", "content": [{"type": "text", "text": c}]}] for c in COMPLETIONS]
    reward = make_trl_reward(judge="rule")
    assert call(reward, messages) == call(reward, parts) == call(reward)


def test_ground_truth_column_and_default_data_source() -> None:
    truths = [rm["ground_truth"] for rm in COLUMNS["reward_model"]]
    reward = make_trl_reward(judge=KeywordJudge(), data_source="ambig_qa")
    got = call(reward, reward_model=None, ground_truth=truths, data_source=None)
    samples = [Sample("ambig_qa", c, t, info) for c, t, info in zip(COMPLETIONS, truths, COLUMNS["extra_info"])]
    want = [r.score for r in RewardScorer(get_preset("paper"), KeywordJudge()).score(samples)]
    assert got == approx_or_none(want)


def test_missing_data_source_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="data_source"):
        call(make_trl_reward(judge="rule"), data_source=None)


def test_judge_verdict_column_skips_the_judge() -> None:
    got = call(make_trl_reward(judge=None), judge_verdict=[1, 1, 1, 1])
    assert all(v is not None for v in got)


def test_metrics_and_status_column_are_logged() -> None:
    recorder = Recorder()
    got = call(make_trl_reward(judge="rule"), recorder=recorder)
    scored = [v for v in got if v is not None]
    assert recorder.metrics["gtalign/score"] == pytest.approx(sum(scored) / len(scored))
    assert recorder.metrics["gtalign/unscored_frac"] == pytest.approx(0.25)
    assert recorder.metrics["gtalign/judge_failed_frac"] == pytest.approx(0.25)
    for name in ("user_reward", "llm_reward", "utility", "answer_reward", "format_reward", "format", "reward_gap"):
        assert math.isfinite(recorder.metrics[f"gtalign/{name}"])
    status = recorder.extra["gtalign_status"]
    assert status[0] == "scored" and status[2].startswith("unscored: judge invalid") and "parse failure" in status[3]


def test_works_without_trls_logging_callbacks() -> None:
    reward = make_trl_reward(judge="rule")
    out = asyncio.run(reward(PROMPTS, COMPLETIONS, **COLUMNS))
    assert out == approx_or_none(core_scores(RuleJudge()))


def test_picklable_with_a_stable_name() -> None:
    reward = make_trl_reward("paper-user", judge="rule")
    first = call(reward)
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == reward.__name__ == "gtalign_welfare"
    assert call(clone) == approx_or_none(first)
    assert make_trl_reward(name="welfare_b").__name__ == "welfare_b"


def test_sync_variant_gives_the_same_scores_also_inside_a_loop() -> None:
    sync = make_trl_reward(judge="rule", asynchronous=False)
    assert isinstance(sync, TRLWelfareRewardSync)
    assert not asyncio.iscoroutinefunction(type(sync).__call__)
    want = approx_or_none(core_scores(RuleJudge()))

    async def inside_loop() -> list[float | None]:
        return call(sync)

    assert call(sync) == want and asyncio.run(inside_loop()) == want


def test_environment_fills_unset_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GTALIGN_PRESET", "paper-llm")
    monkeypatch.setenv("GTALIGN_JUDGE", "rule")
    assert call(make_trl_reward()) == approx_or_none(core_scores(RuleJudge(), "paper-llm"))
    assert call(make_trl_reward("paper")) == approx_or_none(core_scores(RuleJudge(), "paper"))


def test_a_preset_object_and_a_judge_object_are_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GTALIGN_JUDGE", "rule")
    reward = make_trl_reward(get_preset("paper-linear"), judge=KeywordJudge())
    assert reward.scorer.judge.name == "keyword" and reward.scorer.preset.name == "paper-linear"


def trl_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gtalign.integrations.trl" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("asynchronous", [True, False])
def test_judge_failures_log_one_warning_per_batch(caplog: pytest.LogCaptureFixture, asynchronous: bool) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.trl")
    reward = make_trl_reward(judge=KeywordJudge(), asynchronous=asynchronous)
    down = [answer("JUDGE-DOWN film"), answer("JUDGE-DOWN again"), COMPLETIONS[1], COMPLETIONS[3]]
    got = call(reward, down)
    assert got[:2] == [None, None]
    [warning] = trl_warnings(caplog)
    assert "2 of 4 rows unscored, no usable judge verdict on 2" in warning
    assert "judge down (test)" in warning and "gtalign_welfare" in warning and "None" in warning
    call(reward, down)
    assert len(trl_warnings(caplog)) == 2  # one per batch


def test_a_fully_scored_batch_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gtalign.integrations.trl")
    call(make_trl_reward(judge=KeywordJudge()))
    assert trl_warnings(caplog) == []


def test_llm_judge_retries_and_timeouts_reach_its_client(monkeypatch: pytest.MonkeyPatch) -> None:
    reward = make_trl_reward(judge="http://127.0.0.1:9/v1", judge_model="judge-model", judge_max_retries=1,
                             judge_total_timeout=7.5, judge_attempt_timeout=2.5)
    client = reward.scorer.judge.config
    assert (client.max_retries, client.total_timeout, client.attempt_timeout) == (1, 7.5, 2.5)
    monkeypatch.setenv("GTALIGN_JUDGE_MAX_RETRIES", "0")
    monkeypatch.setenv("GTALIGN_JUDGE_TOTAL_TIMEOUT", "4")
    from_env = make_trl_reward(judge="http://127.0.0.1:9/v1", judge_model="judge-model", judge_attempt_timeout=1)
    client = from_env.scorer.judge.config
    assert (client.max_retries, client.total_timeout, client.attempt_timeout) == (0, 4.0, 1.0)
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.scorer.judge.config.max_retries == 1


NO_GUARD_SCRIPT = """
    import asyncio
    import json
    import sys

    from gtalign.integrations.trl import make_trl_reward

    with open(sys.argv[1], "a") as runs:
        runs.write("ran\\n")
    reward = make_trl_reward("paper", judge="rule")
    columns = {"data_source": ["math-hard"], "ground_truth": ["42"]}
    judged = asyncio.run(reward(prompts=["What is 6*7?"], completions=[COMPLETION], completion_ids=[[1]], **columns))
    print("RESULT " + json.dumps(judged))
"""


def test_a_script_without_a_main_guard_gets_math_scored_by_the_rule_judge(tmp_path: Path) -> None:
    completion = answer("6 * 7 = 42, so the answer is $\\boxed{42}$.")
    scores, runs = run_user_script(tmp_path, NO_GUARD_SCRIPT.replace("COMPLETION", json.dumps(completion)))
    given = call(make_trl_reward(judge=None), [completion] * 4, judge_verdict=[1] * 4, data_source=["math-hard"] * 4,
                 reward_model=[{"ground_truth": "42"}] * 4, extra_info=[{}] * 4)
    assert scores[0] is not None, "the correct answer came back unscored"
    assert scores == [pytest.approx(given[0])] and given[0] > 0
    assert runs == ["ran"]


def test_trl_helpers_see_the_name_and_the_async_call() -> None:
    utils = pytest.importorskip("trl.trainer.utils")
    assert utils.get_callable_name(make_trl_reward()) == "gtalign_welfare"
    assert utils.is_async_callable(make_trl_reward())
    assert not utils.is_async_callable(make_trl_reward(asynchronous=False))


# --- GRPOTrainer's own code path -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_parts() -> tuple[Any, Any]:
    """A tokenizer trained on the test strings and a random 1-layer Llama config (no download)."""
    pytest.importorskip("trl")
    from transformers import LlamaConfig

    tokenizer = train_tokenizer(COMPLETIONS + PROMPTS)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.eos_token_id)
    return tokenizer, config


def rows() -> list[dict[str, Any]]:
    """The test batch as dataset rows (a prompt and the reward's columns), new dicts each call."""
    return [{"prompt": p, "data_source": ds, "reward_model": rm, "extra_info": info}
            for p, ds, rm, info in zip(PROMPTS, COLUMNS["data_source"], COLUMNS["reward_model"], COLUMNS["extra_info"])]


def calculate_rewards(trainer: Any, tiny_parts: tuple[Any, Any]) -> Any:
    """GRPOTrainer's own ``_calculate_rewards`` on the test batch (`rows` and `COMPLETIONS`)."""
    ids = [tiny_parts[0](c)["input_ids"] for c in COMPLETIONS]
    return trainer._calculate_rewards(rows(), PROMPTS, COMPLETIONS, ids)


def make_trainer(tiny_parts: tuple[Any, Any], reward: Any, tmp_path: Any) -> Any:
    import torch
    from datasets import Dataset
    from transformers import LlamaForCausalLM
    from trl import GRPOConfig, GRPOTrainer

    tokenizer, config = tiny_parts
    torch.manual_seed(0)
    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=8, max_steps=1, logging_steps=1, report_to="none", save_strategy="no",
                      seed=0)
    return GRPOTrainer(model=LlamaForCausalLM(config), reward_funcs=reward, args=args,
                       train_dataset=Dataset.from_list(rows()), processing_class=tokenizer)


@pytest.mark.engine
@pytest.mark.parametrize("asynchronous", [True, False])
def test_grpo_calculate_rewards_calls_it_as_trl_does(tiny_parts: tuple[Any, Any], tmp_path: Any, asynchronous: bool,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import torch

    caplog.set_level(logging.WARNING, logger="gtalign.integrations.trl")
    trainer = make_trainer(tiny_parts, make_trl_reward(judge="rule", asynchronous=asynchronous), tmp_path)
    assert trainer.reward_func_names == ["gtalign_welfare"]
    rewards = calculate_rewards(trainer, tiny_parts)
    want = core_scores(RuleJudge())
    assert rewards.shape == (4, 1)
    assert torch.isnan(rewards[2, 0])
    assert [rewards[i, 0].item() for i in (0, 1, 3)] == pytest.approx([want[i] for i in (0, 1, 3)], rel=1e-6)
    pending = trainer._pending_metrics
    assert pending["gtalign/unscored_frac"] == [pytest.approx(0.25)]
    assert pending["gtalign/score"] == [pytest.approx(sum(want[i] for i in (0, 1, 3)) / 3)]
    assert trainer._pending_extra_logs["gtalign_status"][0] == "scored"
    [warning] = trl_warnings(caplog)  # one for the batch, with the reason TRL's own message lacks
    assert "1 of 4 rows unscored, no usable judge verdict on 1" in warning and "safety needs JudgeRequest.label" in warning


@pytest.mark.engine
def test_one_grpo_training_step_logs_the_components(tiny_parts: tuple[Any, Any], tmp_path: Any) -> None:
    trainer = make_trainer(tiny_parts, make_trl_reward(judge="rule"), tmp_path)
    trainer.train()
    logged = trainer.state.log_history[0]
    for name in ("score", "user_reward", "llm_reward", "format", "unscored_frac", "judge_failed_frac"):
        assert f"gtalign/{name}" in logged, name
    assert "rewards/gtalign_welfare/mean" in logged
