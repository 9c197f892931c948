"""One registry from names to presets, judges, welfare rules, tasks, benchmarks, pricing policies and games.

Built-ins are declared in one table below as dotted paths and imported only when first asked for
(no registration as a side effect of importing a module). Users add their own with
`Registry.register`, or pass a dotted path ``"package.module:attribute"`` anywhere a name is
accepted. An unknown name gets an error that lists the valid names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["REGISTRY", "Kind", "Registry", "RegistryError"]

Kind = Literal["preset", "judge", "welfare", "task", "benchmark", "pricing", "game"]
KINDS: tuple[Kind, ...] = ("preset", "judge", "welfare", "task", "benchmark", "pricing", "game")

_BUILTINS: dict[Kind, dict[str, str]] = {
    "preset": {
        "paper": "gtalign.reward._paper:paper",
        "paper-user": "gtalign.reward._paper:paper_user",
        "paper-llm": "gtalign.reward._paper:paper_llm",
        "paper-linear": "gtalign.reward._paper:paper_linear",
        "paper-ablation": "gtalign.reward._paper:paper_ablation",
        "robust": "gtalign.reward._robust:robust",
    },
    "judge": {
        "rule": "gtalign.judges._rules:RuleJudge",
        "openai": "gtalign.judges._llm:LLMJudge",
    },
    "welfare": {
        "sum": "gtalign.game._welfare:sum_rule",
        "utilitarian": "gtalign.game._welfare:sum_rule",
        "product": "gtalign.game._welfare:product",
        "cobb_douglas": "gtalign.game._welfare:cobb_douglas",
        "nash": "gtalign.game._welfare:nash",
        "egalitarian": "gtalign.game._welfare:egalitarian",
        "linear": "gtalign.game._welfare:linear",
    },
    "task": {
        "math-hard": "gtalign.reward._tasks:MATH",
        "minerva": "gtalign.reward._tasks:MATH",
        "medium": "gtalign.reward._tasks:WRITING",
        "wildguard": "gtalign.reward._tasks:SAFETY",
        "advbench": "gtalign.reward._tasks:ADVBENCH",
        "ambig_qa": "gtalign.reward._tasks:AMBIGUITY",
        "abg-coqa": "gtalign.reward._tasks:AMBIGUITY",
    },
    "benchmark": {
        "math-hard": "gtalign.benchmarks._specs:MATH_HARD",
        "medium": "gtalign.benchmarks._specs:MEDIUM",
        "wildguard": "gtalign.benchmarks._specs:WILDGUARD",
        "ambig_qa": "gtalign.benchmarks._specs:AMBIG_QA",
        "minerva": "gtalign.benchmarks._specs:MINERVA",
        "abg-coqa": "gtalign.benchmarks._specs:ABG_COQA",
        "advbench": "gtalign.benchmarks._specs:ADVBENCH",
        "sample": "gtalign.benchmarks._specs:SAMPLE",
    },
    "pricing": {
        "llm_price_shift": "gtalign.game._pricing:llm_price_shift",
        "user_price_shift": "gtalign.game._pricing:user_price_shift",
        "none": "gtalign.steering._policy:identity",
        "research-llm-shift": "gtalign.steering._policy:research_llm_shift",
        "research-user-shift": "gtalign.steering._policy:research_user_shift",
        "affine": "gtalign.steering._policy:affine",
        "economic": "gtalign.steering._policy:economic",
        "api-pay-per-token": "gtalign.steering._policy:api_pay_per_token",
        "subscription": "gtalign.steering._policy:subscription",
        "team-plan-split": "gtalign.steering._policy:team_plan_split",
    },
    "game": {
        "prisoners-dilemma": "gtalign.envs._dilemma:PrisonersDilemma",
        "bargaining": "gtalign.envs._bargaining:Bargaining",
        "signaling": "gtalign.envs._signaling:Signaling",
        "spence": "gtalign.envs._signaling:spence",
        "beer-quiche": "gtalign.envs._signaling:beer_quiche",
    },
}


class RegistryError(LookupError):
    """An unknown name, or a dotted path that does not import."""


def _resolve(path: str) -> Any:
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise RegistryError(f"{path!r} is not a dotted path like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import {module_name!r} for {path!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise RegistryError(f"module {module_name!r} has no attribute {attribute!r}") from None


class Registry:
    """Names to objects (or factories), per kind."""

    def __init__(self, builtins: dict[Kind, dict[str, str]] | None = None) -> None:
        self._entries: dict[Kind, dict[str, Any]] = {k: dict((builtins or {}).get(k, {})) for k in KINDS}

    def register(self, kind: Kind, name: str, target: Any, *, replace: bool = False) -> None:
        """Add ``target`` (an object, a factory, or a dotted path string) under ``name``."""
        entries = self._kind(kind)
        if name in entries and not replace:
            raise RegistryError(f"{kind} {name!r} is already registered (pass replace=True to override)")
        entries[name] = target

    def unregister(self, kind: Kind, name: str) -> None:
        self._kind(kind).pop(name, None)

    def names(self, kind: Kind) -> list[str]:
        return sorted(self._kind(kind))

    def __contains__(self, item: tuple[Kind, str]) -> bool:
        kind, name = item
        return name in self._kind(kind)

    def get(self, kind: Kind, name: str, *, paths: bool = True) -> Any:
        """The object registered as ``name``, or the one a dotted path names. ``paths=False``
        looks among registered names only: for names read from data (a row's ``data_source``),
        which must never import a module."""
        entries = self._kind(kind)
        if name in entries:
            target = entries[name]
            if isinstance(target, str):  # resolve a dotted path once, then keep the object
                target = entries[name] = _resolve(target)
            return target
        if paths and (":" in name or ("." in name and not name.startswith("."))):
            return _resolve(name)
        hint = " (or a dotted path 'module:attribute')" if paths else f" (register others with REGISTRY.register({kind!r}, name, ...))"
        raise RegistryError(f"unknown {kind} {name!r}; valid: {', '.join(self.names(kind))}{hint}")

    def create(self, kind: Kind, name: str, /, **params: Any) -> Any:
        """``get`` then call it with ``params`` when it is a factory."""
        target = self.get(kind, name)
        if isinstance(target, Callable):  # type: ignore[arg-type]
            return target(**params)
        if params:
            raise RegistryError(f"{kind} {name!r} is an object, not a factory: it takes no parameters (got {sorted(params)})")
        return target

    def _kind(self, kind: Kind) -> dict[str, Any]:
        try:
            return self._entries[kind]
        except KeyError:
            raise RegistryError(f"unknown registry kind {kind!r}; valid: {', '.join(KINDS)}") from None


REGISTRY = Registry(_BUILTINS)
