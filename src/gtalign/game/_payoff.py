"""Payoff matrices of one user-assistant turn: question types x assistant actions -> (user, LLM)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_SPACE", "Payoff", "PayoffError", "PayoffMatrix", "StrategySpace"]


class PayoffError(ValueError):
    """A payoff matrix could not be built; the message names the cell or key at fault (also in ``key``)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class StrategySpace:
    """The question types the user may pose and the actions the assistant may take.

    Cell keys are ``f"{question_type}_{action}"`` (the paper's ``DQ_DA`` style). Row-major order
    over ``question_types`` x ``actions`` is the canonical cell order, used for the final tie-break.

    >>> StrategySpace(actions=("DA", "CQ", "AQ", "REFUSE")).keys[-1]
    'VQ_REFUSE'
    """

    question_types: tuple[str, ...] = ("DQ", "VQ")
    actions: tuple[str, ...] = ("DA", "CQ", "AQ")

    def __post_init__(self) -> None:
        for attr, kind in (("question_types", "question type"), ("actions", "action")):
            names = getattr(self, attr)
            if isinstance(names, str) or not isinstance(names, Sequence):
                raise PayoffError(f"{attr} must be a sequence of names, got {names!r}")
            names = tuple(names)
            object.__setattr__(self, attr, names)
            if not names:
                raise PayoffError(f"a strategy space needs at least one {kind}")
            if len(set(names)) != len(names):
                raise PayoffError(f"duplicate {kind} in {names!r}")
            for name in names:
                if not isinstance(name, str) or "_" in name or not name.isidentifier():
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
        question_type, sep, action = key.partition("_") if isinstance(key, str) else ("", "", "")
        if not sep or question_type not in self.question_types or action not in self.actions:
            raise PayoffError(f"unknown cell {key!r}; valid: {list(self.keys)}", key=str(key))
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
    """A finite real as a float; booleans are refused because JSON ``true`` is not a payoff."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PayoffError(f"{where} must be a number, got {type(value).__name__} {value!r}", key=key)
    number = float(value)
    if not math.isfinite(number):
        raise PayoffError(f"{where} must be finite, got {value!r}", key=key)
    return number


@dataclass(frozen=True, slots=True)
class PayoffMatrix:
    """An immutable, validated payoff matrix over a `StrategySpace`.

    Build it with `from_dict` (the paper's JSON shape) or `from_arrays`; cells are stored in the
    space's canonical order, as plain floats, so equal matrices compare and hash equal.

    >>> m = PayoffMatrix.from_arrays(user=[[3, 1, 2], [1, 2, 2]], llm=[[2, 1, 2], [1, 2, 1]])
    >>> m["DQ_DA"]
    Payoff(user=3.0, llm=2.0)
    >>> print(m)
    user / LLM  DA     CQ     AQ
    DQ          3 / 2  1 / 1  2 / 2
    VQ          1 / 1  2 / 2  2 / 1
    """

    cells: tuple[Payoff, ...]
    space: StrategySpace = field(default=DEFAULT_SPACE)

    def __post_init__(self) -> None:
        if not isinstance(self.space, StrategySpace):
            raise PayoffError(f"space must be a StrategySpace, got {type(self.space).__name__}")
        keys = self.space.keys
        cells = tuple(self.cells)
        if len(cells) != len(keys):
            raise PayoffError(f"expected {len(keys)} cells ({', '.join(keys)}), got {len(cells)}")
        checked = []
        for key, cell in zip(keys, cells):
            if not isinstance(cell, Payoff):
                raise PayoffError(f"cell {key} must be a Payoff, got {type(cell).__name__}", key=key)
            checked.append(Payoff(_number(cell.user, f"{key}.user", key), _number(cell.llm, f"{key}.LLM", key)))
        object.__setattr__(self, "cells", tuple(checked))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], space: StrategySpace = DEFAULT_SPACE) -> PayoffMatrix:
        """From ``{"DQ_DA": {"LLM": 3.1, "user": 2.0}, ...}``: exactly the space's keys, each with
        exactly ``LLM`` and ``user``, finite numbers (booleans refused). Key order does not matter."""
        if not isinstance(data, Mapping):
            raise PayoffError(f"payoff must be an object, got {type(data).__name__}")
        keys = space.keys
        missing = [k for k in keys if k not in data]
        extra = sorted(k if isinstance(k, str) else repr(k) for k in data if k not in keys)
        if missing or extra:
            parts = [f"missing {missing}"] if missing else []
            parts += [f"unexpected {extra}"] if extra else []
            raise PayoffError("payoff keys mismatch: " + "; ".join(parts), key=(missing or extra)[0])
        cells = []
        for key in keys:
            value = data[key]
            if not isinstance(value, Mapping):
                raise PayoffError(f"{key} must be an object with LLM and user, got {type(value).__name__}", key=key)
            if set(value) != {"LLM", "user"}:
                raise PayoffError(
                    f"{key} must have exactly the keys LLM and user, got {sorted(map(str, value))}", key=key
                )
            cells.append(Payoff(_number(value["user"], f"{key}.user", key), _number(value["LLM"], f"{key}.LLM", key)))
        return cls(tuple(cells), space)

    @classmethod
    def from_arrays(
        cls,
        user: Sequence[Sequence[float]],
        llm: Sequence[Sequence[float]],
        space: StrategySpace = DEFAULT_SPACE,
    ) -> PayoffMatrix:
        """From two arrays shaped ``question_types x actions`` (rows = question types); numpy works."""
        rows, cols = len(space.question_types), len(space.actions)
        for name, array in (("user", user), ("llm", llm)):
            try:
                ok = len(array) == rows and all(len(row) == cols for row in array)
            except TypeError:
                ok = False
            if not ok:
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

    def __contains__(self, key: object) -> bool:
        return key in self.space.keys

    def __iter__(self) -> Iterator[str]:
        return iter(self.space.keys)

    def __len__(self) -> int:
        return len(self.cells)

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

    def table(self) -> str:
        """A fixed-width ``user / LLM`` grid, rows = question types, for logs and error reports."""
        grid = [["user / LLM", *self.space.actions]]
        n = len(self.space.actions)
        for i, question_type in enumerate(self.space.question_types):
            row = self.cells[i * n:(i + 1) * n]
            grid.append([question_type, *(f"{c.user:g} / {c.llm:g}" for c in row)])
        widths = [max(len(line[j]) for line in grid) for j in range(len(grid[0]))]
        return "\n".join("  ".join(t.ljust(w) for t, w in zip(line, widths)).rstrip() for line in grid)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        space = "" if self.space == DEFAULT_SPACE else f", space={self.space!r}"
        return f"PayoffMatrix.from_dict({self.to_dict()!r}{space})"
