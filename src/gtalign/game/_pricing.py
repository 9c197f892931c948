"""Pricing transforms: how a change of the service's price moves the payoff matrix.

A transform is affine per (party, action): ``payoff' = scale[a] * payoff + offset[a] + shift``,
optionally rounded. ``shift`` reaches every action, including ones the transform does not name
(e.g. a ``REFUSE`` action in a custom space). The research code's two shifts (SPEC section 4)
are presets built on it.

>>> m = PayoffMatrix.from_arrays(user=[[3, 1.5, 2.7], [1, 2.5, 2]], llm=[[3, 1, 2.5], [1, 2, 2]])
>>> llm_price_shift(1).apply(m)["DQ_AQ"]
Payoff(user=3.7, llm=3.5)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gtalign.game._payoff import Payoff, PayoffError, PayoffMatrix

__all__ = ["AffineTransform", "llm_price_shift", "user_price_shift"]

_MAPPINGS = ("user_offset", "llm_offset", "user_scale", "llm_scale")


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise PayoffError(f"{where} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class AffineTransform:
    """``user' = user_scale[a]*user + user_offset[a] + user_shift`` and the same for the LLM, per action ``a``.

    Actions missing from a mapping keep scale 1 and offset 0; naming an action the matrix's space
    does not have is an error (a typo would otherwise be silently ignored). ``decimals`` rounds the
    result (the research code rounds to one decimal).
    """

    user_offset: Mapping[str, float] = field(default_factory=dict)
    llm_offset: Mapping[str, float] = field(default_factory=dict)
    user_scale: Mapping[str, float] = field(default_factory=dict)
    llm_scale: Mapping[str, float] = field(default_factory=dict)
    user_shift: float = 0.0
    llm_shift: float = 0.0
    decimals: int | None = None
    name: str = "affine"

    def __post_init__(self) -> None:
        for attr in _MAPPINGS:
            given = getattr(self, attr)
            if not isinstance(given, Mapping):
                raise PayoffError(f"{self.name}: {attr} must map actions to numbers, got {type(given).__name__}")
            checked = {str(a): _finite(v, f"{self.name}: {attr}[{a!r}]") for a, v in given.items()}
            object.__setattr__(self, attr, MappingProxyType(checked))
        for attr in ("user_shift", "llm_shift"):
            object.__setattr__(self, attr, _finite(getattr(self, attr), f"{self.name}: {attr}"))
        decimals = self.decimals
        if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
            raise PayoffError(f"{self.name}: decimals must be None or an integer >= 0, got {decimals!r}")

    def __hash__(self) -> int:
        maps = tuple(frozenset(getattr(self, attr).items()) for attr in _MAPPINGS)
        return hash((maps, self.user_shift, self.llm_shift, self.decimals, self.name))

    def apply(self, matrix: PayoffMatrix) -> PayoffMatrix:
        """The transformed matrix, over the same space."""
        actions = set(matrix.space.actions)
        for attr in _MAPPINGS:
            unknown = set(getattr(self, attr)) - actions
            if unknown:
                raise PayoffError(
                    f"{self.name}: {attr} names unknown actions {sorted(unknown)}; valid: {list(matrix.space.actions)}"
                )
        cells = []
        for key, cell in matrix.items():
            _, action = matrix.space.split(key)
            user = self.user_scale.get(action, 1.0) * cell.user + self.user_offset.get(action, 0.0) + self.user_shift
            llm = self.llm_scale.get(action, 1.0) * cell.llm + self.llm_offset.get(action, 0.0) + self.llm_shift
            if self.decimals is not None:
                user, llm = round(user, self.decimals) + 0.0, round(llm, self.decimals) + 0.0
            cells.append(Payoff(user=user, llm=llm))
        return PayoffMatrix(tuple(cells), matrix.space)


def llm_price_shift(s: float) -> AffineTransform:
    """Research code, LLM-side price change by ``s``: every LLM payoff ``+s``; the user gains
    ``+1`` for AQ, ``+0.5`` for CQ, ``+0`` for DA. Rounded to one decimal."""
    s = _finite(s, "llm_price_shift: s")
    return AffineTransform(
        llm_shift=s,
        user_offset={"AQ": 1.0, "CQ": 0.5, "DA": 0.0},
        decimals=1,
        name=f"llm_price_shift({s:g})",
    )


def user_price_shift(s: float) -> AffineTransform:
    """Research code, user-side price change by ``s``: every user payoff ``+s``; the LLM gains
    ``+1`` for DA, ``+0.5`` for AQ, ``+0`` for CQ. Rounded to one decimal."""
    s = _finite(s, "user_price_shift: s")
    return AffineTransform(
        user_shift=s,
        llm_offset={"DA": 1.0, "AQ": 0.5, "CQ": 0.0},
        decimals=1,
        name=f"user_price_shift({s:g})",
    )
