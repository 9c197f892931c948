"""Pricing transforms: how a change of the service's price moves the payoff matrix.

A transform is affine per (party, action): ``payoff' = scale * payoff + offset``, optionally rounded.
The research code's two shifts (SPEC section 4) are presets built on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gtalign.game._payoff import Payoff, PayoffError, PayoffMatrix

__all__ = ["AffineTransform", "llm_price_shift", "user_price_shift"]


def _frozen(mapping: Mapping[str, float] | None) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class AffineTransform:
    """``user' = user_scale[a]*user + user_offset[a]`` and the same for the LLM, per action ``a``.

    Actions missing from a mapping keep scale 1 and offset 0. ``decimals`` rounds the result
    (the research code rounds to one decimal).
    """

    user_offset: Mapping[str, float] = field(default_factory=dict)
    llm_offset: Mapping[str, float] = field(default_factory=dict)
    user_scale: Mapping[str, float] = field(default_factory=dict)
    llm_scale: Mapping[str, float] = field(default_factory=dict)
    decimals: int | None = None
    name: str = "affine"

    def __post_init__(self) -> None:
        for attr in ("user_offset", "llm_offset", "user_scale", "llm_scale"):
            object.__setattr__(self, attr, _frozen(getattr(self, attr)))

    def apply(self, matrix: PayoffMatrix) -> PayoffMatrix:
        actions = set(matrix.space.actions)
        for attr in ("user_offset", "llm_offset", "user_scale", "llm_scale"):
            unknown = set(getattr(self, attr)) - actions
            if unknown:
                raise PayoffError(f"{self.name}: {attr} names unknown actions {sorted(unknown)}; valid: {sorted(actions)}")
        cells = []
        for key, cell in matrix.items():
            _, action = matrix.space.split(key)
            user = self.user_scale.get(action, 1.0) * cell.user + self.user_offset.get(action, 0.0)
            llm = self.llm_scale.get(action, 1.0) * cell.llm + self.llm_offset.get(action, 0.0)
            if self.decimals is not None:
                user, llm = round(user, self.decimals), round(llm, self.decimals)
            cells.append(Payoff(user=user, llm=llm))
        return PayoffMatrix(tuple(cells), matrix.space)


def llm_price_shift(s: float) -> AffineTransform:
    """Research code, LLM-side price change by ``s``: every LLM payoff ``+s``; the user gains
    ``+1`` for AQ, ``+0.5`` for CQ, ``+0`` for DA. Rounded to one decimal."""
    return AffineTransform(
        llm_offset={"DA": s, "CQ": s, "AQ": s},
        user_offset={"AQ": 1.0, "CQ": 0.5, "DA": 0.0},
        decimals=1,
        name=f"llm_price_shift({s})",
    )


def user_price_shift(s: float) -> AffineTransform:
    """Research code, user-side price change by ``s``: every user payoff ``+s``; the LLM gains
    ``+1`` for DA, ``+0.5`` for AQ, ``+0`` for CQ. Rounded to one decimal."""
    return AffineTransform(
        user_offset={"DA": s, "CQ": s, "AQ": s},
        llm_offset={"DA": 1.0, "AQ": 0.5, "CQ": 0.0},
        decimals=1,
        name=f"user_price_shift({s})",
    )
