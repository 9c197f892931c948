"""The preset protocol: a reward is computed in two pure steps around one judge call, and the
shared ways a preset builds its `RewardResult` (scored, scored 0, unscored)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gtalign.reward._tasks import TaskSpec
from gtalign.reward._types import _EMPTY, JudgeRequest, RewardResult, Sample, Verdict

__all__ = [
    "Prepared",
    "RewardPreset",
    "error_result",
    "judge_failure",
    "scale_violation",
    "scored_result",
    "unscored_result",
    "zero_result",
]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A sample after parsing: what to ask the judge (or None), the preset's private state, and
    the final result already known without a judge (``early``, e.g. a parse failure)."""

    sample: Sample
    request: JudgeRequest | None
    state: Any
    early: RewardResult | None


@runtime_checkable
class RewardPreset(Protocol):
    """``prepare`` parses and says what the judge must see; ``finish`` turns a verdict into a
    `RewardResult`. Both are pure, so the engine can batch, cache and parallelise the judge."""

    name: str
    normalize: str

    def prepare(self, sample: Sample) -> Prepared: ...

    def finish(self, prepared: Prepared, verdict: Verdict | None) -> RewardResult: ...


def judge_failure(verdict: Verdict | None) -> str:
    """Why ``verdict`` (missing or not ok) gives no value to score, as a result's ``reason``."""
    return "no verdict" if verdict is None else f"judge {verdict.status}: {verdict.reason}"


def scale_violation(spec: TaskSpec, sample: Sample) -> str | None:
    """Why the verdict given with ``sample`` is refused (a value outside the task's scale), or None.

    A judge's own verdicts are checked against the same scale by its rubric (status ``invalid``);
    a verdict given in the input must not slip past that check and be clamped into a score."""
    verdict = sample.verdict
    if verdict is None or not verdict.ok or spec.valid(float(verdict.value)):  # type: ignore[arg-type]
        return None
    scale = ", ".join(f"{value:g}" for value in spec.allowed)
    return f"judge_verdict {verdict.value:g} is outside the {sample.data_source} scale ({scale})"


def error_result(preset: str, sample: Sample, exc: BaseException) -> RewardResult:
    """An unscored result for a row whose scoring raised (e.g. a payoff integer too large for a
    float): that row fails with the reason, the rest of its batch is scored as usual."""
    return unscored_result(preset, sample, f"scoring failed: {type(exc).__name__}: {exc}")


def scored_result(
    preset: str,
    sample: Sample,
    verdict: Verdict | None,
    *,
    score: float,
    user: float,
    llm: float,
    answer_reward: float | None = None,
    format_reward: float | None = None,
    format: float | None = None,
    payoff_reward: float | None = None,
    consistency: float | None = None,
    a_user: float | None = None,
    a_llm: float | None = None,
    utility: float | None = None,
    judge_value: float | None = None,
    reason: str = "",
    components: Mapping[str, float] = _EMPTY,
) -> RewardResult:
    """A judged, scored result: ``reward_gap`` is ``|user - llm|`` and ``judge_status`` the
    verdict's; the other fields are the preset's own (None where it does not compute one)."""
    return RewardResult(
        preset=preset,
        data_source=sample.data_source,
        status="scored",
        score=score,
        user_reward=user,
        llm_reward=llm,
        answer_reward=answer_reward,
        format_reward=format_reward,
        format=format,
        payoff_reward=payoff_reward,
        consistency=consistency,
        a_user=a_user,
        a_llm=a_llm,
        utility=utility,
        reward_gap=abs(user - llm),
        judge_status=None if verdict is None else verdict.status,
        judge_value=judge_value,
        reason=reason,
        components=components,
    )


def zero_result(
    preset: str,
    sample: Sample,
    reason: str,
    *,
    answer_reward: float | None = None,
    payoff_reward: float | None = None,
    utility: float | None = None,
    reward_gap: float | None = None,
) -> RewardResult:
    """A result scored 0 without a judge (a format failure): score, U, L and format are 0; the
    preset passes 0.0 for the other fields it also reports as 0 (the rest stay None)."""
    return RewardResult(
        preset=preset,
        data_source=sample.data_source,
        status="scored",
        score=0.0,
        user_reward=0.0,
        llm_reward=0.0,
        answer_reward=answer_reward,
        format_reward=0.0,
        format=0.0,
        payoff_reward=payoff_reward,
        utility=utility,
        reward_gap=reward_gap,
        reason=reason,
    )


def unscored_result(preset: str, sample: Sample, reason: str, verdict: Verdict | None = None) -> RewardResult:
    """An unscored result (no score, never a silent 0), with the judge's status when there is one."""
    return RewardResult(
        preset=preset,
        data_source=sample.data_source,
        status="unscored",
        score=None,
        judge_status=None if verdict is None else verdict.status,
        reason=reason,
    )
