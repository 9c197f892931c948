"""What one steered answer produced: the game record, stage by stage, with an explicit status.

A model failure is never an exception: it is a `SteeringResult` with status ``"failed"`` and a
reason. ``"fallback"`` means an answer was produced but some declared fallback was taken
(`SteeringResult.fallbacks` says which); ``"ok"`` means none was needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from gtalign.game import Decision, PayoffMatrix, WelfareRule, pareto_frontier
from gtalign.protocol import ParsedAnswer
from gtalign.steering._policy import PricingPolicy

__all__ = ["RECORD_VERSION", "FallbackEvent", "Stage", "StageName", "SteeringResult", "SteeringStatus"]

RECORD_VERSION = 1
"""Version of the `SteeringResult.to_record` layout; bumped when a field changes meaning."""

SteeringStatus = Literal["ok", "fallback", "failed"]
StageName = Literal["payoff", "continue", "response"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One call to the backend: what it was asked to continue and what it wrote.

    ``text`` is the new text as it enters the answer (the stop string put back when the model
    stopped on it); ``prefill`` the assistant text it continued. ``tokens_out`` counts only the
    newly generated tokens, as the backend reports them (None when it does not). ``latency`` is the
    backend's own figure, ``wall`` the time the engine waited.
    """

    name: StageName
    attempt: int
    prefill: str
    text: str
    finish_reason: str
    stop: str | None
    tokens_in: int | None
    tokens_out: int | None
    latency: float
    wall: float
    status: str
    reason: str
    max_tokens: int
    temperature: float
    seed: int | None
    constraint: Mapping[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "attempt": self.attempt,
            "prefill_chars": len(self.prefill),
            "text": self.text,
            "finish_reason": self.finish_reason,
            "stop": self.stop,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "latency": round(self.latency, 6),
            "wall": round(self.wall, 6),
            "status": self.status,
            "reason": self.reason,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "constraint": None if self.constraint is None else dict(self.constraint),
        }


@dataclass(frozen=True, slots=True)
class FallbackEvent:
    """A declared fallback the engine took, and why.

    Kinds: ``retry`` (the payoff was missing or malformed; generated again with another seed),
    ``lenient_payoff`` (only the research code's lenient parse read the matrix), ``default_action``
    (no usable matrix: the declared default key was used), ``discarded_text`` (malformed stage-one
    text dropped before continuing), ``forced_response`` (the continuation wrote no ``<response>``:
    one was opened and the model continued into it), ``truncated`` (the response hit ``max_tokens``),
    ``unstructured`` (the model ignored the protocol and its own answer was kept, unsteered).
    """

    stage: StageName
    kind: Literal["retry", "lenient_payoff", "default_action", "discarded_text", "forced_response", "truncated",
                  "unstructured"]
    detail: str

    def to_record(self) -> dict[str, str]:
        return {"stage": self.stage, "kind": self.kind, "detail": self.detail}


def _decision_record(decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    payoffs = dict(decision.payoffs)
    return {
        "key": decision.key,
        "question_type": decision.question_type,
        "action": decision.action,
        "welfare": round(decision.welfare, 10),
        "rule": decision.rule,
        "candidates": list(decision.candidates),
        "welfare_by_key": {k: round(w, 10) for k, w in decision.welfare_by_key},
        "payoffs": {k: {"LLM": p.llm, "user": p.user} for k, p in payoffs.items()},
        "frontier": list(decision.frontier),
        "tied": list(decision.tied),
        "why": decision.explain(),
    }


@dataclass(frozen=True, slots=True)
class SteeringResult:
    """The steered answer and its game record.

    ``raw`` is the model's matrix, ``transformed`` the policy's version of it; ``decision`` the
    welfare rule's choice on ``transformed`` (restricted to ``question_type`` when the model
    classified the question) and ``unsteered`` the same rule's choice on ``raw``, so a record says
    whether pricing changed the action. ``chosen_key`` is the key written into ``<analyze>``:
    the decision's, or the fallback's when ``chosen_by == "fallback"``. ``text`` is the whole
    assistant turn (prefilled parts included), ``parsed`` its parse with `parse_answer`.
    """

    status: SteeringStatus
    reason: str
    response: str
    text: str
    policy: PricingPolicy
    rule: WelfareRule
    stages: tuple[Stage, ...] = ()
    fallbacks: tuple[FallbackEvent, ...] = ()
    raw: PayoffMatrix | None = None
    transformed: PayoffMatrix | None = None
    payoff_parse: Literal["strict", "lenient"] | None = None
    question_type: str | None = None
    question_type_evidence: str = ""
    decision: Decision | None = None
    unsteered: Decision | None = None
    chosen_key: str | None = None
    chosen_by: Literal["rule", "fallback"] | None = None
    decision_text: str = ""
    parsed: ParsedAnswer | None = None
    backend: str = ""
    model: str = ""
    messages: tuple[Mapping[str, str], ...] = ()
    blocks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def chosen_action(self) -> str | None:
        return None if self.chosen_key is None else self.chosen_key.partition("_")[2]

    @property
    def flipped(self) -> bool | None:
        """Whether pricing changed the rule's choice (None without a matrix)."""
        if self.decision is None or self.unsteered is None:
            return None
        return self.decision.key != self.unsteered.key

    @property
    def tokens_out(self) -> int | None:
        """Newly generated tokens over all stages (prefilled text is not generated); None when the
        backend reported no counts."""
        counts = [s.tokens_out for s in self.stages if s.tokens_out is not None]
        return sum(counts) if counts else None

    @property
    def wall(self) -> float:
        return sum(s.wall for s in self.stages)

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict: everything needed to see why this answer is what it is."""
        frontier_raw = list(pareto_frontier(self.raw)) if self.raw is not None else None
        frontier = list(pareto_frontier(self.transformed)) if self.transformed is not None else None
        return {
            "version": RECORD_VERSION,
            "status": self.status,
            "reason": self.reason,
            "backend": self.backend,
            "model": self.model,
            "policy": self.policy.to_dict(),
            "rule": self.rule.name,
            "question_type": self.question_type,
            "question_type_evidence": self.question_type_evidence,
            "matrix": {
                "raw": None if self.raw is None else self.raw.to_dict(),
                "transformed": None if self.transformed is None else self.transformed.to_dict(),
                "parsed_by": self.payoff_parse,
                "frontier_raw": frontier_raw,
                "frontier": frontier,
            },
            "decision": _decision_record(self.decision),
            "unsteered": _decision_record(self.unsteered),
            "flipped": self.flipped,
            "chosen_key": self.chosen_key,
            "chosen_by": self.chosen_by,
            "decision_text": self.decision_text,
            "stages": [s.to_record() for s in self.stages],
            "fallbacks": [f.to_record() for f in self.fallbacks],
            "tokens_out": self.tokens_out,
            "wall": round(self.wall, 6),
            "blocks": dict(self.blocks),
            "problems": [] if self.parsed is None else [str(p) for p in self.parsed.problems],
            "response": self.response,
            "text": self.text,
        }
