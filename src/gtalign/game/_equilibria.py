"""Equilibria of the turn game via nashpy (optional extra ``gtalign[games]``).

The bimatrix game has the user as row player choosing the question type and the assistant as
column player choosing the action; ``A`` holds the user's payoffs and ``B`` the LLM's.
"""

from __future__ import annotations

from dataclasses import dataclass

from gtalign.game._payoff import PayoffMatrix

__all__ = ["Equilibrium", "best_responses", "equilibria"]


@dataclass(frozen=True, slots=True)
class Equilibrium:
    """A Nash equilibrium: each player's mixed strategy, and whether it is pure."""

    user_strategy: tuple[float, ...]
    llm_strategy: tuple[float, ...]
    pure_key: str | None


def best_responses(matrix: PayoffMatrix) -> dict[str, str]:
    """For each question type, the action maximising the LLM's payoff (ties: earlier action)."""
    out = {}
    for question_type in matrix.space.question_types:
        row = matrix.row(question_type)
        out[question_type] = matrix.space.split(max(row, key=lambda k: (matrix[k].llm, -row.index(k))))[1]
    return out


def equilibria(matrix: PayoffMatrix) -> tuple[Equilibrium, ...]:
    """All equilibria found by support enumeration (pure ones carry their cell key)."""
    try:
        import nashpy
        import numpy as np
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("equilibria need nashpy: pip install 'gtalign[games]'") from exc
    game = nashpy.Game(np.array(matrix.user_array()), np.array(matrix.llm_array()))
    found = []
    for sigma_user, sigma_llm in game.support_enumeration():
        u = tuple(float(x) for x in sigma_user)
        l_ = tuple(float(x) for x in sigma_llm)
        pure = None
        if max(u) > 1 - 1e-9 and max(l_) > 1 - 1e-9:
            pure = matrix.space.key(matrix.space.question_types[u.index(max(u))], matrix.space.actions[l_.index(max(l_))])
        found.append(Equilibrium(u, l_, pure))
    return tuple(found)
