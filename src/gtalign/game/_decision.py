"""Decisions: the welfare rule's argmax over a payoff matrix, with deterministic tie-breaks."""

from __future__ import annotations

from dataclasses import dataclass

from gtalign.game._pareto import pareto_frontier
from gtalign.game._payoff import Payoff, PayoffMatrix
from gtalign.game._welfare import WelfareRule, welfare_rule

__all__ = ["Decision", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen cell and why: every candidate's payoffs and welfare, the candidates' Pareto
    frontier, and the candidates tied with the choice on welfare (the choice included)."""

    key: str
    question_type: str
    action: str
    welfare: float
    rule: str
    candidates: tuple[str, ...]
    welfare_by_key: tuple[tuple[str, float], ...]
    frontier: tuple[str, ...]
    tied: tuple[str, ...]
    payoffs: tuple[tuple[str, Payoff], ...] = ()

    @property
    def on_frontier(self) -> bool:
        return self.key in self.frontier

    def explain(self) -> str:
        """A few lines for logs: each candidate, the choice (``*``), and how a welfare tie was broken."""
        payoff = dict(self.payoffs)
        lines = [f"{self.rule} over {', '.join(self.candidates)} -> {self.key} (welfare {self.welfare:g})"]
        width = max(len(k) for k in self.candidates)
        for key, welfare in self.welfare_by_key:
            mark = "*" if key == self.key else " "
            cell = f"user {payoff[key].user:g}  LLM {payoff[key].llm:g}  " if key in payoff else ""
            front = "  frontier" if key in self.frontier else ""
            lines.append(f"{mark} {key.ljust(width)}  {cell}welfare {welfare:g}{front}")
        others = [k for k in self.tied if k != self.key]
        if others and self.key in payoff:
            chosen = payoff[self.key]
            reasons = []
            for key in others:
                other = payoff[key]
                why = "lower user payoff" if other.user != chosen.user else (
                    "lower LLM payoff" if other.llm != chosen.llm else "same payoffs, later cell")
                reasons.append(f"{key} ({why})")
            lines.append("tied on welfare with " + ", ".join(reasons))
        return "\n".join(lines)


def decide(
    matrix: PayoffMatrix,
    rule: WelfareRule | str = "sum",
    question_type: str | None = None,
) -> Decision:
    """Pick the cell with the largest welfare under ``rule``.

    Ties go to the larger user payoff, then the larger LLM payoff, then the earlier cell in the
    space's order, so the result never depends on dict order or randomness. With
    ``question_type`` the choice is restricted to that row (the type the model classified).
    Welfare is computed on the whole matrix (the origin of multiplicative rules is matrix-wide).

    >>> m = PayoffMatrix.from_arrays(user=[[3, 1.5, 2.5], [1, 2.5, 2]], llm=[[3, 1, 3.5], [1, 2, 2]])
    >>> d = decide(m, "sum")
    >>> print(d.explain())
    sum over DQ_DA, DQ_CQ, DQ_AQ, VQ_DA, VQ_CQ, VQ_AQ -> DQ_DA (welfare 6)
    * DQ_DA  user 3  LLM 3  welfare 6  frontier
      DQ_CQ  user 1.5  LLM 1  welfare 2.5
      DQ_AQ  user 2.5  LLM 3.5  welfare 6  frontier
      VQ_DA  user 1  LLM 1  welfare 2
      VQ_CQ  user 2.5  LLM 2  welfare 4.5
      VQ_AQ  user 2  LLM 2  welfare 4
    tied on welfare with DQ_AQ (lower user payoff)
    >>> decide(m, "sum", question_type="VQ").key
    'VQ_CQ'
    """
    rule = welfare_rule(rule)
    values = rule.values(matrix)
    by_key = dict(zip(matrix.keys, values))
    candidates = matrix.keys if question_type is None else matrix.row(question_type)
    order = {k: i for i, k in enumerate(matrix.keys)}
    best = max(candidates, key=lambda k: (*rule.sort_key(by_key[k], matrix[k]), -order[k]))
    tied = tuple(k for k in candidates if by_key[k] == by_key[best])
    question, action = matrix.space.split(best)
    return Decision(
        key=best,
        question_type=question,
        action=action,
        welfare=by_key[best],
        rule=rule.name,
        candidates=candidates,
        welfare_by_key=tuple((k, by_key[k]) for k in candidates),
        frontier=pareto_frontier(matrix, candidates),
        tied=tied,
        payoffs=tuple((k, matrix[k]) for k in candidates),
    )
