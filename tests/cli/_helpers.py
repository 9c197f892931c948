"""Rows, files and judges shared by the ``gtalign score`` tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from gtalign.reward import JudgeRequest, Verdict

PAYOFF = (
    '{"DQ_AQ": {"LLM": 2.0, "user": 2.1}, "DQ_CQ": {"LLM": 1.0, "user": 0.9}, "DQ_DA": {"LLM": 3.0, "user": 3.1}, '
    '"VQ_AQ": {"LLM": 1.5, "user": 1.4}, "VQ_CQ": {"LLM": 0.5, "user": 0.4}, "VQ_DA": {"LLM": 1.0, "user": 1.1}}'
)


def completion(answer: str) -> str:
    return (
        "<thinking>A definite question; answer directly.</thinking>\n"
        f"<payoff>{PAYOFF}</payoff>\n"
        "<analyze>DQ_DA dominates; chosen key: DQ_DA.</analyze>\n"
        f"<response>The answer is \\boxed{{{answer}}}.</response>"
    )


def row(i: int, *, verdict: float | None = None, source: str = "math-hard") -> dict:
    out = {"id": i, "data_source": source, "completion": completion(str(i)), "ground_truth": str(i)}
    if verdict is not None:
        out["judge_verdict"] = verdict
    return out


def write_jsonl(path: Path, rows: Sequence[dict | str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for item in rows:
            handle.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return path


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class CountingJudge:
    """A Judge that answers 1 to everything and remembers every response it was asked about.

    ``fail``: responses it answers with a ``failed`` verdict (a judge that is down for them);
    ``interrupt_on_call``: the call (1-based) that raises KeyboardInterrupt, as Ctrl-C would.
    """

    name = "counting"

    def __init__(self, interrupt_on_call: int | None = None, fail: frozenset[str] = frozenset()) -> None:
        self.responses: list[str] = []
        self.calls = 0
        self.interrupt_on_call = interrupt_on_call
        self.fail = fail

    async def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        self.calls += 1
        if self.calls == self.interrupt_on_call:
            raise KeyboardInterrupt
        self.responses.extend(r.response for r in requests)
        return [
            Verdict.failure("failed", "judge server: 503 Service Unavailable", judge=self.name) if r.response in self.fail
            else Verdict(1.0, judge=self.name)
            for r in requests
        ]


def answer(i: int) -> str:
    """The response block of `completion` for row ``i``: what the judge is asked about."""
    return f"The answer is \\boxed{{{i}}}."
