"""Payoff matrices of one user-assistant turn: question types x assistant actions -> (user, LLM)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_SPACE", "Payoff", "PayoffError", "PayoffMatrix", "StrategySpace"]


class PayoffError(ValueError):
    """A payoff matrix could not be built; the message names the cell or key at fault."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class StrategySpace:
    """The question types the user may pose and the actions the assistant may take.

    Cell keys are ``f"{question_type}_{action}"`` (the paper's ``DQ_DA`` style). Row-major order
    over ``question_types`` x ``actions`` is the canonical cell order, used for the final tie-break.
    """

    question_types: tuple[str, ...] = ("DQ", "VQ")
    actions: tuple[str, ...] = ("DA", "CQ", "AQ")

    def __post_init__(self) -> None:
        for kind, names in (("question type", self.question_types), ("action", self.actions)):
            if not names:
                raise PayoffError(f"a strategy space needs at least one {kind}")
            if len(set(names)) != len(names):
                raise PayoffError(f"duplicate {kind} in {names!r}")
            for name in names:
                if not name or "_" in name or not name.isidentifier():
                    raise PayoffError(f"{kind} {name!r} must be a non-empty identifier without '_'")

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f"{t}_{a}" for t in self.question_types for a in self.actions)

    def key(self, question_type: str, action: str) -> str:
        if question_type not in self.question_types:
            raise PayoffError(f"unknown question type {question_type!r}; valid: {list(self.question_types)}")
        if action not in self.actions:
            raise PayoffError(f"unknown action {action!r}; valid: {list(self.actions)}")
        return f"{question_type}_{action}"

    def split(self, key: str) -> tuple[str, str]:
        """``"DQ_DA"`` -> ``("DQ", "DA")``; raises `PayoffError` for a key outside the space."""
        question_type, sep, action = key.partition("_")
        if not sep or question_type not in self.question_types or action not in self.actions:
            raise PayoffError(f"unknown cell {key!r}; valid: {list(self.keys)}", key=key)
        return question_type, action

    def index(self, key: str) -> int:
        question_type, action = self.split(key)
        return self.question_types.index(question_type) * len(self.actions) + self.actions.index(action)


DEFAULT_SPACE = StrategySpace()


@dataclass(frozen=True, slots=True)
class Payoff:
    """One cell: what the user and the assistant (the "LLM") each get."""

    user: float
    llm: float


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayoffError(f"{where} must be a number, got {type(value).__name__} {value!r}", key=key)
    number = float(value)
    if not math.isfinite(number):
        raise PayoffError(f"{where} must be finite, got {value!r}", key=key)
    return number


@dataclass(frozen=True, slots=True)
class PayoffMatrix:
    """An immutable, validated payoff matrix over a `StrategySpace`.

    Build it with `from_dict` (the paper's JSON shape) or `from_arrays`; cells are stored in the
    space's canonical order.
    """

    cells: tuple[Payoff, ...]
    space: StrategySpace = field(default=DEFAULT_SPACE)

    def __post_init__(self) -> None:
        if len(self.cells) != len(self.space.keys):
            raise PayoffError(f"expected {len(self.space.keys)} cells, got {len(self.cells)}")
        for key, cell in zip(self.space.keys, self.cells):
            if not isinstance(cell, Payoff):
                raise PayoffError(f"cell {key} must be a Payoff, got {type(cell).__name__}", key=key)
            _number(cell.user, f"{key}.user", key)
            _number(cell.llm, f"{key}.LLM", key)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: StrategySpace = DEFAULT_SPACE) -> PayoffMatrix:
        """From ``{"DQ_DA": {"LLM": 3.1, "user": 2.0}, ...}``: exactly the space's keys, each with
        exactly ``LLM`` and ``user``, finite numbers (booleans refused)."""
        if not isinstance(data, Mapping):
            raise PayoffError(f"payoff must be an object, got {type(data).__name__}")
        expected = set(space.keys)
        given = set(data)
        if given != expected:
            parts = []
            if missing := sorted(expected - given):
                parts.append(f"missing {missing}")
            if extra := sorted(map(str, given - expected)):
                parts.append(f"unexpected {extra}")
            first = (sorted(expected - given) or sorted(map(str, given - expected)))[0]
            raise PayoffError("payoff keys mismatch: " + "; ".join(parts), key=first)
        cells = []
        for key in space.keys:
            value = data[key]
            if not isinstance(value, Mapping):
                raise PayoffError(f"{key} must be an object with LLM and user, got {type(value).__name__}", key=key)
            if set(value) != {"LLM", "user"}:
                raise PayoffError(f"{key} must have exactly the keys LLM and user, got {sorted(map(str, value))}", key=key)
            cells.append(Payoff(user=_number(value["user"], f"{key}.user", key), llm=_number(value["LLM"], f"{key}.LLM", key)))
        return cls(tuple(cells), space)

    @classmethod
    def from_arrays(
        cls,
        user: Sequence[Sequence[float]],
        llm: Sequence[Sequence[float]],
        space: StrategySpace = DEFAULT_SPACE,
    ) -> PayoffMatrix:
        """From two arrays shaped ``question_types x actions`` (rows = question types)."""
        rows, cols = len(space.question_types), len(space.actions)
        for name, array in (("user", user), ("llm", llm)):
            if len(array) != rows or any(len(row) != cols for row in array):
                raise PayoffError(f"{name} array must be {rows}x{cols} (question types x actions)")
        cells = []
        for i, t in enumerate(space.question_types):
            for j, a in enumerate(space.actions):
                key = f"{t}_{a}"
                cells.append(Payoff(_number(user[i][j], f"{key}.user", key), _number(llm[i][j], f"{key}.LLM", key)))
        return cls(tuple(cells), space)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """The paper's JSON shape, keys in the space's order."""
        return {k: {"LLM": c.llm, "user": c.user} for k, c in zip(self.space.keys, self.cells)}

    def user_array(self) -> list[list[float]]:
        n = len(self.space.actions)
        return [[c.user for c in self.cells[i * n:(i + 1) * n]] for i in range(len(self.space.question_types))]

    def llm_array(self) -> list[list[float]]:
        n = len(self.space.actions)
        return [[c.llm for c in self.cells[i * n:(i + 1) * n]] for i in range(len(self.space.question_types))]

    @property
    def keys(self) -> tuple[str, ...]:
        return self.space.keys

    def __getitem__(self, key: str | tuple[str, str]) -> Payoff:
        if isinstance(key, tuple):
            key = self.space.key(*key)
        return self.cells[self.space.index(key)]

    def items(self) -> Iterator[tuple[str, Payoff]]:
        return zip(self.space.keys, self.cells)

    def row(self, question_type: str) -> tuple[str, ...]:
        """The keys of one question type's row."""
        if question_type not in self.space.question_types:
            raise PayoffError(f"unknown question type {question_type!r}; valid: {list(self.space.question_types)}")
        return tuple(f"{question_type}_{a}" for a in self.space.actions)

    def replace(self, updates: Mapping[str, Payoff]) -> PayoffMatrix:
        cells = list(self.cells)
        for key, cell in updates.items():
            cells[self.space.index(key)] = cell
        return PayoffMatrix(tuple(cells), self.space)

    def minimum(self) -> float:
        return min(min(c.user, c.llm) for c in self.cells)
