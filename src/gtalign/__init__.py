"""gtalign: game-theoretic alignment of LLM assistants for social welfare (arXiv 2510.08872).

The core is pure (``gtalign.game``, ``gtalign.protocol``, ``gtalign.reward``); adapters sit at
the edges (``gtalign.judges``, ``gtalign.integrations``, ``gtalign.data``, ``gtalign.cli``).
The names below are the ones most programs need; each subpackage documents the rest.
"""

from gtalign._registry import REGISTRY, Registry, RegistryError
from gtalign.game import PayoffMatrix, StrategySpace, WelfareRule, decide, pareto_frontier, welfare_rule
from gtalign.protocol import ParsedAnswer, build_messages, parse_answer
from gtalign.reward import RewardResult, RewardScorer, Sample, Verdict, get_preset

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "ParsedAnswer",
    "PayoffMatrix",
    "Registry",
    "RegistryError",
    "RewardResult",
    "RewardScorer",
    "Sample",
    "StrategySpace",
    "Verdict",
    "WelfareRule",
    "__version__",
    "build_messages",
    "decide",
    "get_preset",
    "pareto_frontier",
    "parse_answer",
    "welfare_rule",
]
