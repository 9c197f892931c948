"""The one interface every chat model backend implements (HTTP servers and embedded models).

A backend turns a conversation, optionally with a partial assistant message to continue
(``prefill``), into new text. Continuation is what steering needs: the model writes up to
``</payoff>``, we put a decision into ``<analyze>``, and the *same* assistant turn goes on from
there. Each backend picks the mechanism its engine supports (``continue_final_message`` for
vLLM/SGLang, a trailing assistant message for llama.cpp's server and Ollama, a client-rendered
chat template on ``/v1/completions``, or the tokenizer's template for embedded models).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from gtalign.protocol import STAGES, ProtocolGrammar, Stage

if TYPE_CHECKING:
    from gtalign._chat_client import TextStream

__all__ = [
    "ChatBackend", "ConstrainingBackend", "Constraint", "Generation", "constraint_gate", "constraint_record", "GenerationStatus", "Message", "SamplingParams", "with_constraint_record",
    "StreamingBackend", "TokenCounter",
]

Message = Mapping[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

GenerationStatus = Literal["ok", "failed", "context_overflow", "content_filter"]


@dataclass(frozen=True, slots=True)
class Constraint:
    """Decode only text that ``grammar`` accepts at ``stage`` (the whole answer, or one steering
    stage, which continues the prefill).

    A backend that can enforce it does (`ConstrainingBackend`) and says how in the generation's
    ``extra["constraint"]``; one that cannot sends the request unconstrained and says so there,
    unless ``required`` (``--constrain on``), when the call fails with the reason instead.
    """

    grammar: ProtocolGrammar = field(default_factory=ProtocolGrammar)
    stage: Stage = "full"
    required: bool = False
    answer_budget: int | None = None
    """The token budget of the whole answer, when this call is one stage of it (steering): a
    backend that fits token caps to a budget (`ProtocolGrammar.fit`) fits them to the whole
    answer's, so a steered answer gets the caps a one-pass answer of that budget gets."""

    def __post_init__(self) -> None:
        if not isinstance(self.grammar, ProtocolGrammar):
            raise ValueError(f"constraint grammar must be a ProtocolGrammar, got {type(self.grammar).__name__}")
        if self.stage not in STAGES:
            raise ValueError(f"constraint stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.answer_budget is not None and self.answer_budget < 1:
            raise ValueError(f"constraint answer_budget must be >= 1, got {self.answer_budget}")


def constraint_record(constraint: Constraint, how: str | None, reason: str = "") -> dict[str, object]:
    """What a backend puts in ``Generation.extra["constraint"]``: whether the constraint was
    enforced, how (None: it went out unconstrained), at which stage, and why not."""
    return {"enforced": how is not None, "how": how, "stage": constraint.stage, "required": constraint.required,
            "reason": reason if how is None else ""}


def constraint_gate(backend: object, params: SamplingParams) -> tuple[SamplingParams, dict[str, object] | None, Generation | None]:
    """How to call ``backend`` with ``params`` when it cannot constrain at all (it is not a
    `ConstrainingBackend`, e.g. a custom backend): the params without the constraint and the record
    saying the call went out free, or, when the constraint is required, the failed `Generation` to
    use instead of calling. A `ConstrainingBackend` gets the params unchanged and records for itself.
    Callers put the record in the generation's extra with `with_constraint_record`."""
    constraint = params.constraint
    if constraint is None or isinstance(backend, ConstrainingBackend):
        return params, None, None
    reason = f"the backend {type(backend).__name__} cannot enforce a grammar (it has no constraint_support)"
    record = constraint_record(constraint, None, reason)
    if constraint.required:
        return params, record, Generation("", "error", status="failed", reason=reason, extra={"constraint": record})
    return dataclasses.replace(params, constraint=None), record, None


def with_constraint_record(generation: Generation, record: dict[str, object] | None) -> Generation:
    """``generation`` with ``record`` (from `constraint_gate`) as its ``extra["constraint"]``."""
    if record is None:
        return generation
    return dataclasses.replace(generation, extra={**generation.extra, "constraint": record})


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to decode. ``temperature == 0`` means greedy; ``seed`` makes sampling repeatable.

    ``stop`` strings end generation; the stop string itself is not part of `Generation.text`
    (`Generation.stop` says which one matched, when the engine reports it). ``constraint`` asks
    for protocol-constrained decoding (`Constraint`).
    """

    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    constraint: Constraint | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True, slots=True)
class Generation:
    """What one call produced: only the NEW text (never the prefill), why it ended, its cost.

    ``finish_reason`` is ``"stop"`` (a stop string or end of turn), ``"length"`` (max_tokens) or
    ``"error"``; a non-``ok`` status carries a ``reason`` and empty text.
    """

    text: str
    finish_reason: str = "stop"
    stop: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency: float = 0.0
    status: GenerationStatus = "ok"
    reason: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class ChatBackend(Protocol):
    """A chat model. ``generate`` never raises for a per-call model or server problem: it returns a
    `Generation` with a non-``ok`` status and a reason (a bad argument may still raise)."""

    name: str
    model: str

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> Generation: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingBackend(ChatBackend, Protocol):
    """A backend that can also hand out its text as it is written (HTTP servers, the embedded
    model). ``stream`` yields the new text in pieces; its ``result`` is then the `Generation`
    ``generate`` would have returned, and the pieces joined equal its text. Closing the stream
    early cancels the call."""

    def stream(
        self,
        messages: Sequence[Message],
        *,
        prefill: str = "",
        params: SamplingParams = SamplingParams(),
    ) -> TextStream[Generation]: ...


@runtime_checkable
class TokenCounter(Protocol):
    """An optional capability: counting tokens with the backend's own tokenizer, so lengths in a
    run log are the model's tokens, not an estimate. ``count_tokens`` gives one count per text
    (no special tokens added), or None when this backend cannot count (no tokenizer, a server
    without a tokenize endpoint, a failed call); it never raises for that, since a count is never
    worth failing a row over."""

    async def count_tokens(self, texts: Sequence[str]) -> list[int] | None: ...


@runtime_checkable
class ConstrainingBackend(Protocol):
    """An optional capability: enforcing a `Constraint` while decoding. ``constraint_support``
    names how this backend enforces one at ``stage`` (``"llguidance"``, ``"gbnf"``,
    ``"vllm structured_outputs.grammar"``, ...), or returns None when it cannot (the request then
    goes out unconstrained, or fails when the constraint is required)."""

    def constraint_support(self, stage: Stage) -> str | None: ...
