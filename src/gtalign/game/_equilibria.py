"""Equilibria of the turn game: exact pure equilibria, and all equilibria via nashpy (extra ``gtalign[games]``).

The bimatrix game has the user as row player choosing the question type and the assistant as
column player choosing the action; ``A`` holds the user's payoffs and ``B`` the LLM's.

Payoffs with one decimal make ties common, and a game with ties is often degenerate: it can have
a continuum of equilibria, and support enumeration then returns an even number of them and may
miss mixed ones. nashpy warns about that on every such call; `equilibria` does not (the warning
says nothing the count does not), so an even ``len(equilibria(m))`` is the sign of a degenerate
game. Pure equilibria are always all found (each is its own 1x1 support), and `pure_equilibria`
finds them exactly without nashpy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from gtalign.game._payoff import PayoffMatrix

__all__ = ["Equilibrium", "best_responses", "equilibria", "pure_equilibria"]

_PURE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class Equilibrium:
    """A Nash equilibrium: each player's mixed strategy (in the space's order), and the cell key
    when both strategies are pure."""

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


def pure_equilibria(matrix: PayoffMatrix) -> tuple[str, ...]:
    """Cells, in cell order, where neither player gains by deviating alone: the user's payoff is the
    largest of its action's column and the LLM's the largest of its question type's row.

    >>> m = PayoffMatrix.from_arrays(user=[[3, 1, 2], [1, 2, 2]], llm=[[2, 1, 2], [1, 2, 1]])
    >>> pure_equilibria(m)
    ('DQ_DA', 'DQ_AQ', 'VQ_CQ')
    """
    space = matrix.space
    out = []
    for key, cell in matrix.items():
        question_type, action = space.split(key)
        best_user = max(matrix[q, action].user for q in space.question_types)
        best_llm = max(matrix[question_type, a].llm for a in space.actions)
        if cell.user >= best_user and cell.llm >= best_llm:
            out.append(key)
    return tuple(out)


def _pure_index(strategy: Sequence[float]) -> int | None:
    top = max(range(len(strategy)), key=strategy.__getitem__)
    return top if strategy[top] > 1 - _PURE_TOLERANCE else None


def equilibria(matrix: PayoffMatrix) -> tuple[Equilibrium, ...]:
    """All equilibria found by nashpy's support enumeration, in its order (see the module doc on
    degenerate games); pure ones carry their cell key."""
    try:
        import nashpy
        import numpy as np
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("equilibria need nashpy: pip install 'gtalign[games]'") from exc
    game = nashpy.Game(np.array(matrix.user_array(), dtype=float), np.array(matrix.llm_array(), dtype=float))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*An even number of", category=RuntimeWarning, module="nashpy")
        pairs = list(game.support_enumeration())
    space = matrix.space
    found = []
    for sigma_user, sigma_llm in pairs:
        user = tuple(float(x) for x in sigma_user)
        llm = tuple(float(x) for x in sigma_llm)
        row, column = _pure_index(user), _pure_index(llm)
        pure = None if row is None or column is None else space.key(space.question_types[row], space.actions[column])
        found.append(Equilibrium(user, llm, pure))
    return tuple(found)
