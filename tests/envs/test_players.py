"""`ChatPlayer`: a model through a `ChatBackend` plays a seat of a classic game.

Two tiers: a fake backend object at the API boundary (scripted `Generation` objects, a failing one, a
raising one, a slow one seen through an injected clock), and the real HTTP backend against the scripted
OpenAI-compatible server on loopback (`gtalign.testing.FakeOpenAI`). Every registered game is played to
its end through `aplay` by ChatPlayers answering in text, on both tiers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from gtalign import REGISTRY
from gtalign.backends import Generation, HTTPBackend, SamplingParams
from gtalign.envs import (
    CHANCE,
    AlwaysDefect,
    Episode,
    EquilibriumPlay,
    Game,
    PrisonersDilemma,
    TextPlayer,
    TitForTat,
    aplay,
    distance_from_equilibrium,
    play,
    replay,
)
from gtalign.envs.players import GAME_SYSTEM_PROMPT, ChatPlayer, ChatTurn
from gtalign.testing import FakeOpenAI, FakeRequest, Reply

GAMES = REGISTRY.names("game")


# -- a fake backend at the API boundary ------------------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeBackend:
    """A `ChatBackend` returning scripted `Generation` objects; ``script(observation, call)`` gives
    one (or raises). ``clock``/``seconds``: the call takes that long on the injected clock."""

    script: Callable[[str, int], Generation]
    name: str = "fake"
    model: str = "fake-model"
    clock: FakeClock | None = None
    seconds: float = 0.0
    calls: list[tuple[tuple[dict[str, str], ...], str, SamplingParams]] = field(default_factory=list)
    closed: bool = False

    async def generate(self, messages: Sequence[Any], *, prefill: str = "", params: SamplingParams = SamplingParams()) -> Generation:
        number = len(self.calls)
        self.calls.append((tuple(dict(m) for m in messages), prefill, params))
        await asyncio.sleep(0)
        if self.clock is not None:
            self.clock.now += self.seconds
        return self.script(messages[-1]["content"], number)

    async def aclose(self) -> None:
        self.closed = True


def said(*texts: str, tokens_in: int = 40) -> Callable[[str, int], Generation]:
    """Answers ``texts`` in order (the last one from then on)."""
    def script(observation: str, call: int) -> Generation:
        text = texts[min(call, len(texts) - 1)]
        return Generation(text, "stop", tokens_in=tokens_in, tokens_out=len(text.split()), latency=0.5)
    return script


FAILED = Generation("", "error", status="failed", reason="server: 503 Service Unavailable after 3 attempts")


async def test_a_chat_player_is_a_text_player_and_asks_with_a_game_system_prompt() -> None:
    backend = FakeBackend(said("D"))
    player = ChatPlayer(backend, temperature=0.7, max_tokens=32, seed=11)
    assert isinstance(player, TextPlayer) and player.name == "fake-model"
    assert await player.answer("Round 1. Answer C or D.") == "D"
    (messages, prefill, params), = backend.calls
    assert [m["role"] for m in messages] == ["system", "user"] and prefill == ""
    assert messages[0]["content"] == GAME_SYSTEM_PROMPT
    assert "playing a game" in GAME_SYSTEM_PROMPT and "format" in GAME_SYSTEM_PROMPT
    assert messages[1]["content"] == "Round 1. Answer C or D."
    assert (params.temperature, params.max_tokens, params.seed) == (0.7, 32, 11)


async def test_each_call_gets_the_next_seed_and_an_unseeded_player_stays_unseeded() -> None:
    backend = FakeBackend(said("C"))
    player = ChatPlayer(backend, seed=5)
    for _ in range(3):
        await player.answer("go")
    assert [params.seed for _, _, params in backend.calls] == [5, 6, 7]
    assert [turn.seed for turn in player.turns] == [5, 6, 7]
    unseeded = FakeBackend(said("C"))
    other = ChatPlayer(unseeded)
    await other.answer("go")
    await other.answer("go")
    assert [params.seed for _, _, params in unseeded.calls] == [None, None]


async def test_every_generation_is_recorded_raw() -> None:
    def script(observation: str, call: int) -> Generation:
        return Generation("I will cooperate: C", "length", tokens_in=123, tokens_out=7, latency=9.0)

    player = ChatPlayer(FakeBackend(script), clock=FakeClock())
    await player.answer("the rules")
    assert player.turns == [ChatTurn(observation="the rules", text="I will cooperate: C", status="ok", reason="",
                                     finish_reason="length", tokens_in=123, tokens_out=7, latency=0.0, seed=None)]
    assert player.turns[0].to_json() == {"text": "I will cooperate: C", "status": "ok", "reason": "", "finish_reason": "length",
                                         "tokens_in": 123, "tokens_out": 7, "latency": 0.0, "seed": None}


async def test_latency_is_measured_on_the_injected_clock() -> None:
    clock = FakeClock()
    player = ChatPlayer(FakeBackend(said("D"), clock=clock, seconds=2.5), clock=clock)
    await player.answer("slow")
    clock.now += 100.0  # time between calls is not the call's
    await player.answer("slow again")
    assert [turn.latency for turn in player.turns] == [2.5, 2.5]


async def test_a_failed_generation_is_an_answer_the_game_refuses_and_keeps_its_reason() -> None:
    backend = FakeBackend(lambda observation, call: FAILED if call == 0 else Generation("D", tokens_out=1))
    player = ChatPlayer(backend)
    transcript = await aplay(PrisonersDilemma(rounds=1), [player, AlwaysDefect()], seed=0)
    first, second = transcript.records[:2]
    assert (first.player, first.action, first.text, first.attempt) == (0, None, "", 0) and first.error
    assert (second.action, second.attempt) == ("D", 1)
    assert transcript.payoffs == (1.0, 1.0) and transcript.forfeit is None
    assert [turn.status for turn in player.turns] == ["failed", "ok"]
    assert player.failures[0].reason == FAILED.reason and player.failures[0].text == ""
    assert "Your last answer was not a legal move" in backend.calls[1][0][1]["content"]


async def test_a_backend_that_never_answers_forfeits_without_crashing_the_episode() -> None:
    game = PrisonersDilemma(rounds=3)
    player = ChatPlayer(FakeBackend(lambda observation, call: FAILED))
    transcript = await aplay(game, [TitForTat(), player], seed=0)
    assert transcript.forfeit == 1 and len(transcript.invalid) == game.invalid_moves.retries + 1
    assert transcript.payoffs == replay(game, transcript) == (0.0, game.invalid_moves.penalty)
    assert len(player.turns) == 3 and all(turn.reason == FAILED.reason for turn in player.turns)


async def test_a_backend_that_raises_is_recorded_as_a_failure() -> None:
    def script(observation: str, call: int) -> Generation:
        raise RuntimeError("connection pool exhausted")

    player = ChatPlayer(FakeBackend(script))
    assert await player.answer("go") == ""
    assert player.turns[0].status == "failed" and "RuntimeError: connection pool exhausted" in player.turns[0].reason


async def test_cancellation_is_not_swallowed() -> None:
    class Hangs(FakeBackend):
        async def generate(self, messages: Sequence[Any], *, prefill: str = "", params: SamplingParams = SamplingParams()) -> Generation:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    task = asyncio.ensure_future(ChatPlayer(Hangs(said("D"))).answer("go"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_chat_player_checks_its_backend_and_decoding_at_once() -> None:
    with pytest.raises(TypeError, match="ChatBackend"):
        ChatPlayer(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperature"):
        ChatPlayer(FakeBackend(said("D")), temperature=-1)
    with pytest.raises(ValueError, match="max_tokens"):
        ChatPlayer(FakeBackend(said("D")), max_tokens=0)
    assert ChatPlayer(FakeBackend(said("D")), name="alice").name == "alice"


async def test_self_play_one_player_on_both_seats_records_every_answer_in_order() -> None:
    seen: list[str] = []

    def script(observation: str, call: int) -> Generation:
        seen.append(observation)
        return Generation("C" if call % 3 else "perhaps", tokens_out=1)

    player = ChatPlayer(FakeBackend(script))
    game = PrisonersDilemma(rounds=2)
    transcript = await aplay(game, [player, player], seed=0)
    answered = [r for r in transcript.records if r.player != CHANCE]
    assert [r.text for r in answered] == [turn.text for turn in player.turns]
    assert [turn.observation for turn in player.turns] == seen
    assert any(r.action is None for r in answered) and transcript.forfeit is None
    assert "You are the first player" in seen[0] and "You are the second player" in seen[2]


# -- every game, played in text ----------------------------------------------------------------------


class Oracle:
    """Writes the reference equilibrium move of the position being asked about, in the game's own words:
    a model that plays equilibrium, seen only through its text. It follows the episode through
    ``on_step``; the first position is the seeded episode's own (nature's draws included)."""

    def __init__(self, game: Game, seed: int) -> None:
        self.game = game
        self.state = Episode(game, seed).state

    def on_step(self, episode: Episode) -> None:
        self.state = episode.state

    def text(self) -> str:
        return self.game.format_move(self.game.equilibrium_action(self.state), self.state)


@pytest.mark.parametrize("name", GAMES)
async def test_every_game_is_played_in_text_by_chat_players(name: str) -> None:
    game = REGISTRY.create("game", name)
    oracle = Oracle(game, seed=3)
    backend = FakeBackend(lambda observation, call: Generation(f"My move.\nAnswer: {oracle.text()}"
                                                               if "Answer:" in observation else oracle.text()))
    first, second = ChatPlayer(backend, name="first"), ChatPlayer(backend, name="second")
    transcript = await aplay(game, [first, second], seed=3, on_step=oracle.on_step)
    assert transcript.payoffs == play(game, [EquilibriumPlay(), EquilibriumPlay()], seed=3).payoffs
    assert transcript.invalid == () and transcript.forfeit is None
    assert distance_from_equilibrium(game, transcript, 0) == 0.0
    assert len(first.turns) + len(second.turns) == len([r for r in transcript.records if r.player != CHANCE])


# -- the real HTTP backend against a scripted server on loopback -------------------------------------------


def http_backend(server: FakeOpenAI, **options: Any) -> HTTPBackend:
    return HTTPBackend(server.base_url, "m", kind="vllm", max_retries=0, connect_retries=0, **options)


@pytest.mark.parametrize("name", GAMES)
async def test_every_game_over_a_loopback_server(name: str) -> None:
    game = REGISTRY.create("game", name)
    oracle = Oracle(game, seed=1)
    async with FakeOpenAI(lambda request: Reply(oracle.text()), kind="vllm", model="m") as server:
        backend = http_backend(server)
        try:
            learner = ChatPlayer(backend, seed=7)
            transcript = await aplay(game, [learner, EquilibriumPlay()], seed=1, on_step=oracle.on_step)
        finally:
            await backend.aclose()
    assert transcript.payoffs == play(game, [EquilibriumPlay(), EquilibriumPlay()], seed=1).payoffs
    assert distance_from_equilibrium(game, transcript, 0) == 0.0 and transcript.invalid == ()
    assert len(server.received) == len(learner.turns) >= 1
    body = server.received[0].body
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.0, 128, 7)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == learner.turns[0].observation
    assert all(turn.ok and turn.tokens_out is not None and turn.tokens_in for turn in learner.turns)


async def test_server_failures_over_loopback_are_re_asked_and_forfeited_with_their_reasons() -> None:
    replies = [Reply(fault="overflow"), Reply(fault="server_error", status=503), Reply("no idea")]

    def script(request: FakeRequest) -> Reply:
        return replies[request.index]

    game = PrisonersDilemma(rounds=2)
    async with FakeOpenAI(script, kind="vllm", model="m") as server:
        backend = http_backend(server)
        try:
            player = ChatPlayer(backend)
            transcript = await aplay(game, [player, TitForTat()], seed=0)
        finally:
            await backend.aclose()
    assert transcript.forfeit == 0 and transcript.payoffs == (game.invalid_moves.penalty, 0.0)
    assert [r.text for r in transcript.records] == ["", "", "no idea"]
    statuses = [(turn.status, turn.ok) for turn in player.turns]
    assert statuses == [("context_overflow", False), ("failed", False), ("ok", True)]
    assert "maximum context length" in player.turns[0].reason and "503" in player.turns[1].reason


def test_the_module_docstring_example_runs() -> None:
    import doctest

    import gtalign.envs.players as players

    result = doctest.testmod(players, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_nothing_in_the_pure_core_imports_the_players() -> None:
    import subprocess
    import sys

    code = ("import sys, gtalign.envs; from gtalign import REGISTRY; [REGISTRY.create('game', n) for n in REGISTRY.names('game')]; "
            "print([m for m in ('gtalign.envs.players', 'gtalign.backends', 'httpx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
