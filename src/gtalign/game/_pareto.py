"""Pareto dominance and frontiers over payoff cells (both coordinates maximised).

Dominance raises ``user + LLM`` strictly (also with a tolerance ``eps``), so it has no cycles and
every frontier is non-empty.
"""

from __future__ import annotations

from gtalign.game._payoff import Payoff, PayoffMatrix

__all__ = ["dominates", "pareto_frontier"]


def dominates(a: Payoff, b: Payoff, eps: float = 0.0) -> bool:
    """True when ``a`` is at least as good as ``b`` for both parties and better for one (by > eps).

    >>> dominates(Payoff(user=2, llm=1), Payoff(user=1, llm=1)), dominates(Payoff(2, 1), Payoff(1, 3))
    (True, False)
    """
    return (
        a.user >= b.user - eps
        and a.llm >= b.llm - eps
        and (a.user > b.user + eps or a.llm > b.llm + eps)
    )


def pareto_frontier(matrix: PayoffMatrix, keys: tuple[str, ...] | None = None, eps: float = 0.0) -> tuple[str, ...]:
    """Keys of the cells no other cell dominates, in cell order (optionally among ``keys`` only).

    >>> m = PayoffMatrix.from_arrays(user=[[3, 1, 2], [1, 2, 2]], llm=[[2, 1, 2], [1, 2, 1]])
    >>> pareto_frontier(m), pareto_frontier(m, m.row("VQ"))
    (('DQ_DA',), ('VQ_CQ',))
    """
    chosen = matrix.keys if keys is None else tuple(keys)
    cells = [(k, matrix[k]) for k in chosen]
    return tuple(k for k, c in cells if not any(dominates(o, c, eps) for j, o in cells if j != k))
