"""Tasks: what the judge is asked for each data source, and the labels it needs.

A `TaskSpec` turns a dataset row (ground truth and extra info) into a `JudgeRequest`. The data
sources of the paper map onto four tasks; users register their own data sources in the registry
(kind ``"task"``) with an existing or new spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gtalign.reward._types import JudgeRequest, Task

__all__ = ["ADVBENCH", "AMBIGUITY", "MATH", "SAFETY", "WRITING", "TaskSpec", "ambiguity_label", "last_user_message"]


def last_user_message(extra_info: Mapping[str, Any]) -> str:
    """The last user turn of ``extra_info["chat_history"]`` (a list or array of {role, content})."""
    history = extra_info.get("chat_history")
    if history is None:
        return ""
    try:
        turns: Sequence[Any] = list(history)
    except TypeError:
        return ""
    for turn in reversed(turns):
        if isinstance(turn, Mapping) and turn.get("role") == "user":
            return str(turn.get("content", ""))
    return ""


def ambiguity_label(ground_truth: str) -> tuple[str, str]:
    """``(label, reference)`` from ambig_qa's ``singleAnswer###a`` / ``multipleQAs###m`` or
    abg-coqa's ``ambiguous`` / ``non_ambiguous``; label is ``ambiguous``, ``clear`` or ``""``."""
    kind, sep, rest = ground_truth.partition("###")
    if sep:
        if kind == "multipleQAs":
            return "ambiguous", rest
        if kind == "singleAnswer":
            return "clear", rest
        return "", rest
    value = ground_truth.strip().lower()
    if value == "ambiguous":
        return "ambiguous", ""
    if value in ("non_ambiguous", "non-ambiguous", "clear", "unambiguous"):
        return "clear", ""
    return "", ""


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task: its judge rubric, the verdict values it allows, and how a row becomes a request.

    ``always_harmful`` marks AdvBench: every prompt is an attack, whatever the ground truth says.
    """

    task: Task
    allowed: tuple[float, ...]
    always_harmful: bool = False

    def question(self, extra_info: Mapping[str, Any]) -> str:
        single = extra_info.get("single_turn_prompt")
        return str(single) if single else last_user_message(extra_info)

    def label(self, ground_truth: str) -> str:
        if self.task == "safety":
            if self.always_harmful:
                return "harmful"
            value = ground_truth.strip().lower()
            return value if value in ("harmful", "unharmful") else ""
        if self.task == "ambiguity":
            return ambiguity_label(ground_truth)[0]
        return ""

    def request(self, response: str, ground_truth: str, extra_info: Mapping[str, Any], data_source: str) -> JudgeRequest:
        """The judge request for one response block."""
        reference = ground_truth
        if self.task == "ambiguity":
            reference = ambiguity_label(ground_truth)[1]
        elif self.task == "safety":
            reference = ""
        intent = str(extra_info.get("single_turn_prompt") or "") if self.task == "writing" else ""
        question = last_user_message(extra_info) if self.task == "writing" else self.question(extra_info)
        return JudgeRequest(
            task=self.task,
            response=response,
            reference=reference,
            label=self.label(ground_truth),
            question=question or intent,
            intent=intent,
            data_source=data_source,
        )

    def valid(self, value: float) -> bool:
        return value in self.allowed


MATH = TaskSpec("math", allowed=(0.0, 1.0))
WRITING = TaskSpec("writing", allowed=(0.0, 1.0, 2.0, 3.0, 4.0))
SAFETY = TaskSpec("safety", allowed=(0.0, 0.5, 1.0))
ADVBENCH = TaskSpec("safety", allowed=(0.0, 0.5, 1.0), always_harmful=True)
AMBIGUITY = TaskSpec("ambiguity", allowed=(0.0, 1.0))
