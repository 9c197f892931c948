"""Model players: a language model through any `ChatBackend` plays a seat of a classic game.

An edge module of `gtalign.envs`: it imports the backends, and nothing in the pure core imports it.
A `ChatPlayer` is a `TextPlayer`: `aplay` hands it the observation of its seat and submits its answer
to the game, which parses it, re-asks it or forfeits it by the game's `InvalidMovePolicy`.

Each answer is one fresh conversation: a system prompt saying that the model is playing a game and
must answer in the format asked, and the observation as the user message. The observation already
holds everything the seat may know (the rules, the history, and on a re-ask the error of the last
answer), so no chat history is kept between calls.

A backend failure (a `Generation` that is not ok: the server down, a context overflow, a content
filter; or a backend that raises) is an outcome, not an exception: the player answers ``""``, which
every built-in game refuses ("the answer names no move"), so the episode re-asks or forfeits it and
the transcript records it, and the failure's status and reason are kept in the player's `ChatTurn`.
Self-play is one `ChatPlayer` on both seats (or two, over one backend).

>>> import asyncio
>>> from gtalign.envs import PrisonersDilemma, TitForTat, aplay
>>> from gtalign.testing import ScriptedBackend
>>> player = ChatPlayer(ScriptedBackend(lambda messages, prefill: "D"))
>>> transcript = asyncio.run(aplay(PrisonersDilemma(rounds=2), [player, TitForTat()], seed=0))
>>> transcript.payoffs, [turn.text for turn in player.turns]
((6.0, 1.0), ['D', 'D'])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gtalign.backends._base import ChatBackend, Generation, GenerationStatus, SamplingParams

__all__ = ["DEFAULT_MAX_TOKENS", "GAME_SYSTEM_PROMPT", "ChatPlayer", "ChatTurn"]

GAME_SYSTEM_PROMPT = (
    "You are playing a game against another player. The user's message gives the rules, what has "
    "happened so far and how to answer. Decide on your move and answer in exactly the format the "
    "message asks for; an answer in any other format is not accepted as a move."
)
"""The system message of every `ChatPlayer` call (pass ``system=`` to use another)."""

DEFAULT_MAX_TOKENS = 128
"""Token budget of one answer: a move, or a short reasoning that ends with the move."""


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """One call of a `ChatPlayer`: the model's raw generation, and what went to the game.

    observation: the user message the model was given.
    text: the generation's text, submitted to the game as the answer (``""`` when the call failed).
    status, reason: the generation's status (``ok``, ``failed``, ``context_overflow``,
        ``content_filter``) and, when not ok, why.
    finish_reason: ``stop``, ``length`` (cut at max_tokens) or ``error``.
    tokens_in, tokens_out: as the backend counted them (None: not reported).
    latency: seconds the call took, by the player's clock.
    seed: the sampling seed of this call (None: unseeded).
    """

    observation: str
    text: str
    status: GenerationStatus
    reason: str
    finish_reason: str
    tokens_in: int | None
    tokens_out: int | None
    latency: float
    seed: int | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The turn as JSON-ready values, without the observation (a transcript replays to it)."""
        return {
            "text": self.text, "status": self.status, "reason": self.reason, "finish_reason": self.finish_reason,
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "latency": self.latency, "seed": self.seed,
        }


@dataclass
class ChatPlayer:
    """A `TextPlayer` that asks ``backend`` for each move.

    backend: any `ChatBackend` (an HTTP server, the embedded model, a scripted one in tests).
    name: the player's name in displays and logs (default: the backend's model name).
    system: the system message (default `GAME_SYSTEM_PROMPT`).
    temperature, max_tokens: decoding (0 is greedy).
    seed: the sampling seed of the first call; call ``n`` (from 0) uses ``seed + n``, so a seeded
        player is repeatable without drawing the same sample at every move. None: unseeded.
    clock: seconds, for each call's `ChatTurn.latency` (injected in tests).

    ``turns`` holds every call in order; with one player on both seats they interleave as the
    seats were asked (the transcript's records of its seats, in order, match them one to one).
    """

    backend: ChatBackend
    name: str = ""
    system: str = GAME_SYSTEM_PROMPT
    temperature: float = 0.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int | None = None
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False)
    turns: list[ChatTurn] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.backend, ChatBackend):
            raise TypeError(f"backend must be a ChatBackend (name, model, async generate, async aclose), "
                            f"got {type(self.backend).__name__}")
        if not self.name:
            self.name = str(getattr(self.backend, "model", "") or getattr(self.backend, "name", "") or "model")
        SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature)  # a bad value fails now, not mid-game

    def params(self, call: int) -> SamplingParams:
        """The sampling parameters of call number ``call`` (from 0)."""
        seed = None if self.seed is None else self.seed + call
        return SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature, seed=seed)

    def messages(self, observation: str) -> list[Mapping[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": observation}]

    async def answer(self, observation: str) -> str:
        """The model's answer to ``observation``; ``""`` (refused by the game) when the call failed."""
        params = self.params(len(self.turns))
        start = self.clock()
        try:
            generation = await self.backend.generate(self.messages(observation), params=params)
        except Exception as exc:  # a backend that raises instead of returning a failed Generation
            generation = Generation("", "error", status="failed", reason=f"the backend raised {type(exc).__name__}: {exc}")
        latency = self.clock() - start
        text = generation.text if generation.ok else ""
        self.turns.append(ChatTurn(
            observation=observation, text=text, status=generation.status,
            reason="" if generation.ok else (generation.reason or "the backend gave no reason"),
            finish_reason=generation.finish_reason, tokens_in=generation.tokens_in, tokens_out=generation.tokens_out,
            latency=latency, seed=params.seed,
        ))
        return text

    @property
    def failures(self) -> list[ChatTurn]:
        """The calls whose generation was not ok."""
        return [turn for turn in self.turns if not turn.ok]
