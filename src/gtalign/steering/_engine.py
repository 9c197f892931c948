"""The steering engine: one assistant turn, decided on the priced matrix, written by the model itself.

SPEC section 4, as a real continuation of the model's own turn (the research code instead threw the
analysis away and started a fresh turn with a one-line hint):

1. The model writes the four-block answer up to ``</payoff>`` (a stop string); the tag is put back.
2. The matrix is read (strict JSON, then optionally the research code's lenient parse). When it is
   missing or malformed, the declared `Fallback` runs: generate again with another seed, then use
   a default key, and say so in the record.
3. The pricing policy transforms the matrix and the welfare rule chooses on it, within the row of
   the question type the model gave in ``<thinking>`` (see `read_question_type`).
4. The same assistant turn continues from ``...</payoff>`` + ``<analyze>`` + a sentence naming the
   chosen key; the model writes the rest of ``<analyze>`` and the ``<response>``, stopping at
   ``</response>``. Nothing already written is generated again.

A model or backend failure never raises: the result has status ``"failed"`` and a reason.

`SteeringEngine.stream` is ``run`` with the response handed out as the model writes it: the
continuation stages go through the backend's ``stream`` (when it has one) and `ResponseText` picks
the ``<response>`` content out of them; the first stage is never shown, since it is not the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gtalign._chat_client import TextStream
from gtalign.backends._base import (
    ChatBackend,
    Constraint,
    Generation,
    SamplingParams,
    StreamingBackend,
    constraint_gate,
    with_constraint_record,
)
from gtalign.game import DEFAULT_SPACE, PayoffError, StrategySpace, WelfareRule, decide, welfare_rule
from gtalign.protocol import DEFAULT_SYSTEM, ProtocolGrammar, build_messages, parse_answer
from gtalign.protocol import Stage as GrammarStage
from gtalign.steering._modes import CONSTRAIN_MODES, DEFAULT_ON_IGNORED, IGNORED_PROTOCOL, ConstrainMode, IgnoredProtocol
from gtalign.steering._policy import PolicySpec, PricingPolicy, check_policy, load_policy
from gtalign.steering._result import FallbackEvent, Stage, StageName, SteeringResult
from gtalign.steering._steps import (
    ANALYZE_OPEN,
    PAYOFF_CLOSE,
    RESPONSE_CLOSE,
    RESPONSE_OPEN,
    PayoffRead,
    ResponseText,
    close_at,
    decision_sentence,
    default_sentence,
    ignores_protocol,
    read_payoff,
    read_question_type,
    salvage,
)

__all__ = ["IGNORED_PROTOCOL", "MIN_CONTINUATION_TOKENS", "Fallback", "IgnoredProtocol", "SteeringEngine"]

"""What to do when the model ignores the protocol (see `Fallback.when_ignored`)."""

_log = logging.getLogger(__name__)

MIN_CONTINUATION_TOKENS = 64
"""Tokens a continuation gets at least, even when the first stage used up ``max_tokens``."""


@dataclass(frozen=True, slots=True)
class Fallback:
    """What the engine does when the model does not give a usable matrix or response.

    retries: extra first-stage generations when the payoff is missing or malformed. Each uses seed
        ``seed + n`` (``n`` from 0 when no seed is set); under greedy decoding a new seed alone
        would repeat the same text, so a retry then samples at ``retry_temperature``.
    lenient_payoff: accept a matrix only the research code's lenient parse reads (single quotes,
        curly quotes, a Python literal); recorded as a fallback.
    default_action: the action used when no matrix is usable, in the row the model gave in
        ``<thinking>`` or else ``default_question_type``; None fails the answer instead.
    force_response: when the continuation writes no ``<response>``, close ``<analyze>``, open
        ``<response>`` and let the model continue once more.
    retry_ignored: retry also when the model ignored the protocol (opened neither ``<thinking>``
        nor ``<payoff>``). False keeps the retries for attempts whose matrix did not read: a model
        that answers without the blocks rarely writes them on a resample, and a retry costs up to
        the whole budget again.
    keep_unstructured: when the model ignored the protocol, return its own answer as the response,
        unsteered (recorded as ``unstructured``; no key is chosen), instead of the default action.
        It costs nothing beyond the first stage, which then is the plain answer.
    """

    retries: int = 1
    retry_temperature: float = 0.7
    lenient_payoff: bool = True
    default_action: str | None = "AQ"
    default_question_type: str = "DQ"
    force_response: bool = True
    retry_ignored: bool = True
    keep_unstructured: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"Fallback.retries must be an integer >= 0, got {self.retries!r}")
        if not self.retry_temperature > 0:
            raise ValueError(f"Fallback.retry_temperature must be > 0, got {self.retry_temperature!r}")

    @classmethod
    def when_ignored(cls, mode: IgnoredProtocol = DEFAULT_ON_IGNORED, **changes: Any) -> Fallback:
        """The fallback for a model that ignores the protocol, by name: ``retry`` (once, then the
        default action: the default), ``default`` (the default action at once) or ``keep`` (its
        own answer, unsteered). ``changes`` set the other fields."""
        if mode not in IGNORED_PROTOCOL:
            raise ValueError(f"unknown mode {mode!r} for a model that ignores the protocol; valid: {', '.join(IGNORED_PROTOCOL)}")
        return cls(retry_ignored=mode == "retry", keep_unstructured=mode == "keep", **changes)

    def check(self, space: StrategySpace) -> None:
        if self.default_action is not None and self.default_action not in space.actions:
            raise ValueError(f"Fallback.default_action {self.default_action!r} is not an action of {list(space.actions)}")
        if self.default_question_type not in space.question_types:
            raise ValueError(
                f"Fallback.default_question_type {self.default_question_type!r} is not one of {list(space.question_types)}"
            )


def _params(base: SamplingParams, stop: str, max_tokens: int, *, temperature: float | None = None,
            seed: int | None = None, also: tuple[str, ...] = (), constraint: Constraint | None = None) -> SamplingParams:
    stops = tuple(dict.fromkeys((stop, *also, *base.stop)))
    return SamplingParams(
        max_tokens=max(1, max_tokens),
        temperature=base.temperature if temperature is None else temperature,
        top_p=base.top_p,
        seed=base.seed if seed is None else seed,
        stop=stops,
        constraint=constraint,
    )


@dataclass(frozen=True, slots=True)
class _Attempt:
    """A first-stage generation that produced text."""

    text: str
    closed: bool
    params: SamplingParams


@dataclass(frozen=True, slots=True)
class _First:
    """Step 1's outcome: the last attempt that produced text, its reading, and why it fell short."""

    attempt: _Attempt | None
    read: PayoffRead | None
    why: str


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the continuation starts from: the kept first-stage text and the decision sentence."""

    head: str
    sentence: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Written:
    """A continuation's new text (closing tag put back), whether it closed, and its cost."""

    new: str
    closed: bool
    finish: str
    tokens: int


class SteeringEngine:
    """Steered four-block answers from one backend, under one pricing policy and welfare rule.

    ``policy``: a `PricingPolicy`, a registered name, a policy file or its mapping (see `load_policy`).
    ``rule``: the welfare rule for the decision, also written into the prompt the engine builds.
    ``params``: decoding for every stage; ``max_tokens`` is the budget of the whole answer: each
    first-stage attempt may use all of it, and each continuation gets what the stages before it
    left, at least `MIN_CONTINUATION_TOKENS`.
    ``system``: the system message of prompts built from a question string.
    ``constrain``: protocol-constrained decoding of each stage (`ProtocolGrammar` stages ``payoff``
    and ``response``): ``off``; ``auto``, enforced wherever the backend can (elsewhere the stage
    goes out unconstrained, and its record says so); ``on``, a stage the backend cannot constrain
    fails. ``grammar`` sets the grammar's options (default: `ProtocolGrammar` over ``space``).

    The engine holds no per-answer state: one engine may serve concurrent ``run`` calls.
    """

    def __init__(
        self,
        backend: ChatBackend,
        policy: PolicySpec = "none",
        *,
        rule: str | WelfareRule = "sum",
        params: SamplingParams = SamplingParams(),
        fallback: Fallback = Fallback(),
        space: StrategySpace = DEFAULT_SPACE,
        system: str | None = DEFAULT_SYSTEM,
        constrain: ConstrainMode = "off",
        grammar: ProtocolGrammar | None = None,
    ) -> None:
        if constrain not in CONSTRAIN_MODES:
            raise ValueError(f"constrain must be one of {', '.join(CONSTRAIN_MODES)}, got {constrain!r}")
        if grammar is not None and grammar.space != space:
            raise ValueError(f"the grammar's strategy space {grammar.space.keys} is not the engine's {space.keys}")
        self.constrain = constrain
        self.grammar = grammar if grammar is not None else ProtocolGrammar(space=space)
        self.backend = backend
        self.space = space
        self.rule = welfare_rule(rule)
        self.params = params
        self.fallback = fallback
        self.system = system
        fallback.check(space)
        self.policy = self._policy(policy)

    def constraint(self, stage: GrammarStage) -> Constraint | None:
        """The constraint of one stage's calls under this engine's ``constrain`` mode."""
        if self.constrain == "off":
            return None
        return Constraint(self.grammar, stage, required=self.constrain == "on", answer_budget=self.params.max_tokens)

    def _policy(self, policy: PolicySpec) -> PricingPolicy:
        loaded = load_policy(policy)
        check_policy(loaded, self.space)
        return loaded

    def messages(
        self, messages_or_question: str | Sequence[Mapping[str, str]], *, instruct: bool = False
    ) -> list[dict[str, str]]:
        """The messages ``run`` sends. A question string becomes the four-block prompt
        (`build_messages`, with this engine's system message, space and rule). A message list is
        sent as it is (it already carries the instruction, e.g. from `messages_from_row`), unless
        ``instruct``: then the instruction is added to its last user message, and the engine's
        system message is put first when the conversation has none of its own."""
        if isinstance(messages_or_question, str) or instruct:
            conversation = messages_or_question
            first = None if isinstance(conversation, str) or not conversation else conversation[0]
            has_system = isinstance(first, Mapping) and first.get("role") == "system"
            system = None if has_system else self.system
            return build_messages(conversation, system=system, space=self.space, rule=self.rule)
        return [dict(m) for m in messages_or_question]

    async def run(
        self,
        messages_or_question: str | Sequence[Mapping[str, str]],
        policy: PolicySpec | None = None,
    ) -> SteeringResult:
        """One steered answer. ``policy`` overrides the engine's policy for this call only."""
        run = _Run(self, self.policy if policy is None else self._policy(policy), self.messages(messages_or_question))
        return await run.execute()

    def stream(
        self,
        messages_or_question: str | Sequence[Mapping[str, str]],
        policy: PolicySpec | None = None,
    ) -> TextStream[SteeringResult]:
        """``run``, with the response streamed: ``async for delta in engine.stream(...)`` yields the
        ``<response>`` text as the model writes it (joined, the deltas equal ``result.response``
        unless the answer fails after its response began); ``.result`` then holds the
        `SteeringResult`. Closing the stream early cancels the steering (and the backend call).
        A bad ``policy`` raises here, before anything is generated."""
        chosen = self.policy if policy is None else self._policy(policy)
        return TextStream(_stream_source(self, chosen, self.messages(messages_or_question)))


async def _stream_source(
    engine: SteeringEngine, policy: PricingPolicy, messages: list[dict[str, str]]
) -> AsyncGenerator[str | SteeringResult, None]:
    """Runs the steering as a task and relays the response deltas it reports, then its result."""
    deltas: asyncio.Queue[str | None] = asyncio.Queue()
    run = _Run(engine, policy, messages, sink=deltas.put_nowait)
    task = asyncio.ensure_future(run.execute())
    task.add_done_callback(lambda _: deltas.put_nowait(None))
    shown: list[str] = []
    try:
        while (delta := await deltas.get()) is not None:
            shown.append(delta)
            yield delta
        result = task.result()
        streamed = "".join(shown)
        if result.response.startswith(streamed):
            if result.response != streamed:  # e.g. a response the parser found where the stream saw none
                yield result.response[len(streamed):]
        else:
            _log.warning("the streamed response %r is not the start of the final one %r (protocol tags inside "
                         "the response region)", streamed[:80], result.response[:80])
        yield result
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # not `await task`: a cancellation of the caller must still get through


class _Run:
    """The state of one ``run`` call (the engine itself stays stateless). ``sink`` receives the
    response text as it streams, when the caller asked for a stream."""

    def __init__(self, engine: SteeringEngine, policy: PricingPolicy, messages: list[dict[str, str]],
                 sink: Callable[[str], None] | None = None) -> None:
        self.engine = engine
        self.policy = policy
        self.messages = messages
        self.sink = sink
        self.stages: list[Stage] = []
        self.events: list[FallbackEvent] = []

    async def _call(self, prefill: str, params: SamplingParams,
                    response: ResponseText | None = None) -> tuple[Generation, float]:
        """One backend call. With a ``response`` reader and a sink, the call is streamed (when the
        backend can) and the response text it contains goes to the sink as it comes."""
        start = time.perf_counter()
        backend = self.engine.backend
        params, record, failed = constraint_gate(backend, params)
        if failed is not None:
            return failed, time.perf_counter() - start
        try:
            relay = response is not None and self.sink is not None
            if relay and isinstance(backend, StreamingBackend):
                generation = await self._relay(backend.stream(self.messages, prefill=prefill, params=params), response)
            else:
                generation = await backend.generate(self.messages, prefill=prefill, params=params)
                if relay and generation.ok:
                    self._show(response, generation.text)
            if relay and generation.ok and self.sink is not None and (held := response.flush()):
                self.sink(held)
        except Exception as exc:  # a backend bug must not take the caller down with it
            generation = Generation("", "error", status="failed", reason=f"backend raised {type(exc).__name__}: {exc}")
        return with_constraint_record(generation, record), time.perf_counter() - start

    async def _relay(self, stream: TextStream[Generation], response: ResponseText) -> Generation:
        async with stream:
            async for piece in stream:
                self._show(response, piece)
        return stream.result

    def _show(self, response: ResponseText, piece: str) -> None:
        shown = response.feed(piece)
        if shown and self.sink is not None:
            self.sink(shown)

    def _stage(self, name: StageName, attempt: int, prefill: str, text: str, generation: Generation, wall: float,
               params: SamplingParams) -> None:
        self.stages.append(
            Stage(
                name=name, attempt=attempt, prefill=prefill, text=text,
                finish_reason=generation.finish_reason, stop=generation.stop,
                tokens_in=generation.tokens_in, tokens_out=generation.tokens_out,
                latency=generation.latency, wall=wall, status=generation.status, reason=generation.reason,
                max_tokens=params.max_tokens, temperature=params.temperature, seed=params.seed,
                constraint=generation.extra.get("constraint") if params.constraint is not None else None,  # type: ignore[arg-type]
            )
        )

    def _event(self, stage: StageName, kind: Any, detail: str) -> None:
        self.events.append(FallbackEvent(stage, kind, detail))

    def _result(self, status: str, reason: str, text: str = "", response: str = "", **fields: Any) -> SteeringResult:
        engine = self.engine
        parsed = parse_answer(text, engine.space) if text else None
        blocks = {} if parsed is None else {name: block.content for name, block in parsed.blocks.items()}
        if status != "failed":
            status = "fallback" if self.events else "ok"
        return SteeringResult(
            status=status,  # type: ignore[arg-type]
            reason=reason,
            response=response,
            text=text,
            policy=self.policy,
            rule=engine.rule,
            stages=tuple(self.stages),
            fallbacks=tuple(self.events),
            parsed=parsed,
            backend=str(getattr(engine.backend, "name", "")),
            model=str(getattr(engine.backend, "model", "")),
            messages=tuple(MappingProxyType(m) for m in self.messages),
            blocks=MappingProxyType(blocks),
            **fields,
        )

    def _seed(self, attempt: int) -> int | None:
        base = self.engine.params.seed
        if attempt == 0:
            return base
        return (base if base is not None else 0) + attempt

    async def execute(self) -> SteeringResult:
        first = await self._first_stage()
        if first.attempt is None:
            return self._result("failed", f"no first stage could be generated: {first.why}")
        if first.read is not None and first.read.matrix is None and self.engine.fallback.keep_unstructured \
                and ignores_protocol(first.attempt.text):
            return self._unstructured(first.attempt)
        plan = self._plan(first, first.attempt)
        if isinstance(plan, SteeringResult):
            return plan
        return await self._write(plan, first.attempt)

    def _unstructured(self, last: _Attempt) -> SteeringResult:
        """The declared ``keep_unstructured`` fallback: the model's own answer, unsteered."""
        stage = self.stages[-1]
        text = close_at(last.text, RESPONSE_CLOSE, "<response>", stage.stop, stage.finish_reason).text
        response = parse_answer(text, self.engine.space).response
        if response is None:
            opened = text.rfind("<response>")
            response = text[opened + len("<response>"):] if opened >= 0 else text
        response = response.removesuffix(RESPONSE_CLOSE).strip()
        if not response:
            return self._result("failed", "the model ignored the protocol and wrote nothing", last.text)
        self._event("payoff", "unstructured",
                    "the model wrote no <thinking> or <payoff>; its answer is kept as the response, unsteered")
        if stage.finish_reason == "length":
            self._event("payoff", "truncated", "the kept answer ended at max_tokens")
        return self._result("ok", "", last.text, response)

    def _budget(self, used: int) -> int:
        max_tokens = self.engine.params.max_tokens
        return max(max_tokens - used, min(MIN_CONTINUATION_TOKENS, max_tokens))

    async def _first_stage(self) -> _First:
        """Step 1 with its retries: generate to ``</payoff>`` until a matrix reads or attempts run out."""
        engine, fallback = self.engine, self.engine.fallback
        params = engine.params
        last: _Attempt | None = None
        read: PayoffRead | None = None
        why = ""
        for attempt in range(1 + fallback.retries):
            greedy = params.temperature == 0
            temperature = fallback.retry_temperature if attempt and greedy else params.temperature
            stage_params = _params(params, PAYOFF_CLOSE, params.max_tokens, temperature=temperature,
                                   constraint=engine.constraint("payoff"),
                                   seed=self._seed(attempt), also=(RESPONSE_CLOSE,))
            generation, wall = await self._call("", stage_params)
            if not generation.ok:
                why = f"backend {generation.status}: {generation.reason or 'no reason given'}"
                self._stage("payoff", attempt, "", "", generation, wall, stage_params)
                if generation.status == "context_overflow":
                    break
            else:
                cut = close_at(generation.text, PAYOFF_CLOSE, "<payoff>", generation.stop, generation.finish_reason)
                self._stage("payoff", attempt, "", cut.text, generation, wall, stage_params)
                last = _Attempt(cut.text, cut.closed, stage_params)
                read = read_payoff(cut.text, engine.space, lenient=fallback.lenient_payoff)
                if read.matrix is not None:
                    break
                why = read.why if cut.closed else f"stopped ({generation.finish_reason}) before </payoff>; {read.why}"
                if ignores_protocol(cut.text) and (fallback.keep_unstructured or not fallback.retry_ignored):
                    break
            if attempt < fallback.retries:
                next_temperature = fallback.retry_temperature if greedy else params.temperature
                self._event("payoff", "retry", f"attempt {attempt + 1}: {why}; generating again with seed "
                            f"{self._seed(attempt + 1)}, temperature {next_temperature:g}")
        return _First(last, read, why)

    def _plan(self, first: _First, last: _Attempt) -> _Plan | SteeringResult:
        """Steps 2 and 3: price the matrix and decide, or take the declared default key."""
        engine, fallback, read = self.engine, self.engine.fallback, first.read
        question_type, evidence = read_question_type(read.thinking if read else None, engine.space)
        fields: dict[str, Any] = {"question_type": question_type, "question_type_evidence": evidence}
        if read is not None and read.matrix is not None:
            if read.how == "lenient":
                self._event("payoff", "lenient_payoff", f"strict JSON failed ({read.why}); the lenient parse read it")
            try:
                transformed = self.policy.transform(read.matrix)
                decision = decide(transformed, engine.rule, question_type=question_type)
                unsteered = decide(read.matrix, engine.rule, question_type=question_type)
            except PayoffError as exc:
                return self._result("failed", f"pricing policy {self.policy.name!r} failed on the matrix: {exc}",
                                    last.text, raw=read.matrix, payoff_parse=read.how, **fields)
            sentence = decision_sentence(decision, transformed, self.policy, question_type)
            fields.update(raw=read.matrix, transformed=transformed, payoff_parse=read.how, decision=decision,
                          unsteered=unsteered, chosen_key=decision.key, chosen_by="rule", decision_text=sentence)
            return _Plan(last.text, sentence, fields)
        attempts = sum(1 for s in self.stages if s.name == "payoff")
        if fallback.default_action is None:
            return self._result("failed", f"no usable payoff matrix after {attempts} attempt(s): {first.why}",
                                last.text, **fields)
        key = f"{question_type or fallback.default_question_type}_{fallback.default_action}"
        self._event("payoff", "default_action",
                    f"no usable payoff matrix after {attempts} attempt(s) ({first.why}); using {key}")
        head, dropped = salvage(last.text, last.closed)
        if dropped:
            self._event("payoff", "discarded_text",
                        f"dropped {dropped} characters of first-stage text outside the protocol's order")
        sentence = default_sentence(key)
        fields.update(chosen_key=key, chosen_by="fallback", decision_text=sentence)
        return _Plan(head, sentence, fields)

    async def _write(self, plan: _Plan, last: _Attempt) -> SteeringResult:
        """Step 4: continue the turn from the decision; open a ``<response>`` if the model wrote none."""
        fallback, fields = self.engine.fallback, plan.fields
        prefill = (plan.head + ANALYZE_OPEN if plan.head else ANALYZE_OPEN.lstrip("\n")) + plan.sentence
        used = sum(s.tokens_out or 0 for s in self.stages)
        written = await self._continue("continue", prefill, used, last.params.seed, ResponseText(after="</analyze>"))
        if isinstance(written, str):
            return self._result("failed", f"the continuation failed: {written}", prefill, **fields)
        if "<response>" not in written.new and fallback.force_response:
            end = written.new.find("</analyze>")
            if end >= 0:
                end += len("</analyze>")
                rest = written.new[end:]
                base = prefill + written.new[:end]
                how = "after </analyze>" + (f", dropping {len(rest)} characters that were not a response"
                                            if rest.strip() else "")
            else:
                base = prefill + written.new.rstrip() + "\n</analyze>"
                how = f"closing the <analyze> the model left open ({written.finish})"
            self._event("continue", "forced_response", f"the continuation wrote no <response>; opened one {how}")
            prefill = base + RESPONSE_OPEN
            written = await self._continue("response", prefill, used + written.tokens, last.params.seed,
                                           ResponseText(opened=True))
            if isinstance(written, str):
                return self._result("failed", f"the response stage failed: {written}", prefill, **fields)
        text = prefill + written.new
        response = parse_answer(text, self.engine.space).response
        if response is None and not written.closed:
            opened = text.rfind("<response>")
            response = text[opened + len("<response>"):].strip() if opened >= 0 else None
            if response:
                self._event("continue", "truncated", f"the response ended without </response> ({written.finish})")
        if not response:
            return self._result("failed", "the model wrote no response", text, **fields)
        return self._result("ok", "", text, response, **fields)

    async def _continue(self, name: StageName, prefill: str, used: int, seed: int | None,
                        response: ResponseText) -> _Written | str:
        """One continuation of ``prefill`` up to ``</response>``; a string says why it failed."""
        params = self.engine.params
        constraint = self.engine.constraint("response") if name == "continue" else None  # a forced <response> is free text
        stage_params = _params(params, RESPONSE_CLOSE, self._budget(used), temperature=params.temperature, seed=seed,
                               constraint=constraint)
        generation, wall = await self._call(prefill, stage_params, response)
        if not generation.ok:
            self._stage(name, 0, prefill, "", generation, wall, stage_params)
            return f"backend {generation.status}: {generation.reason or 'no reason given'}"
        cut = close_at(generation.text, RESPONSE_CLOSE, "<response>", generation.stop, generation.finish_reason, prefill)
        self._stage(name, 0, prefill, cut.text, generation, wall, stage_params)
        return _Written(cut.text, cut.closed, generation.finish_reason, generation.tokens_out or 0)
