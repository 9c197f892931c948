"""RewardScorer: a judge that raises or miscounts fails the rows that needed it, never the batch."""

from __future__ import annotations

import pytest

from gtalign.reward import RewardScorer, Sample, Verdict, get_preset
from gtalign.reward._types import JudgeRequest

from .test_paper import RESPONSE, completion


class RaisingJudge:
    """Raises on every batch that holds a response containing ``poison``."""

    name = "raising"

    def __init__(self, poison: str = "poison") -> None:
        self.poison = poison
        self.batches: list[list[JudgeRequest]] = []

    async def judge(self, requests):
        self.batches.append(list(requests))
        if any(self.poison in request.response for request in requests):
            raise RuntimeError("judge bug")
        return [Verdict(1.0, judge=self.name) for _ in requests]


class MiscountingJudge:
    name = "miscounting"

    async def judge(self, requests):
        return [Verdict(1.0)] * (len(requests) + 1)


def rows() -> list[Sample]:
    return [
        Sample("math-hard", completion(RESPONSE), "42"),  # needs the judge
        Sample("math-hard", completion("The answer is 41."), "42", verdict=Verdict(0.0)),  # brings its verdict
        Sample("math-hard", completion("poison 42"), "42"),  # needs the judge
        Sample("math-hard", "no blocks at all", "42"),  # a parse failure: 0 without a judge
    ]


@pytest.mark.parametrize("preset", ["paper", "robust"])
def test_a_judge_that_raises_fails_only_the_rows_that_needed_it(preset):
    judge = RaisingJudge()
    results = RewardScorer(get_preset(preset), judge=judge).score(rows())
    assert len(judge.batches) == 1 and len(judge.batches[0]) == 2  # one batch, the two rows without a verdict
    for failed in (results[0], results[2]):
        assert failed.status == "unscored" and failed.score is None and failed.judge_status == "failed"
        assert failed.reason == "judge failed: judge raised RuntimeError: judge bug"
    alone = RewardScorer(get_preset(preset)).score([rows()[1]])[0]
    assert results[1] == alone and results[1].status == "scored"
    assert results[3].status == "scored" and results[3].score == 0.0


def test_a_judge_that_raises_is_scored_zero_only_when_asked():
    results = RewardScorer(get_preset("paper", unscored_as_zero=True), judge=RaisingJudge()).score(rows())
    assert results[0].status == "scored" and "judge raised RuntimeError" in results[0].reason
    assert "unscored_as_zero" in results[0].reason


def test_a_judge_that_returns_the_wrong_number_of_verdicts_fails_those_rows():
    results = RewardScorer(get_preset("paper"), judge=MiscountingJudge()).score(rows())
    assert [r.status for r in results] == ["unscored", "scored", "unscored", "scored"]
    assert results[0].reason == "judge failed: judge returned 3 verdicts for 2 requests"


def test_a_healthy_judge_scores_every_row():
    judge = RaisingJudge(poison="never there")
    results = RewardScorer(get_preset("paper"), judge=judge).score(rows())
    assert [r.status for r in results] == ["scored"] * 4
    assert results[0].judge_value == 1.0 and results[0].judge_status == "ok"
