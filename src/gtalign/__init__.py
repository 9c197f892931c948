"""gtalign: game-theoretic alignment of LLM assistants for social welfare (arXiv 2510.08872).

The core is pure (``gtalign.game``, ``gtalign.protocol``, ``gtalign.reward``); adapters sit at
the edges (``gtalign.judges``, ``gtalign.integrations``, ``gtalign.data``, ``gtalign.cli``).
The names below are the ones most programs need; each subpackage documents the rest. They are
imported on first use, so ``import gtalign.<subpackage>`` stays as light as that subpackage.
"""

from __future__ import annotations

from gtalign._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "REGISTRY": "gtalign._registry",
    "Registry": "gtalign._registry",
    "RegistryError": "gtalign._registry",
    "PayoffMatrix": "gtalign.game",
    "StrategySpace": "gtalign.game",
    "WelfareRule": "gtalign.game",
    "decide": "gtalign.game",
    "pareto_frontier": "gtalign.game",
    "welfare_rule": "gtalign.game",
    "ParsedAnswer": "gtalign.protocol",
    "build_messages": "gtalign.protocol",
    "parse_answer": "gtalign.protocol",
    "RewardResult": "gtalign.reward",
    "RewardScorer": "gtalign.reward",
    "Sample": "gtalign.reward",
    "Verdict": "gtalign.reward",
    "get_preset": "gtalign.reward",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, {**_EXPORTS, "__version__": "gtalign"})
