"""Typed results of parsing a four-block answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gtalign.game import PayoffMatrix

__all__ = ["BLOCK_NAMES", "Block", "BlockName", "ParsedAnswer", "Problem", "ProblemCode"]

BlockName = Literal["thinking", "payoff", "analyze", "response"]
BLOCK_NAMES: tuple[BlockName, ...] = ("thinking", "payoff", "analyze", "response")

ProblemCode = Literal[
    "missing_block",
    "duplicate_block",
    "out_of_order",
    "unclosed_block",
    "stray_tag",
    "text_outside_blocks",
    "empty_block",
    "payoff_json",
    "payoff_too_deep",
    "payoff_keys",
    "payoff_value",
    "payoff_not_finite",
    "no_chosen_key",
    "ambiguous_chosen_key",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an answer, with where it is (character offset into the text)."""

    code: ProblemCode
    message: str
    position: int | None = None
    block: BlockName | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f" at {self.position}" if self.position is not None else ""
        return f"{self.code}{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Block:
    """One tagged block: its stripped content and the span of the whole ``<tag>...</tag>``."""

    name: BlockName
    content: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """The structured parse of one completion.

    ``blocks`` holds the first complete occurrence of each block; ``payoff`` is the validated
    matrix or None; ``chosen_key`` is the single cell key named in ``<analyze>`` as the choice
    (None when absent or ambiguous); ``problems`` lists everything found, in text order.
    """

    text: str
    blocks: Mapping[str, Block] = field(default_factory=lambda: MappingProxyType({}))
    payoff: PayoffMatrix | None = None
    chosen_key: str | None = None
    problems: tuple[Problem, ...] = ()

    def block(self, name: BlockName) -> str | None:
        found = self.blocks.get(name)
        return None if found is None else found.content

    @property
    def thinking(self) -> str | None:
        return self.block("thinking")

    @property
    def analyze(self) -> str | None:
        return self.block("analyze")

    @property
    def response(self) -> str | None:
        return self.block("response")

    @property
    def payoff_text(self) -> str | None:
        return self.block("payoff")

    @property
    def ok(self) -> bool:
        """True when the answer is exactly the four blocks in order with a valid matrix and a choice."""
        return not self.problems

    @property
    def well_formed(self) -> bool:
        """True when the four blocks are there, once each, in order, with nothing outside them."""
        structural = {"missing_block", "duplicate_block", "out_of_order", "unclosed_block", "stray_tag", "text_outside_blocks"}
        return not any(p.code in structural for p in self.problems)

    @property
    def question_type(self) -> str | None:
        return None if self.chosen_key is None else self.chosen_key.partition("_")[0]

    @property
    def action(self) -> str | None:
        return None if self.chosen_key is None else self.chosen_key.partition("_")[2]
