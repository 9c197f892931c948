"""The preset protocol: a reward is computed in two pure steps around one judge call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gtalign.reward._types import JudgeRequest, RewardResult, Sample, Verdict

__all__ = ["Prepared", "RewardPreset"]


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
