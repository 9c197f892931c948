"""Decisions: the welfare rule's argmax over a payoff matrix, with deterministic tie-breaks."""

from __future__ import annotations

from dataclasses import dataclass

from gtalign.game._pareto import pareto_frontier
from gtalign.game._payoff import PayoffMatrix
from gtalign.game._welfare import WelfareRule, welfare_rule

__all__ = ["Decision", "decide"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The chosen cell and why: every candidate's welfare, the frontier, and the cells tied on welfare."""

    key: str
    question_type: str
    action: str
    welfare: float
    rule: str
    candidates: tuple[str, ...]
    welfare_by_key: tuple[tuple[str, float], ...]
    frontier: tuple[str, ...]
    tied: tuple[str, ...]

    @property
    def on_frontier(self) -> bool:
        return self.key in self.frontier


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
    )
