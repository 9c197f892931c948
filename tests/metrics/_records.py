"""Small builders of run-log records for the metric tests."""

from __future__ import annotations

import math
from typing import Any

from gtalign.eval import AnswerParse, SampleRecord


def record(
    id: str,
    *,
    source: str = "math-hard",
    epoch: int = 0,
    status: str = "scored",
    u: float | None = 0.5,
    l: float | None = 0.5,
    answer_reward: float | None = 1.0,
    label: str = "",
    judge_value: float | None = None,
    judge_status: str | None = "ok",
    format_ok: bool = True,
    answer: str = "<thinking>t</thinking><payoff>{}</payoff><analyze>a</analyze><response>r</response>",
    tokens_out: int | None = 100,
    parse: AnswerParse | None = None,
    **reward: Any,
) -> SampleRecord:
    log: dict[str, Any] = {}
    if status == "scored":
        log.update(user_reward=u, llm_reward=l, answer_reward=answer_reward,
                   utility=None if u is None or l is None else math.sqrt(u * l),
                   score=None if u is None or l is None else math.sqrt(u * l), format=float(format_ok))
    if judge_status is not None:
        log["judge_status"] = judge_status
    if judge_value is not None:
        log["judge_value"] = judge_value
    log.update(reward)
    if parse is None:
        parse = AnswerParse(format_ok=format_ok, blocks={"thinking": "t", "analyze": "a", "response": "r"} if format_ok else {})
    return SampleRecord(id=id, epoch=epoch, benchmark=source, data_source=source, status=status,  # type: ignore[arg-type]
                        label=label, answer=answer if status in ("scored", "unscored") else "", parse=parse,
                        reward=log, tokens_out=tokens_out if status in ("scored", "unscored") else None)
