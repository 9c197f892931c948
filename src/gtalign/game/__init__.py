"""The game of one turn: payoff matrices, welfare rules, Pareto frontiers, decisions, pricing.

Pure: no I/O, no network, no torch, no global random state. nashpy is imported only by
`equilibria`, so the rest works without the ``games`` extra.
"""

from gtalign.game._decision import Decision, decide
from gtalign.game._equilibria import Equilibrium, best_responses, equilibria, pure_equilibria
from gtalign.game._pareto import dominates, pareto_frontier
from gtalign.game._payoff import DEFAULT_SPACE, Payoff, PayoffError, PayoffMatrix, StrategySpace
from gtalign.game._pricing import AffineTransform, llm_price_shift, user_price_shift
from gtalign.game._welfare import (
    WelfareRule,
    cobb_douglas,
    egalitarian,
    linear,
    nash,
    product,
    sum_rule,
    welfare_rule,
)

__all__ = [
    "DEFAULT_SPACE",
    "AffineTransform",
    "Decision",
    "Equilibrium",
    "Payoff",
    "PayoffError",
    "PayoffMatrix",
    "StrategySpace",
    "WelfareRule",
    "best_responses",
    "cobb_douglas",
    "decide",
    "dominates",
    "egalitarian",
    "equilibria",
    "linear",
    "llm_price_shift",
    "nash",
    "pareto_frontier",
    "product",
    "pure_equilibria",
    "sum_rule",
    "user_price_shift",
    "welfare_rule",
]
