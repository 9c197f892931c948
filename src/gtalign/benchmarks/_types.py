"""What a benchmark is made of: rows with a stable id, the conversation to send, and the labels the
reward and the metrics need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from gtalign.reward._types import Sample, Verdict

__all__ = ["BenchmarkRow", "Domain", "PromptMode"]

Domain = Literal["in-domain", "out-of-domain", "custom"]
PromptMode = Literal["stored", "builder"]
"""``stored``: the row's own prompt as stored (the paper's data carries the four-block instruction
in it); ``builder``: the question rebuilt with gtalign's prompt builder (`gtalign.protocol`)."""


@dataclass(frozen=True, slots=True)
class BenchmarkRow:
    """One prompt of one benchmark.

    ``id`` is stable across runs and machines (``benchmark/index`` in the source order), so runs on
    the same prompts join on it. ``messages`` is what the model is sent (system + user turns).
    ``ground_truth``, ``data_source`` and ``extra_info`` are what the reward needs (SPEC section 3).
    ``label`` is the ground-truth class the metrics group by: ``ambiguous`` / ``clear`` for the
    ambiguity tasks, ``harmful`` / ``unharmful`` for the safety tasks (every advbench prompt is
    ``harmful``), ``""`` elsewhere.
    """

    id: str
    benchmark: str
    data_source: str
    messages: tuple[Mapping[str, str], ...]
    ground_truth: str
    label: str = ""
    extra_info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def question(self) -> str:
        """The last user turn (what a person asked)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message.get("content", "")
        return ""

    def to_sample(self, completion: str, verdict: Verdict | None = None) -> Sample:
        """The reward's input for one answer to this row (``verdict``: a judge verdict already
        known, so no judge is asked)."""
        return Sample(self.data_source, completion, self.ground_truth, self.extra_info, verdict)
