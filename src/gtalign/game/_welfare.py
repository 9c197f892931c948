"""Social-welfare rules: how a (user, LLM) payoff pair is aggregated into one number.

One `WelfareRule` object is used wherever a decision is made (prompt rule, steering, robust reward),
so a run never mixes, say, the prompt's sum with the inference code's product without saying so.
Names are looked up in `gtalign._registry.REGISTRY` (kind ``"welfare"``), the one list of names.

Products only make sense on non-negative values, so each multiplicative rule says where it measures
payoffs from:

* ``cobb_douglas`` takes an ``origin``. ``"shift"`` (default) moves every payoff of the matrix by the
  same amount so that the smallest payoff becomes 0 when any payoff is <= 0; a positive matrix is
  left as it is, so the paper's ``sqrt(U*L)`` on positive utilities is unchanged. ``"clip"`` counts
  negative payoffs as 0. Either way a cell whose (moved) payoff is 0 for a party has welfare 0.
* ``nash`` measures gains from the disagreement point: each party's worst payoff in the matrix.
* ``product`` multiplies the numbers as given, as the research inference code does: two costs then
  multiply to a gain (``-3 * -4 = 12`` beats ``2 * 4 = 8``), so it is not a default anywhere.

`WelfareRule.value` scores one pair without a matrix: there negatives count as 0 for the two
origin-aware rules (``cobb_douglas``, ``nash``).

>>> m = PayoffMatrix.from_arrays(user=[[2, -1, 3], [-3, 1, 0]], llm=[[4, 3, 1], [-4, 1, 2]])
>>> welfare_rule("sum").values(m)
(6.0, 2.0, 4.0, -7.0, 2.0, 2.0)
>>> welfare_rule("product").values(m)[3]
12.0
>>> welfare_rule("cobb_douglas").values(m)[3]
0.0
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Literal

from gtalign._registry import REGISTRY
from gtalign.game._payoff import Payoff, PayoffError, PayoffMatrix

__all__ = [
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
Origin = Literal["shift", "clip"]
_KINDS: tuple[str, ...] = ("sum", "product", "cobb_douglas", "nash", "egalitarian", "linear")
_WEIGHTED: tuple[str, ...] = ("cobb_douglas", "linear")


@dataclass(frozen=True, slots=True)
class WelfareRule:
    """A welfare function ``W(user, LLM)`` with a deterministic ranking.

    Cells are ranked by welfare, then by the user's payoff, then the LLM's (the paper prompt's
    tie-break), then by the space's cell order. ``weight`` is the user's weight (``cobb_douglas``
    and ``linear`` only); ``origin`` applies to ``cobb_douglas`` only. ``name`` is a label and
    does not take part in equality.
    """

    kind: Kind
    weight: float = 0.5
    origin: Origin | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise PayoffError(f"unknown welfare kind {self.kind!r}; valid: {', '.join(_KINDS)}")
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not 0.0 <= weight <= 1.0:
            raise PayoffError(f"welfare weight must be a number in [0, 1], got {weight!r}")
        if self.kind not in _WEIGHTED and weight != 0.5:
            raise PayoffError(f"welfare rule {self.kind!r} takes no weight (only {', '.join(_WEIGHTED)} do)")
        object.__setattr__(self, "weight", float(weight))
        if self.kind == "cobb_douglas":
            origin = "shift" if self.origin is None else self.origin
            if origin not in ("shift", "clip"):
                raise PayoffError(
                    f"cobb_douglas origin must be 'shift' or 'clip', got {origin!r} "
                    "(the raw product of signed payoffs is the rule 'product')"
                )
            object.__setattr__(self, "origin", origin)
        elif self.origin is not None:
            raise PayoffError(f"origin applies to cobb_douglas only, not to {self.kind!r}")
        if not self.name:
            object.__setattr__(self, "name", self.kind)

    def value(self, user: float, llm: float) -> float:
        """Welfare of one pair, taken as given (no matrix-wide origin; negatives count as 0 in products)."""
        return self._combine(user, llm)

    def values(self, matrix: PayoffMatrix) -> tuple[float, ...]:
        """Welfare of every cell of ``matrix``, in cell order, with the rule's origin applied."""
        cells = matrix.cells
        if self.kind == "nash":
            du = min(c.user for c in cells)
            dl = min(c.llm for c in cells)
            pairs = [(c.user - du, c.llm - dl) for c in cells]
        elif self.kind == "cobb_douglas" and self.origin == "shift":
            offset = max(0.0, -matrix.minimum())
            pairs = [(c.user + offset, c.llm + offset) for c in cells]
        else:
            pairs = [(c.user, c.llm) for c in cells]
        out = tuple(self._combine(u, l_) for u, l_ in pairs)
        for key, welfare in zip(matrix.keys, out):
            if math.isnan(welfare):
                raise PayoffError(f"{self.name} welfare of {key} is undefined (payoffs too large?)", key=key)
        return out

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
        user, llm = max(user, 0.0), max(llm, 0.0)
        if kind == "nash":
            return user * llm
        if self.weight == 0.5:
            return math.sqrt(user * llm)
        return user**self.weight * llm ** (1.0 - self.weight)

    def sort_key(self, welfare: float, cell: Payoff) -> tuple[float, float, float]:
        """Welfare, then user, then LLM: larger is better (cell order is the caller's last resort)."""
        return (welfare, cell.user, cell.llm)


def sum_rule() -> WelfareRule:
    """The prompt's rule: largest ``LLM + user``; ties by user, then LLM."""
    return WelfareRule("sum", name="sum")


def product() -> WelfareRule:
    """The research inference code's rule: largest raw ``user * LLM`` (no origin, see module doc)."""
    return WelfareRule("product", name="product")


def cobb_douglas(weight: float = 0.5, origin: Origin = "shift") -> WelfareRule:
    """``user**weight * LLM**(1-weight)``; weight 1/2 is the paper's ``sqrt(U*L)``, computed as such."""
    default = weight == 0.5 and origin == "shift"
    name = "cobb_douglas" if default else f"cobb_douglas(weight={weight:g}, origin={origin})"
    return WelfareRule("cobb_douglas", weight=weight, origin=origin, name=name)


def nash() -> WelfareRule:
    """Nash bargaining product of gains over the disagreement point (each party's worst payoff)."""
    return WelfareRule("nash", name="nash")


def egalitarian() -> WelfareRule:
    """Rawlsian: the worse-off party's payoff."""
    return WelfareRule("egalitarian", name="egalitarian")


def linear(weight: float = 0.5) -> WelfareRule:
    """``weight*user + (1-weight)*LLM``."""
    return WelfareRule("linear", weight=weight, name="linear" if weight == 0.5 else f"linear(weight={weight:g})")


def welfare_rule(name: str | WelfareRule, **params: float | str) -> WelfareRule:
    """The rule registered as ``name`` (``"cobb_douglas"``, ``"sum"``, ... or a dotted path), built
    with ``params``; a `WelfareRule` passes through. An unknown name raises the registry's
    `RegistryError`, which lists the valid names."""
    if isinstance(name, WelfareRule):
        if params:
            raise PayoffError(f"parameters {sorted(params)} given with a ready WelfareRule {name.name!r}")
        return name
    try:
        rule = REGISTRY.create("welfare", name, **params)
    except TypeError as exc:
        raise PayoffError(f"welfare rule {name!r} does not accept {sorted(params)}: {exc}") from exc
    if not isinstance(rule, WelfareRule):
        raise PayoffError(f"welfare rule {name!r} gave a {type(rule).__name__}, not a WelfareRule")
    return rule
