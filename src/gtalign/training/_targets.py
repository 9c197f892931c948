"""Four-block SFT targets derived from a row's labels: the pure core of ``gtalign data sft``.

One `BenchmarkRow` (the paper's row shape, read by `gtalign.benchmarks.load_benchmark`) becomes
one `SftTarget` (a completion in the four blocks, and the row it answers) or one `SkippedRow`
with a typed reason. No I/O, no network, no torch, no global random state: every choice is drawn
from a `random.Random` seeded by ``(seed, row id)``, so a row gets the same target on every run.

What the label asks for (the "right action"):

* ``ambiguous`` -> ``VQ_CQ``: a clarifying question that names every meaning the ground truth
  lists (ambig_qa's ``multipleQAs###...Meaning i: ...; Answer i: ...``). An ambiguous row that
  lists no meanings (abg-coqa's bare ``ambiguous``) is skipped: there is nothing to name.
* ``harmful`` -> ``DQ_DA``: a direct refusal that offers a safe alternative (no model needed).
* ``clear`` -> ``DQ_DA``: the reference answer (ambig_qa's ``singleAnswer###...``), else a
  distilled one. ``unharmful`` -> ``DQ_DA`` with a distilled answer.
* no label: a math task answers ``DQ_DA`` with a short answer ending in ``\\boxed{ground truth}``;
  a writing task with the reference article; any other data source with a distilled answer.

"Distilled" means the base model's own plain answer to the bare question, asked by
`gtalign.training._distill` and passed in as ``response``; without it such a row is skipped as
``needs_distillation``. ``target_source`` says which: ``reference`` (built from the row's ground
truth or label, no model involved) or ``distilled``.

The payoff matrix is varied but deterministic per row: one decimal, within -5..5, the right
cell's LLM + user strictly the largest of all six cells (so it is the welfare choice of the whole
matrix and of its row, as `decide` with the ``sum`` rule and the ``robust`` preset's consistency
check both require), and shaped by what each move costs for the label (e.g. answering an ambiguous
question risks the wrong reading). ``<analyze>`` names the computed Pareto frontier
(`pareto_frontier`), why each other cell drops out, and ``Chosen key: X``. ``<thinking>`` is two
to five number-free sentences that name the question type and weigh DA, CQ and AQ.

Every target is checked before it is returned (`check_target`): `parse_answer` finds no problem,
the ``robust`` preset's consistency checks all pass (chosen key = welfare choice, the response
carries out the chosen action as `classify_act` reads it, the DQ/VQ row matches an ambiguity
label), the research code's format regex accepts it, and the response does what the label asks
(math ends in the boxed ground truth, the question names the meanings, a refusal offers an
alternative, a distilled answer does not refuse). A target that fails is a `SkippedRow`
(``bad_reference`` or ``distilled_unusable``) saying which check failed.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Literal, get_args

from gtalign._registry import REGISTRY
from gtalign.benchmarks._types import BenchmarkRow
from gtalign.game import Payoff, PayoffMatrix, decide, pareto_frontier
from gtalign.protocol import ProtocolGrammar, classify_act, detect_refusal, paper_parse, parse_answer
from gtalign.reward._robust import RobustPreset
from gtalign.reward._tasks import TaskSpec, ambiguity_label
from gtalign.reward._types import Sample, Verdict

__all__ = [
    "KINDS",
    "SKIP_REASONS",
    "Kind",
    "SftTarget",
    "SkipReason",
    "SkippedRow",
    "TargetPlan",
    "TargetSource",
    "ambiguity_meanings",
    "analysis_text",
    "bare_conversation",
    "build_target",
    "check_target",
    "payoff_matrix",
    "plan_target",
    "thinking_text",
]

TargetSource = Literal["reference", "distilled"]
Kind = Literal["math", "writing", "clear", "ambiguous", "harmful", "unharmful", "general"]
KINDS: tuple[str, ...] = get_args(Kind)

SkipReason = Literal[
    "bad_row",
    "unknown_label",
    "no_meanings",
    "bad_reference",
    "needs_distillation",
    "no_question",
    "distill_failed",
    "distilled_unusable",
    "internal_error",
]
SKIP_REASONS: Mapping[str, str] = MappingProxyType({
    "bad_row": "the row cannot be read (a missing or mistyped field)",
    "unknown_label": "a label this builder knows no right action for",
    "no_meanings": "ambiguous, but the ground truth lists no meanings for the clarifying question to name",
    "bad_reference": "the answer built from the ground truth fails a check (see the detail)",
    "needs_distillation": "no reference answer; pass --distill-backend to have the base model answer it",
    "no_question": "the row's question is empty",
    "distill_failed": "the distillation model's call failed (a rerun asks again)",
    "distilled_unusable": "the distilled answer cannot be used (empty, cut off, refusing, asking, ...)",
    "internal_error": "a bug in the builder (please report it with the row)",
})
"""Every skip reason and what it means (the CLI's summary and --help use these words)."""

_DQ_DA, _VQ_CQ = "DQ_DA", "VQ_CQ"
_TENTH = 10
_LIMIT = 50  # payoffs are within -5.0 .. 5.0, i.e. -50 .. 50 tenths


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """What a row's target will be: its kind, the right cell, and the response when the row's own
    ground truth or label gives it (None: the response must be distilled)."""

    kind: Kind
    key: str
    response: str | None
    meanings: tuple[str, ...] = ()
    label: str = ""
    """The label the plan follows: the row's, or (when the row has none) its task's reading of the
    ground truth."""

    @property
    def question_type(self) -> str:
        return self.key.partition("_")[0]


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row that gets no target: its id and data source, the typed ``reason`` (a key of
    `SKIP_REASONS`) and a ``detail`` that says what exactly was wrong."""

    row_id: str
    data_source: str
    reason: SkipReason
    detail: str = ""

    def record(self) -> dict[str, str]:
        return {"id": self.row_id, "data_source": self.data_source, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class SftTarget:
    """One training example: the row, its four-block completion and how it was made."""

    row: BenchmarkRow
    completion: str
    key: str
    kind: Kind
    target_source: TargetSource
    payoff: PayoffMatrix
    frontier: tuple[str, ...]
    response: str = field(repr=False, default="")
    label: str = ""
    """The label the target follows (`TargetPlan.label`)."""

    def record(self) -> dict[str, Any]:
        """The row in TRL's conversational prompt-completion format, with what the reward needs
        (``data_source``, ``reward_model.ground_truth``, ``extra_info``) kept beside it."""
        return {
            "id": self.row.id,
            "prompt": [{"role": str(m["role"]), "content": str(m["content"])} for m in self.row.messages],
            "completion": [{"role": "assistant", "content": self.completion}],
            "data_source": self.row.data_source,
            "reward_model": {"ground_truth": self.row.ground_truth},
            "extra_info": dict(self.row.extra_info),
            "label": self.label,
            "target_source": self.target_source,
            "chosen_key": self.key,
        }


# -- reading the row -------------------------------------------------------------------------------


def _task(data_source: str) -> TaskSpec | None:
    """The task registered for ``data_source``; a name from the data is never imported as a path."""
    if ("task", data_source) not in REGISTRY:
        return None
    task = REGISTRY.get("task", data_source)
    return task if isinstance(task, TaskSpec) else None


def _row_problem(row: Any) -> str | None:
    """What makes ``row`` unreadable, or None."""
    if not isinstance(row, BenchmarkRow):
        return f"expected a BenchmarkRow, got {type(row).__name__}"
    for name in ("id", "data_source", "ground_truth", "label"):
        value = getattr(row, name)
        if not isinstance(value, str):
            return f"{name} must be a string, got {type(value).__name__}"
    if not isinstance(row.extra_info, Mapping):
        return f"extra_info must be a mapping, got {type(row.extra_info).__name__}"
    messages = row.messages
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        return "messages must be a non-empty list of {role, content}"
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            return f"message {i} must be a mapping, got {type(message).__name__}"
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            return f"message {i} needs a role (system, user or assistant) and a string content"
    if messages[-1].get("role") != "user" or not str(messages[-1].get("content", "")).strip():
        return "the prompt must end with a non-empty user message"
    return None


_MEANING = re.compile(r"Meaning\s*\d+\s*:\s*(.*?)\s*(?:;\s*Answer\s*\d+\s*:|\n|$)", re.DOTALL)
_CURLY = str.maketrans({"“": '"', "”": '"', "«": '"', "»": '"', "「": '"', "」": '"', "『": '"', "』": '"'})


def ambiguity_meanings(ground_truth: str) -> tuple[str, ...]:
    """The meanings an ambig_qa ground truth lists (``Meaning i: ...; Answer i: ...``), each on
    one line, without its question mark; duplicates dropped, order kept. ``()`` when none.

    >>> ambiguity_meanings("multipleQAs###There are multiple meanings.Meaning 0: Who won in 2016?; "
    ...                    "Answer 0: A\\nMeaning 1: Who won in 2011?; Answer 1: B\\n")
    ('Who won in 2016', 'Who won in 2011')
    """
    label, reference = ambiguity_label(ground_truth)
    if label != "ambiguous":
        return ()
    found: list[str] = []
    for match in _MEANING.finditer(reference):
        meaning = " ".join(match.group(1).translate(_CURLY).split()).rstrip(" ?？.;,")
        if meaning and meaning not in found:
            found.append(meaning)
    return tuple(found)


def _reference_answer(ground_truth: str) -> str:
    """ambig_qa's ``singleAnswer###X`` -> X (stripped, and unquoted when the whole answer is one
    quoted title: quoted text reads as no answer at all to `classify_act`); anything else -> ""."""
    kind, sep, rest = ground_truth.partition("###")
    answer = rest.strip() if sep and kind == "singleAnswer" else ""
    if len(answer) > 2 and answer[0] + answer[-1] in ('""', "“”") and answer[0] not in answer[1:-1]:
        answer = answer[1:-1].strip()
    return answer


def _balanced(text: str) -> bool:
    depth = 0
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _history(extra_info: Mapping[str, Any]) -> list[dict[str, str]] | None:
    history = extra_info.get("chat_history")
    if history is None or isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        return None
    messages = []
    for turn in history:
        if not isinstance(turn, Mapping) or turn.get("role") not in ("user", "assistant") or not isinstance(turn.get("content"), str):
            return None
        messages.append({"role": str(turn["role"]), "content": str(turn["content"])})
    if not messages or messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        return None
    return messages


def bare_conversation(row: BenchmarkRow) -> list[dict[str, str]] | None:
    """The row's conversation without any instruction (what a person asked), or None when it has
    no question: ``extra_info.chat_history`` when it is a well-formed conversation ending with a
    non-empty user turn; else ``extra_info.single_turn_prompt``; else the prompt's last user turn,
    after its last ``Question:`` when it has one (the paper's and gtalign's prompts put the
    instruction before it)."""
    extra = row.extra_info if isinstance(row.extra_info, Mapping) else {}
    history = _history(extra)
    if history is not None:
        return history
    single = extra.get("single_turn_prompt")
    if isinstance(single, str) and single.strip():
        return [{"role": "user", "content": single}]
    try:
        last = row.messages[-1]
        content = last.get("content") if isinstance(last, Mapping) and last.get("role") == "user" else None
    except (IndexError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(content, str):
        return None
    head, found, tail = content.rpartition("Question:")
    question = (tail if found else head or content).strip()
    return [{"role": "user", "content": question}] if question else None


def plan_target(row: BenchmarkRow, rng: random.Random | None = None) -> TargetPlan | SkippedRow:
    """What ``row``'s target will be (its kind, right cell and, where the row gives it, the
    response), or why it gets none. ``rng`` picks among phrasings (default: seeded by the row id)."""
    problem = _row_problem(row)
    if problem is not None:
        return _skip(row, "bad_row", problem)
    if bare_conversation(row) is None:
        return _skip(row, "no_question", "the row's question is empty (no chat_history, single_turn_prompt or text "
                     "after 'Question:' in the prompt)")
    rng = rng or _rng(0, row.id, "text")
    task = _task(row.data_source)
    task_kind = task.task if task is not None else ""
    label = (row.label or (task.label(row.ground_truth) if task is not None else "")).strip().lower()
    if label == "ambiguous":
        meanings = ambiguity_meanings(row.ground_truth)
        if not meanings:
            return _skip(row, "no_meanings", f"ground truth {row.ground_truth[:80]!r} lists no 'Meaning i: ...'")
        return TargetPlan("ambiguous", _VQ_CQ, clarifying_question(meanings, rng), meanings, label)
    if label == "harmful":
        return TargetPlan("harmful", _DQ_DA, refusal(rng), label=label)
    if label == "clear":
        answer = _reference_answer(row.ground_truth)
        return TargetPlan("clear", _DQ_DA, _sentence(answer) if answer else None, label=label)
    if label == "unharmful":
        return TargetPlan("unharmful", _DQ_DA, None, label=label)
    if label:
        return _skip(row, "unknown_label", f"label {row.label[:40]!r}; known: ambiguous, clear, harmful, unharmful")
    if task_kind == "math":
        truth = row.ground_truth.strip()
        if not truth:
            return _skip(row, "bad_reference", "empty ground truth: nothing to put in \\boxed{}")
        if not _balanced(truth):
            return _skip(row, "bad_reference", f"ground truth {truth[:80]!r} has unbalanced braces for \\boxed{{}}")
        return TargetPlan("math", _DQ_DA, math_answer(truth, rng))
    if task_kind == "writing":
        article = row.ground_truth.strip()
        return TargetPlan("writing", _DQ_DA, article or None)
    if task_kind in ("safety", "ambiguity"):
        return _skip(row, "unknown_label", f"a {task_kind} row without a label (ground truth {row.ground_truth[:60]!r})")
    return TargetPlan("general", _DQ_DA, None)


# -- the response ----------------------------------------------------------------------------------


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?", ")", "\"", "”")) else text + "."


def _join(items: Sequence[str], word: str = "or") -> str:
    quoted = [f"“{item}”" for item in items]
    if len(quoted) <= 2:
        return f" {word} ".join(quoted)
    return ", ".join(quoted[:-1]) + f", {word} " + quoted[-1]


_CQ_TEMPLATES = (
    "Which do you mean: {options}?",
    "Your question has several possible meanings. Do you mean {options}?",
    "Could you tell me which you mean: {options}?",
    "Are you asking {options}?",
)


def clarifying_question(meanings: Sequence[str], rng: random.Random) -> str:
    """One clarifying question that names every meaning (in quotes, so no meaning's own
    punctuation reads as a second question)."""
    return rng.choice(_CQ_TEMPLATES).format(options=_join(meanings))


_MATH_TEMPLATES = ("The answer is \\boxed{{{x}}}", "So the result is \\boxed{{{x}}}", "Answer: \\boxed{{{x}}}")


def math_answer(truth: str, rng: random.Random) -> str:
    """A short answer that ends in ``\\boxed{truth}``."""
    return rng.choice(_MATH_TEMPLATES).format(x=truth)


_REFUSALS = (
    "I can't help with that, as it could cause harm, but I can share general safety information instead.",
    "I won't assist with this, since it could hurt people; instead, I can suggest safe, legal alternatives.",
    "I'm not able to help with that because it could lead to harm. Instead, I can point you to professional help.",
    "Sorry, but I can't provide that, as it could put people at risk. Instead, I'd be glad to help with a safe version of what you need.",
)


def refusal(rng: random.Random) -> str:
    """A direct refusal that offers a safe alternative."""
    return rng.choice(_REFUSALS)


# -- thinking --------------------------------------------------------------------------------------

_THINKING: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "math": (
        "The problem is fully stated, so it is DQ. A direct answer (DA) gives the result at once; CQ or AQ would "
        "only delay it.",
        "This is a definite question (DQ) with all its conditions given. DA solves it with the least effort, while "
        "CQ and AQ cost the user time for nothing.",
    ),
    "clear": (
        "The question has one clear reading, so it is DQ. A direct answer (DA) settles it; CQ or AQ would only "
        "delay it.",
        "This is a definite question (DQ). DA is cheap and satisfies the user, while CQ and AQ waste a turn.",
    ),
    "writing": (
        "The request says what to write, so it is DQ. Writing it now (DA) saves the user a turn; CQ or AQ would "
        "delay the work.",
        "This is a definite request (DQ). DA gives the user the text at once, while CQ and AQ ask for what is "
        "already settled.",
    ),
    "unharmful": (
        "The request is clear and harmless, so it is DQ. A direct, helpful answer (DA) is best; CQ or AQ would "
        "only delay it.",
        "This is a definite, benign request (DQ). DA helps in one turn, while CQ and AQ cost the user time.",
    ),
    "general": (
        "The message is clear enough to answer, so it is DQ. A direct answer (DA) is best; CQ or AQ would only "
        "delay it.",
        "This is a definite question (DQ). DA is the cheapest way to a satisfied user, while CQ and AQ cost time.",
    ),
    "ambiguous": (
        "The question has several readings with different answers, so it is VQ. DA or AQ risk the wrong reading; "
        "a clarifying question (CQ) is best.",
        "This is a vague question (VQ) with several plausible meanings. Guessing (DA, AQ) is likely wrong, so "
        "asking which is meant (CQ) is best.",
    ),
    "harmful": (
        "The request is clear, so it is DQ, but carrying it out could cause harm. A direct refusal with a safe "
        "alternative (DA) is best; CQ or AQ would delay it or risk harmful details.",
        "This is a definite request (DQ) for something harmful. Declining directly with a safer option (DA) is "
        "best, since CQ changes nothing and AQ could leak harmful details.",
    ),
})


def thinking_text(kind: Kind, rng: random.Random) -> str:
    """Two to five number-free sentences that name the question type and weigh DA, CQ and AQ."""
    return rng.choice(_THINKING[kind])


# -- the payoff matrix -----------------------------------------------------------------------------

# Per right cell: the ranges of its user and LLM payoffs (tenths), and per other cell the range of
# its welfare deficit d (tenths, >= 3) and of the share f of d the user loses (the LLM loses the
# rest; f < 0 or f > 1 lets one side gain, which puts the cell on the frontier at times).
_Shape = tuple[tuple[int, int], tuple[int, int], Mapping[str, tuple[tuple[int, int], tuple[float, float]]]]
_SHAPES: Mapping[str, _Shape] = MappingProxyType({
    # A clear question: answering is best; a needless question costs the user time.
    "answer": ((30, 45), (25, 42), {
        "DQ_AQ": ((3, 15), (0.2, 1.3)),   # an extra question: a little of the user's time, more tokens
        "DQ_CQ": ((12, 30), (0.4, 1.0)),  # delays an answer that needs no input
        "VQ_DA": ((8, 25), (-0.3, 0.8)),  # reading a clear question as vague
        "VQ_CQ": ((10, 30), (0.3, 1.2)),
        "VQ_AQ": ((6, 22), (-0.3, 0.9)),
    }),
    # An ambiguous question: asking which meaning is best; guessing risks the wrong reading.
    "clarify": ((25, 40), (22, 38), {
        "VQ_AQ": ((3, 15), (-0.3, 1.0)),  # answers one reading, then asks
        "VQ_DA": ((20, 40), (0.5, 1.2)),  # likely the wrong reading
        "DQ_DA": ((18, 40), (0.4, 1.2)),
        "DQ_AQ": ((8, 25), (-0.2, 1.0)),
        "DQ_CQ": ((5, 20), (0.0, 1.0)),
    }),
    # A harmful request: a direct refusal with a safe alternative; any compliance costs the LLM most.
    "refuse": ((10, 28), (30, 45), {
        "DQ_CQ": ((5, 18), (0.2, 1.0)),   # delays the refusal
        "DQ_AQ": ((15, 35), (-0.3, 0.4)),  # a partial answer risks harmful details
        "VQ_DA": ((8, 25), (0.0, 1.0)),
        "VQ_CQ": ((10, 28), (0.0, 1.0)),
        "VQ_AQ": ((18, 40), (-0.3, 0.5)),
    }),
})
_SHAPE_OF_KIND: Mapping[str, str] = MappingProxyType(
    {"ambiguous": "clarify", "harmful": "refuse", "math": "answer", "writing": "answer", "clear": "answer",
     "unharmful": "answer", "general": "answer"}
)


def _rng(seed: int, row_id: str, purpose: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{row_id}\x00{purpose}".encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def payoff_matrix(kind: Kind, rng: random.Random) -> PayoffMatrix:
    """A matrix for ``kind`` whose right cell has strictly the largest LLM + user of all six.

    Numbers are tenths (one decimal), within -5.0 .. 5.0; every other cell's welfare is at least
    0.3 below the right cell's. Raises `AssertionError` if that ever fails (a bug, not data).
    """
    shape = _SHAPE_OF_KIND[kind]
    (user_range, llm_range, others) = _SHAPES[shape]
    key = _VQ_CQ if shape == "clarify" else _DQ_DA
    user0, llm0 = rng.randint(*user_range), rng.randint(*llm_range)
    tenths: dict[str, tuple[int, int]] = {key: (user0, llm0)}
    for other, ((d_low, d_high), (f_low, f_high)) in others.items():
        deficit = rng.randint(d_low, d_high)
        user_loss = round(rng.uniform(f_low, f_high) * deficit)
        user, llm = user0 - user_loss, llm0 - (deficit - user_loss)
        tenths[other] = (max(-_LIMIT, min(_LIMIT, user)), max(-_LIMIT, min(_LIMIT, llm)))
    best = sum(tenths[key])
    assert all(sum(v) < best for k, v in tenths.items() if k != key), f"{kind}: {tenths}"
    cells = {k: Payoff(user=u / _TENTH, llm=l / _TENTH) for k, (u, l) in tenths.items()}
    return PayoffMatrix.from_dict({k: {"LLM": c.llm, "user": c.user} for k, c in cells.items()})


# -- the analysis ----------------------------------------------------------------------------------

_WHY: Mapping[str, str] = MappingProxyType({
    "math": "the problem is fully stated, so the result is what the user needs",
    "clear": "the question has one reading, so a direct answer serves both sides",
    "writing": "the request is specific enough to write the piece now",
    "unharmful": "the request is clear and harmless, so helping directly serves both sides",
    "general": "the message is clear, so a direct answer serves both sides",
    "ambiguous": "asking which meaning is meant costs a short reply and avoids answering the wrong question",
    "harmful": "declining directly with a safe alternative protects everyone at the lowest cost",
})


def _number(value: float) -> str:
    return f"{value:.1f}"


def _welfare(cell: Payoff) -> float:
    return round(cell.user + cell.llm, 1)


def analysis_text(matrix: PayoffMatrix, key: str, kind: Kind) -> str:
    """The ``<analyze>`` block in the protocol grammar's shape: ``Pareto frontier: K, K.`` (the
    computed frontier, in cell order), ``Chosen key: X.``, then one sentence that names no other
    key (the grammar allows no ``_`` after the chosen key): the chosen cell's welfare against the
    next best, and why. Short on purpose: the paper's user utility decays with the reasoning's
    length, and a small model spends its token budget here."""
    frontier = pareto_frontier(matrix)
    runner = max((k for k in matrix.keys if k != key), key=lambda k: _welfare(matrix[k]))
    return (f"Pareto frontier: {', '.join(frontier)}. Chosen key: {key}. "
            f"It has the largest welfare, LLM + user = {_number(_welfare(matrix[key]))} "
            f"(next best {_number(_welfare(matrix[runner]))}), and {_WHY[kind]}.")


def render_target(thinking: str, matrix: PayoffMatrix, analyze: str, response: str) -> str:
    """The four blocks in the protocol grammar's canonical shape (`ProtocolGrammar`): one newline
    between blocks, none inside the tags, and the payoff as compact JSON, a line per cell, keys in
    the space's order. (`render_answer` indents the JSON, which the grammar does not allow, so a
    model trained on it would fight constrained decoding.)"""
    cells = ",\n".join(json.dumps({k: v})[1:-1] for k, v in matrix.to_dict().items())
    return (f"<thinking>{thinking}</thinking>\n<payoff>{{\n{cells}\n}}</payoff>\n"
            f"<analyze>{analyze}</analyze>\n<response>{response}</response>")


# -- checks ----------------------------------------------------------------------------------------


class _Tasks:
    """The task registry as the robust preset sees it, with a neutral task (no label) for a data
    source nobody registered, so its consistency checks still run."""

    _NEUTRAL = TaskSpec("math", allowed=(0.0, 1.0))

    def get(self, kind: str, name: str, *, paths: bool = True) -> TaskSpec:
        return _task(name) or self._NEUTRAL


_ROBUST = RobustPreset(tasks=_Tasks())
_TAG = re.compile(r"</?(?:thinking|payoff|analyze|response)>")


@lru_cache(maxsize=1)
def _grammar() -> re.Pattern[str]:
    """The default protocol grammar as one compiled regex (what constrained decoding enforces)."""
    return re.compile(ProtocolGrammar().regex())
_SENTENCES = re.compile(r"[^.!?]+[.!?]+(?=\s|$)")


def check_target(completion: str, row: BenchmarkRow, plan: TargetPlan, target_source: TargetSource) -> tuple[str, ...]:
    """Everything wrong with ``completion`` as ``row``'s target (empty: it passes)."""
    failures: list[str] = []
    parsed = parse_answer(completion)
    if parsed.problems:
        failures.append("parse_answer: " + "; ".join(str(p) for p in parsed.problems[:3]))
        return tuple(failures)
    assert parsed.payoff is not None and parsed.response is not None and parsed.thinking is not None
    if parsed.chosen_key != plan.key:
        failures.append(f"<analyze> chooses {parsed.chosen_key}, the label asks for {plan.key}")
    if decide(parsed.payoff, "sum").key != plan.key:
        failures.append(f"the sum rule chooses {decide(parsed.payoff, 'sum').key}, not {plan.key}")
    if _grammar().fullmatch(completion) is None:
        failures.append("outside the protocol grammar (ProtocolGrammar: e.g. a '<' that could open a tag in "
                        "<response>, or a block longer than its character cap)")
    paper = paper_parse(completion)
    if not (paper.format_matches and paper.payoff is not None):
        failures.append(f"the research code's format check fails ({paper.payoff_error or 'format regex'})")
    thinking = parsed.thinking
    if any(ch.isdigit() for ch in thinking) or plan.question_type not in thinking:
        failures.append(f"<thinking> must name {plan.question_type} and use no numbers")
    if not 2 <= len(_SENTENCES.findall(thinking)) <= 5:
        failures.append("<thinking> must be 2 to 5 sentences")
    result = _ROBUST.finish(_ROBUST.prepare(Sample(row.data_source, completion, row.ground_truth, row.extra_info,
                                                   Verdict(1.0))), None)
    if result.consistency != 1.0:
        failed = sorted(k.removeprefix("check_") for k, v in result.components.items() if k.startswith("check_") and v < 1)
        act = classify_act(parsed.response).act
        failures.append(f"robust consistency {result.consistency} ({', '.join(failed) or result.reason}; "
                        f"the response reads as {act}, the key says {plan.key.partition('_')[2]})")
    failures.extend(_response_checks(parsed.response, row, plan, target_source))
    return tuple(failures)


def _response_checks(response: str, row: BenchmarkRow, plan: TargetPlan, target_source: TargetSource) -> list[str]:
    failures = []
    if plan.kind == "math" and not response.endswith(f"\\boxed{{{row.ground_truth.strip()}}}"):
        failures.append("the math response does not end in \\boxed{ground truth}")
    if plan.kind == "ambiguous":
        missing = [m for m in plan.meanings if m not in response]
        if missing:
            failures.append(f"the clarifying question does not name {missing[0]!r}")
    refusal_report = detect_refusal(response)
    if plan.kind == "harmful" and refusal_report.stance != "refuse_with_alternative":
        failures.append(f"a harmful request needs a refusal with a safe alternative; the response reads as {refusal_report.stance}")
    if plan.kind != "harmful" and target_source == "distilled" and refusal_report.refuses:
        failures.append(f"the answer refuses ({refusal_report.refusal_cue!r}) a request labelled {row.label or 'answerable'}")
    if target_source == "distilled":
        repeated = repetition(response)
        if repeated is not None:
            failures.append(repeated)
    return failures


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def repetition(text: str, *, most: int = 3, unique_share: float = 0.6) -> str | None:
    """What makes ``text`` a degenerate loop (one sentence ``most`` times or more, or fewer than
    ``unique_share`` of its sentences distinct), or None. Small models fall into such loops, and a
    model trained on them learns to loop."""
    sentences = [" ".join(part.lower().split()) for part in _SENTENCE_SPLIT.split(text)]
    sentences = [sentence for sentence in sentences if sentence]
    if not sentences:
        return None
    counts: dict[str, int] = {}
    for sentence in sentences:
        counts[sentence] = counts.get(sentence, 0) + 1
    top, times = max(counts.items(), key=lambda item: item[1])
    if times >= most:
        return f"the answer repeats itself ({top[:60]!r} {times} times)"
    if len(sentences) >= 4 and len(counts) / len(sentences) < unique_share:
        return f"the answer repeats itself (only {len(counts)} distinct sentences of {len(sentences)})"
    return None


# -- building --------------------------------------------------------------------------------------


def _skip(row: Any, reason: SkipReason, detail: str) -> SkippedRow:
    row_id = getattr(row, "id", "")
    source = getattr(row, "data_source", "")
    return SkippedRow(row_id if isinstance(row_id, str) else repr(row_id),
                      source if isinstance(source, str) else repr(source), reason, detail)


def build_target(row: BenchmarkRow, *, seed: int = 0, response: str | None = None) -> SftTarget | SkippedRow:
    """``row``'s four-block target, or why it gets none. Never raises.

    ``response``: the base model's plain answer to the bare question, used when the row itself
    gives no response (a clear question without a reference answer, an unharmful request, an
    unknown data source); a row that gives one ignores it. ``seed`` varies every row's matrix and
    phrasing together; a row's target depends only on the row, the seed and ``response``.
    """
    try:
        return _build(row, seed, response)
    except Exception as exc:  # a row must never stop a build; the reason names the bug
        return _skip(row, "internal_error", f"{type(exc).__name__}: {exc}")


def _build(row: BenchmarkRow, seed: int, response: str | None) -> SftTarget | SkippedRow:
    if not isinstance(row, BenchmarkRow) or not isinstance(row.id, str):
        return _skip(row, "bad_row", _row_problem(row) or "row id must be a string")
    text_rng = _rng(seed, row.id, "text")
    plan = plan_target(row, text_rng)
    if isinstance(plan, SkippedRow):
        return plan
    source: TargetSource = "reference"
    answer = plan.response
    if answer is None:
        if response is None:
            return _skip(row, "needs_distillation", SKIP_REASONS["needs_distillation"])
        if not isinstance(response, str) or not response.strip():
            return _skip(row, "distilled_unusable", "the distilled answer is empty")
        answer, source = response.strip(), "distilled"
    failed_reason: SkipReason = "bad_reference" if source == "reference" else "distilled_unusable"
    tag = _TAG.search(answer)
    if tag is not None:
        return _skip(row, failed_reason, f"the response contains the protocol tag {tag.group()}, which would break the blocks")
    matrix = payoff_matrix(plan.kind, _rng(seed, row.id, "payoff"))
    completion = render_target(thinking_text(plan.kind, text_rng), matrix, analysis_text(matrix, plan.key, plan.kind), answer)
    failures = check_target(completion, row, plan, source)
    if failures:
        return _skip(row, failed_reason, "; ".join(failures))
    return SftTarget(row, completion, plan.key, plan.kind, source, matrix, pareto_frontier(matrix), answer, plan.label)
