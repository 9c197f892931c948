"""Typed inputs and results of the welfare reward: samples, judge requests, verdicts, results.

These live in the pure core: judges (adapters) import them, never the other way round.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "JudgeRequest",
    "RewardResult",
    "Sample",
    "Task",
    "Verdict",
    "VerdictStatus",
]

Task = Literal["math", "writing", "safety", "ambiguity"]
VerdictStatus = Literal["ok", "failed", "unparsable", "invalid", "refused"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Sample:
    """One rollout to score: the completion, its task's ground truth and the row's extra info.

    ``verdict`` carries a judge verdict that is already known (the ``judge_verdict`` column of
    ``gtalign score``); when set, no judge is called for this sample.
    """

    data_source: str
    completion: str
    ground_truth: str = ""
    extra_info: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    verdict: Verdict | None = None


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """What a judge is asked about one response, independent of how the judge works.

    ``response`` is the ``<response>`` block only (the paper's judge never sees the reasoning).
    ``label`` is the normalised dataset label where the task has one: ``harmful``/``unharmful``
    (safety), ``ambiguous``/``clear`` (ambiguity); ``reference`` is the gold answer or article.
    """

    task: Task
    response: str
    reference: str = ""
    label: str = ""
    question: str = ""
    intent: str = ""
    data_source: str = ""

    def cache_key(self, judge: str, model: str = "", rubric: str = "") -> str:
        """A stable digest of everything that can change a verdict."""
        payload = json.dumps([judge, model, rubric, asdict(self)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's verdict on the task's own scale (SPEC section 3), or why there is none.

    ``status`` is ``ok`` with a ``value``; otherwise ``value`` is None and ``reason`` says what
    went wrong (``failed``: the judge could not be reached or errored after retries;
    ``unparsable``: it answered without a readable verdict; ``invalid``: a verdict outside the
    task's allowed values, or a request the judge cannot judge (an unknown task or label), so that
    asking again cannot help; ``refused``: a content filter or context overflow).
    """

    value: float | None
    status: VerdictStatus = "ok"
    reason: str = ""
    raw: str | None = None
    judge: str = ""
    cached: bool = False

    def __post_init__(self) -> None:
        if self.status == "ok" and self.value is None:
            raise ValueError("an ok verdict needs a value")
        if self.status != "ok" and self.value is not None:
            raise ValueError(f"a {self.status} verdict carries no value")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def failure(cls, status: VerdictStatus, reason: str, *, raw: str | None = None, judge: str = "") -> Verdict:
        return cls(None, status, reason, raw, judge)


@dataclass(frozen=True, slots=True)
class RewardResult:
    """Every component of one sample's reward.

    ``status`` is ``scored`` or ``unscored``; an unscored row has ``score`` None and a ``reason``
    (a judge failure is never a silent 0). Fields that a preset does not compute are None.
    ``format_reward`` and ``answer_reward`` carry the preset's logged meaning (for ``paper``:
    ``0.1*format + 0.15*payoff_reward`` and the task's logged answer reward).
    """

    preset: str
    data_source: str
    status: Literal["scored", "unscored"]
    score: float | None
    user_reward: float | None = None
    llm_reward: float | None = None
    answer_reward: float | None = None
    format_reward: float | None = None
    format: float | None = None
    payoff_reward: float | None = None
    consistency: float | None = None
    a_user: float | None = None
    a_llm: float | None = None
    utility: float | None = None
    reward_gap: float | None = None
    judge_status: str | None = None
    judge_value: float | None = None
    reason: str = ""
    components: Mapping[str, float] = field(default_factory=lambda: _EMPTY)

    @property
    def scored(self) -> bool:
        return self.status == "scored"

    def to_log(self) -> dict[str, Any]:
        """A flat, JSON-ready dict (the fields ``gtalign score`` writes and trainers log)."""
        out = {
            "score": self.score,
            "user_reward": self.user_reward,
            "llm_reward": self.llm_reward,
            "answer_reward": self.answer_reward,
            "format_reward": self.format_reward,
            "utility": self.utility,
            "reward_gap": self.reward_gap,
            "source": self.data_source,
            "status": self.status,
            "preset": self.preset,
            "format": self.format,
            "payoff_reward": self.payoff_reward,
            "consistency": self.consistency,
            "a_user": self.a_user,
            "a_llm": self.a_llm,
            "judge_status": self.judge_status,
            "judge_value": self.judge_value,
            "reason": self.reason,
        }
        out.update(self.components)
        return out
