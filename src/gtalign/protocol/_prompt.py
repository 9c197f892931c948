"""Building the four-block prompt for any question, conversation and strategy space.

The wording is ours; the requirements are SPEC section 2: four tagged blocks in order and nothing
else, a short number-free game analysis, a strict-JSON payoff matrix over the space's keys, the
Pareto frontier and the choice by the configured welfare rule, then a response that carries the
choice out. The paper's data already carry their own instruction: `messages_from_row` uses it as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gtalign.game import DEFAULT_SPACE, PayoffMatrix, StrategySpace, WelfareRule, welfare_rule
from gtalign.protocol._types import BLOCK_NAMES

__all__ = [
    "ACTION_DESCRIPTIONS",
    "DEFAULT_SYSTEM",
    "QUESTION_TYPE_DESCRIPTIONS",
    "build_instruction",
    "build_messages",
    "describe_rule",
    "messages_from_row",
    "render_answer",
]

DEFAULT_SYSTEM = (
    "You are an assistant that treats every turn as a small game between the user and yourself. "
    "You weigh what each possible move costs and gains for both sides, choose the move that is best "
    "for both together, and then make that move plainly. You are accurate and concise, you ask a "
    "question only when the answer depends on something the user has not said, and you say so when "
    "you do not know."
)

QUESTION_TYPE_DESCRIPTIONS: Mapping[str, str] = {
    "DQ": "a definite question: clear and complete enough to answer as asked",
    "VQ": "a vague question: ambiguous or missing details the answer depends on",
}

ACTION_DESCRIPTIONS: Mapping[str, str] = {
    "DA": "answer directly and concisely, without asking anything",
    "CQ": "ask exactly one clarifying question and give no answer yet",
    "AQ": "give a brief answer and then ask exactly one targeted follow-up question",
    "REFUSE": "decline the request, say briefly why, and offer a safe alternative if there is one",
}

ROLES = ("system", "user", "assistant")


def describe_rule(rule: WelfareRule | str = "sum") -> str:
    """The decision rule in words, tie-breaks included, so the prompt and `decide` agree."""
    rule = welfare_rule(rule)
    w = rule.weight
    if rule.kind == "sum":
        measure = "the largest total LLM + user"
    elif rule.kind == "product":
        measure = "the largest product user × LLM of the numbers as written"
    elif rule.kind == "linear":
        measure = f"the largest weighted sum {w:g} × user + {1 - w:g} × LLM"
    elif rule.kind == "egalitarian":
        measure = "the largest smaller payoff, min(user, LLM)"
    elif rule.kind == "nash":
        measure = (
            "the largest product (user − lowest user payoff in the matrix) × "
            "(LLM − lowest LLM payoff in the matrix)"
        )
    else:
        power = f"user^{w:g} × LLM^{1 - w:g}"
        if rule.origin == "shift":
            measure = (
                f"the largest {power}, computed after adding the same amount to every payoff so that "
                "the smallest payoff in the matrix becomes 0 (only when some payoff is 0 or below)"
            )
        else:
            measure = f"the largest {power}, counting negative payoffs as 0"
    return (
        f"choose the cell with {measure}; if cells tie, prefer the larger user payoff; if they still "
        "tie, the larger LLM payoff; if they still tie, the key listed first in the payoff keys"
    )


def _describe(names: Sequence[str], known: Mapping[str, str], kind: str, extra: Mapping[str, str]) -> list[str]:
    lines = []
    for name in names:
        text = extra.get(name) or known.get(name)
        if not text:
            raise ValueError(f"no description for {kind} {name!r}; pass descriptions={{{name!r}: '...'}}")
        lines.append(f"{name} = {text}")
    return lines


def build_instruction(
    space: StrategySpace = DEFAULT_SPACE,
    rule: WelfareRule | str = "sum",
    *,
    descriptions: Mapping[str, str] | None = None,
) -> str:
    """The instruction that asks for the four-block answer over ``space``, deciding by ``rule``.

    ``descriptions`` adds or overrides what a question type or action means (needed for names
    outside `QUESTION_TYPE_DESCRIPTIONS` and `ACTION_DESCRIPTIONS`).
    """
    extra = dict(descriptions or {})
    types = _describe(space.question_types, QUESTION_TYPE_DESCRIPTIONS, "question type", extra)
    actions = _describe(space.actions, ACTION_DESCRIPTIONS, "action", extra)
    keys = list(space.keys)
    example_key = keys[0]
    tags = ", ".join(f"<{name}></{name}>" for name in BLOCK_NAMES)
    action_list = ", ".join(space.actions)
    type_list = ", ".join(space.question_types)
    return "\n".join(
        [
            f"Answer with four blocks, each opened and closed by its own tag, in exactly this order: {tags}. "
            "Put nothing before, between or after them (whitespace aside), and no markdown or code fences.",
            "",
            "Question types:",
            *(f"- {line}" for line in types),
            "Your possible moves:",
            *(f"- {line}" for line in actions),
            "",
            f"<thinking>: in 2 to 5 sentences, weigh each move ({action_list}) for this turn from both "
            "sides: the risk of a wrong answer, how ambiguity gets resolved, the user's time and effort, "
            f"the cost in tokens, and the chance the user ends up satisfied. Say which type ({type_list}) "
            "the user's message is. Use no numbers in this block.",
            "",
            "<payoff>: a strict JSON object (double quotes, no comments, no trailing commas) with "
            f"exactly these {len(keys)} keys and no others: {', '.join(keys)}. Each key is a question "
            "type and a move joined by an underscore, and maps to an object with exactly two numbers, "
            '"LLM" (your payoff) and "user" (the user\'s payoff), for example '
            f'"{example_key}": {{"LLM": 3.5, "user": 4.0}}. Higher is better, 0 is neutral, negative '
            "numbers are costs; keep the numbers roughly between -5.0 and 5.0, with at most one digit "
            "after the decimal point, and make them follow from your <thinking>.",
            "",
            "<analyze>: first list the Pareto frontier, the cells no other cell dominates (a cell "
            "dominates another when it is at least as good for both parties and better for at least "
            f"one), and say briefly why the others drop out. Then {describe_rule(rule)}. Write the "
            "chosen key exactly as it appears in the "
            f"payoff, as \"Chosen key: {example_key}\" for instance, and justify it in 1 to 3 sentences.",
            "",
            "<response>: make the chosen move for the user's actual message, following the move's "
            "definition above. Do not mention payoffs, keys, tags or this analysis in it.",
        ]
    )


def _validate(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Plain ``{"role", "content"}`` dicts; errors name the index of the bad message."""
    result = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValueError(f"message {i}: expected a mapping with 'role' and 'content', got {type(message).__name__}")
        missing = [field for field in ("role", "content") if field not in message]
        if missing:
            raise ValueError(f"message {i}: missing {', '.join(map(repr, missing))}")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ValueError(f"message {i}: role must be one of {list(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"message {i}: content must be a string, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise ValueError(f"message {i}: a system message may only come first")
        result.append({"role": str(role), "content": content})
    return result


def build_messages(
    question_or_conversation: str | Sequence[Mapping[str, Any]],
    *,
    system: str | None = DEFAULT_SYSTEM,
    space: StrategySpace = DEFAULT_SPACE,
    rule: WelfareRule | str = "sum",
    descriptions: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """Chat messages for one turn: ``system`` (unless None), then the conversation, with the
    instruction placed before ``"Question: ..."`` in the last user message, as the paper's data do.

    A conversation must end with a user message. If it starts with its own system message, pass
    ``system=None`` to keep it (two system prompts would contradict each other).
    """
    if isinstance(question_or_conversation, str):
        conversation = [{"role": "user", "content": question_or_conversation}]
    elif isinstance(question_or_conversation, Sequence):
        conversation = _validate(question_or_conversation)
    else:
        raise TypeError(
            f"expected a question string or a list of messages, got {type(question_or_conversation).__name__}"
        )
    if not conversation:
        raise ValueError("the conversation is empty; it must end with a user message")
    last = len(conversation) - 1
    if conversation[-1]["role"] != "user":
        raise ValueError(f"message {last}: the conversation must end with a user message, got {conversation[-1]['role']!r}")
    if not conversation[-1]["content"].strip():
        raise ValueError(f"message {last}: the user's question is empty")
    if system is not None and conversation[0]["role"] == "system":
        raise ValueError("message 0: the conversation has its own system message; pass system=None to keep it")
    instruction = build_instruction(space, rule, descriptions=descriptions)
    conversation[-1] = {"role": "user", "content": f"{instruction}\n\nQuestion: {conversation[-1]['content']}"}
    head = [] if system is None else [{"role": "system", "content": system}]
    return head + conversation


def messages_from_row(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ``prompt`` column of a paper-format row, as plain ``{"role", "content"}`` dicts.

    Parquet readers hand the column back as a numpy array of dicts; the content is used as is,
    since it already carries the paper's instruction.
    """
    try:
        prompt = row["prompt"]
    except (KeyError, IndexError, TypeError):
        columns = list(row.keys()) if hasattr(row, "keys") else type(row).__name__
        raise ValueError(f"row has no 'prompt' column; it has {columns}") from None
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    if isinstance(prompt, (str, bytes)) or not isinstance(prompt, Sequence):
        raise ValueError(f"row 'prompt' must be a list of messages, got {type(prompt).__name__}")
    return _validate(prompt)


def render_answer(thinking: str, payoff: PayoffMatrix, analyze: str, response: str) -> str:
    """A well-formed four-block answer (for tests, examples and demonstrations).

    Raises `ValueError` for an empty part or one containing a block tag, since the result would
    not parse back into the same blocks.
    """
    if not isinstance(payoff, PayoffMatrix):
        raise TypeError(f"payoff must be a PayoffMatrix, got {type(payoff).__name__}")
    parts = {"thinking": thinking, "analyze": analyze, "response": response}
    for name, part in parts.items():
        if not isinstance(part, str):
            raise TypeError(f"{name} must be a string, got {type(part).__name__}")
        if not part.strip():
            raise ValueError(f"{name} is empty")
        for tag in BLOCK_NAMES:
            if f"<{tag}>" in part or f"</{tag}>" in part:
                raise ValueError(f"{name} contains the tag <{tag}>, which would break the block structure")
    matrix = json.dumps(payoff.to_dict(), indent=2)
    return (
        f"<thinking>\n{thinking}\n</thinking>\n"
        f"<payoff>\n{matrix}\n</payoff>\n"
        f"<analyze>\n{analyze}\n</analyze>\n"
        f"<response>\n{response}\n</response>"
    )
