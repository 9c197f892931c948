"""The one interface every judge implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from gtalign._sync import run_sync
from gtalign.reward._types import JudgeRequest, Verdict

__all__ = ["Judge", "judge_sync"]


@runtime_checkable
class Judge(Protocol):
    """Scores responses on each task's own scale (SPEC section 3).

    ``judge`` returns one `Verdict` per request, in order, and never raises for a per-row
    problem: a failure is a verdict with a non-``ok`` status and a reason.
    """

    name: str

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]: ...


def judge_sync(judge: Judge, requests: Sequence[JudgeRequest]) -> list[Verdict]:
    """Run ``judge`` from synchronous code."""
    return run_sync(judge.judge(requests))
