"""Social-welfare rules: how a (user, LLM) payoff pair is aggregated into one number.

One `WelfareRule` object is used wherever a decision is made (prompt rule, steering, robust reward),
so a run never mixes, say, the prompt's sum with the inference code's product without saying so.

Products only make sense on positive values. Rules that multiply (`cobb_douglas`, `nash`) measure
payoffs from an origin: ``"shift"`` (default) moves every payoff of the matrix by the same amount so
that the smallest payoff is 0 when any payoff is <= 0 (a positive matrix is left as it is, so
``sqrt(U*L)`` on the paper's positive utilities is unchanged); ``"clip"`` maps negatives to 0;
``"raw"`` multiplies the numbers as given (the research inference code: two costs multiply to a
gain, so it is available only by name, as ``product``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gtalign.game._payoff import Payoff, PayoffError, PayoffMatrix

__all__ = [
    "WELFARE_RULES",
    "WelfareRule",
    "cobb_douglas",
    "egalitarian",
    "linear",
    "nash",
    "product",
    "sum_rule",
    "welfare_rule",
]

Kind = Literal["sum", "product", "cobb_douglas", "nash", "egalitarian", "linear"]
Origin = Literal["shift", "clip", "raw"]


@dataclass(frozen=True, slots=True)
class WelfareRule:
    """A named welfare function ``W(user, LLM)`` with a deterministic ranking.

    Cells are ranked by welfare, then by the user's payoff, then the LLM's (the paper prompt's
    tie-break), then by the space's cell order.
    """

    kind: Kind
    weight: float = 0.5
    origin: Origin = "shift"
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("sum", "product", "cobb_douglas", "nash", "egalitarian", "linear"):
            raise PayoffError(f"unknown welfare kind {self.kind!r}")
        if not 0.0 <= self.weight <= 1.0:
            raise PayoffError(f"welfare weight must be in [0, 1], got {self.weight}")
        if self.origin not in ("shift", "clip", "raw"):
            raise PayoffError(f"unknown origin {self.origin!r}; valid: shift, clip, raw")
        if not self.name:
            object.__setattr__(self, "name", self.kind)

    def value(self, user: float, llm: float) -> float:
        """Welfare of one pair, taken as given (no matrix-wide origin shift)."""
        return self._combine(user, llm)

    def values(self, matrix: PayoffMatrix) -> tuple[float, ...]:
        """Welfare of every cell of ``matrix``, in cell order, with the rule's origin applied."""
        cells = matrix.cells
        if self.kind == "nash":
            du = min(c.user for c in cells)
            dl = min(c.llm for c in cells)
            return tuple(self._combine(c.user - du, c.llm - dl) for c in cells)
        if self.kind == "cobb_douglas":
            if self.origin == "shift":
                low = matrix.minimum()
                offset = -low if low <= 0 else 0.0
                return tuple(self._combine(c.user + offset, c.llm + offset) for c in cells)
            if self.origin == "clip":
                return tuple(self._combine(max(c.user, 0.0), max(c.llm, 0.0)) for c in cells)
        return tuple(self._combine(c.user, c.llm) for c in cells)

    def _combine(self, user: float, llm: float) -> float:
        kind = self.kind
        if kind == "sum":
            return user + llm
        if kind == "product":
            return user * llm
        if kind == "linear":
            return self.weight * user + (1.0 - self.weight) * llm
        if kind == "egalitarian":
            return min(user, llm)
        if kind == "nash":
            return max(user, 0.0) * max(llm, 0.0)
        if user < 0 or llm < 0:
            return math.nan if self.origin == "raw" else 0.0
        return user ** self.weight * llm ** (1.0 - self.weight)

    def sort_key(self, welfare: float, cell: Payoff) -> tuple[float, float, float]:
        return (welfare, cell.user, cell.llm)


def sum_rule() -> WelfareRule:
    """The prompt's rule: largest ``LLM + user``; ties by user, then LLM."""
    return WelfareRule("sum", name="sum")


def product() -> WelfareRule:
    """The research inference code's rule: largest raw ``user * LLM`` (no origin shift)."""
    return WelfareRule("product", origin="raw", name="product")


def cobb_douglas(weight: float = 0.5, origin: Origin = "shift") -> WelfareRule:
    """``user**weight * LLM**(1-weight)``; weight 1/2 is the paper's ``sqrt(U*L)``."""
    name = "cobb_douglas" if weight == 0.5 and origin == "shift" else f"cobb_douglas(weight={weight},origin={origin})"
    return WelfareRule("cobb_douglas", weight=weight, origin=origin, name=name)


def nash() -> WelfareRule:
    """Nash bargaining product of gains over the disagreement point (each party's worst payoff)."""
    return WelfareRule("nash", name="nash")


def egalitarian() -> WelfareRule:
    """Rawlsian: the worse-off party's payoff."""
    return WelfareRule("egalitarian", name="egalitarian")


def linear(weight: float = 0.5) -> WelfareRule:
    """``weight*user + (1-weight)*LLM``."""
    return WelfareRule("linear", weight=weight, name="linear" if weight == 0.5 else f"linear(weight={weight})")


WELFARE_RULES = {
    "sum": sum_rule,
    "utilitarian": sum_rule,
    "product": product,
    "cobb_douglas": cobb_douglas,
    "nash": nash,
    "egalitarian": egalitarian,
    "linear": linear,
}


def welfare_rule(name: str | WelfareRule, **params: float | str) -> WelfareRule:
    """Look a rule up by name (``"cobb_douglas"``, ``"sum"``, ...), passing parameters through."""
    if isinstance(name, WelfareRule):
        return name
    try:
        factory = WELFARE_RULES[name]
    except KeyError:
        raise PayoffError(f"unknown welfare rule {name!r}; valid: {sorted(WELFARE_RULES)}") from None
    return factory(**params)  # type: ignore[operator]
