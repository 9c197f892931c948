"""U and L as two TRL reward functions (`make_trl_reward_parts`): the same numbers as the scorer's
``user_reward`` / ``llm_reward``, one scoring (and one judge call per row) for both parts, the
``gtalign/`` metrics logged once per batch, None (never 0) for an unscored row, and TRL's own
``_calculate_rewards`` with both parts."""

from __future__ import annotations

import asyncio
import pickle
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from gtalign.integrations.trl import PART_NAMES, TRLRewardPartSync, make_trl_reward_parts
from gtalign.judges._rules import RuleJudge
from gtalign.reward import JudgeRequest, RewardScorer, Sample, Verdict, get_preset
from tests.integrations.test_trl import (  # noqa: F401
    COLUMNS, COMPLETIONS, PROMPTS, KeywordJudge, calculate_rewards, make_trainer, tiny_parts,
)
from tests.integrations._helpers import answer


class CountingJudge(KeywordJudge):
    """KeywordJudge that counts the responses it was asked about."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        for request in requests:
            self.asked[request.response] += 1
        await asyncio.sleep(0)  # let the other part start while this one is scoring
        return await super().judge(requests)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.extra: dict[str, list[Any]] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.calls.append((name, value))

    def log_extra(self, column: str, values: list[Any]) -> None:
        self.extra[column] = values


def kwargs_for(recorder: Recorder, **columns: Any) -> dict[str, Any]:
    return {**COLUMNS, **columns, "trainer_state": None, "log_metric": recorder.log_metric, "log_extra": recorder.log_extra}


async def call_together(parts: Sequence[Any], completions: Sequence[Any], recorder: Recorder, **columns: Any) -> list[list[Any]]:
    """Both parts awaited together, as TRL's ``_calculate_rewards`` gathers async rewards."""
    ids = [[1, 2]] * len(completions)
    return list(await asyncio.gather(*(part(prompts=PROMPTS, completions=list(completions), completion_ids=ids,
                                            **kwargs_for(recorder, **columns)) for part in parts)))


def core(judge: Any, preset: str = "paper") -> list[Any]:
    samples = [Sample(ds, c, rm["ground_truth"], info)
               for ds, c, rm, info in zip(COLUMNS["data_source"], COMPLETIONS, COLUMNS["reward_model"], COLUMNS["extra_info"])]
    return RewardScorer(get_preset(preset), judge).score(samples)


def test_parts_are_u_and_l_of_the_scorer_and_none_when_unscored() -> None:
    user, llm = make_trl_reward_parts("paper", judge="rule")
    assert (user.__name__, llm.__name__) == ("gtalign_user", "gtalign_llm") == tuple(PART_NAMES.values())
    got_user, got_llm = asyncio.run(call_together([user, llm], COMPLETIONS, Recorder()))
    want = core(RuleJudge())
    assert got_user == [None if not r.scored else pytest.approx(r.user_reward) for r in want]
    assert got_llm == [None if not r.scored else pytest.approx(r.llm_reward) for r in want]
    assert got_user[2] is None and got_llm[2] is None  # the judge failed on row 2: masked, not 0
    assert got_user[3] == pytest.approx(want[3].user_reward) and want[3].scored  # a parse failure is scored (tiny U)


def test_one_scoring_and_one_log_per_batch_for_both_parts() -> None:
    judge = CountingJudge()
    parts = make_trl_reward_parts("paper", judge=judge)
    recorder = Recorder()
    down = [answer("JUDGE-DOWN film"), COMPLETIONS[0], COMPLETIONS[1], COMPLETIONS[3]]
    got_user, got_llm = asyncio.run(call_together(parts, down, recorder))
    assert got_user[0] is None and got_llm[0] is None
    assert all(count == 1 for count in judge.asked.values()) and judge.asked  # each row judged once, not twice
    names = Counter(name for name, _ in recorder.calls)
    assert names["gtalign/judge_failed_frac"] == 1 and names["gtalign/user_reward"] == 1
    assert dict(recorder.calls)["gtalign/judge_failed_frac"] == pytest.approx(0.25)


def test_the_same_batch_at_the_next_step_is_scored_and_logged_again() -> None:
    judge = CountingJudge()
    parts = make_trl_reward_parts("paper", judge=judge)
    recorder = Recorder()

    async def two_steps() -> None:
        await call_together(parts, COMPLETIONS, recorder)
        await call_together(parts, COMPLETIONS, recorder)

    asyncio.run(two_steps())
    assert Counter(name for name, _ in recorder.calls)["gtalign/score"] == 2
    assert max(judge.asked.values()) == 2


def test_sync_parts_give_the_same_numbers_one_after_the_other() -> None:
    sync = make_trl_reward_parts("paper", judge="rule", asynchronous=False)
    assert all(isinstance(part, TRLRewardPartSync) for part in sync)
    recorder = Recorder()
    got = [part(prompts=PROMPTS, completions=list(COMPLETIONS), completion_ids=None, **kwargs_for(recorder)) for part in sync]
    want = asyncio.run(call_together(make_trl_reward_parts("paper", judge="rule"), COMPLETIONS, Recorder()))
    assert got == want
    assert Counter(name for name, _ in recorder.calls)["gtalign/score"] == 1


def test_parts_pickle_and_keep_their_names() -> None:
    parts = make_trl_reward_parts("paper", judge="rule", names=["u", "l"])
    clones = pickle.loads(pickle.dumps(parts))
    assert [c.__name__ for c in clones] == ["u", "l"] and clones[0].source is clones[1].source
    assert asyncio.run(call_together(clones, COMPLETIONS, Recorder())) == asyncio.run(call_together(parts, COMPLETIONS, Recorder()))


def test_bad_parts_are_refused_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="user_reward"):
        make_trl_reward_parts(parts=["user_reward", "user_reward"])
    with pytest.raises(ValueError, match="unknown reward part 'welfare'"):
        make_trl_reward_parts(parts=["welfare"], names=["w"])


@pytest.mark.engine
def test_grpo_calculate_rewards_with_both_parts(tiny_parts: tuple[Any, Any], tmp_path: Any) -> None:  # noqa: F811
    import torch

    trainer = make_trainer(tiny_parts, make_trl_reward_parts("paper", judge="rule"), tmp_path)
    assert trainer.reward_func_names == ["gtalign_user", "gtalign_llm"]
    rewards = calculate_rewards(trainer, tiny_parts)
    want = core(RuleJudge())
    assert rewards.shape == (4, 2)
    assert torch.isnan(rewards[2]).all()  # unscored in both columns: TRL drops the row
    for i in (0, 1, 3):
        assert rewards[i].tolist() == pytest.approx([want[i].user_reward, want[i].llm_reward], rel=1e-6)
    assert trainer._pending_metrics["gtalign/unscored_frac"] == [pytest.approx(0.25)]  # logged once, not twice


def test_payoff_reward_and_consistency_are_logged_where_the_preset_computes_them() -> None:
    # paper pays for asymmetric payoffs (payoff_reward); robust for a consistent matrix (consistency)
    for preset, present, absent in (("paper", "payoff_reward", "consistency"), ("robust", "consistency", "payoff_reward")):
        recorder = Recorder()
        asyncio.run(call_together(make_trl_reward_parts(preset, judge="rule"), COMPLETIONS, recorder))
        logged = dict(recorder.calls)
        assert f"gtalign/{present}" in logged and f"gtalign/{absent}" not in logged, preset
