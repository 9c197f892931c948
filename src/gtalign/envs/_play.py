"""Playing an episode: fixed strategies and text players (models) on either side.

A `Strategy` picks an action from the state; a `TextPlayer` reads the observation and answers in
text (a language model through a chat backend, a person, a script). `play` runs strategies only
and is synchronous; `aplay` accepts both and awaits text players. Each side's strategy gets its
own generator derived from the episode seed, apart from the chance moves' one, so adding a
random opponent never changes nature's draws.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from gtalign.envs._core import Action, Episode, Game, GameError, State, Transcript

__all__ = ["EquilibriumPlay", "Strategy", "TextPlayer", "aplay", "distance_from_equilibrium", "play"]


@runtime_checkable
class Strategy(Protocol):
    """A fixed strategy: ``name``, and the move of the player to move at ``state``."""

    name: str

    def __call__(self, state: State, rng: np.random.Generator) -> Action: ...


@runtime_checkable
class TextPlayer(Protocol):
    """A player that answers the observation text in text (``answer`` may be async)."""

    name: str

    def answer(self, observation: str) -> str | Awaitable[str]: ...


@dataclass(frozen=True)
class EquilibriumPlay:
    """Plays the game's reference equilibrium move everywhere (`Game.equilibrium_action`)."""

    name: str = "equilibrium"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        return state.game.equilibrium_action(state)


def _player_rngs(seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(2)  # the chance moves use the root seed itself
    return np.random.default_rng(children[0]), np.random.default_rng(children[1])


def play(game: Game, players: Sequence[Strategy], seed: int | None = None) -> Transcript:
    """One episode between two fixed strategies."""
    if len(players) != 2:
        raise GameError(f"a game has two players, got {len(players)}")
    for p in players:
        if isinstance(p, TextPlayer):
            raise GameError(f"player {p.name!r} answers in text: use aplay")
    episode = Episode(game, seed)
    rngs = _player_rngs(seed)
    while not episode.done:
        who = episode.to_move
        episode.submit_action(players[who](episode.state, rngs[who]))
    return episode.transcript()


async def aplay(
    game: Game,
    players: Sequence[Strategy | TextPlayer],
    seed: int | None = None,
    *,
    on_step: Callable[[Episode], None] | None = None,
) -> Transcript:
    """One episode where either side may be a text player; invalid answers are re-asked or
    forfeited by the game's policy, and every answer is in the transcript."""
    if len(players) != 2:
        raise GameError(f"a game has two players, got {len(players)}")
    episode = Episode(game, seed)
    rngs = _player_rngs(seed)
    while not episode.done:
        who = episode.to_move
        player = players[who]
        if isinstance(player, TextPlayer):  # first: a text player that is also callable answers in text
            reply = player.answer(episode.observation())
            if inspect.isawaitable(reply):
                reply = await reply
            episode.submit(str(reply))
        else:
            episode.submit_action(player(episode.state, rngs[who]))
        if on_step is not None:
            on_step(episode)
    return episode.transcript()


def distance_from_equilibrium(game: Game, transcript: Transcript, player: int) -> float | None:
    """Mean `Game.move_distance` of ``player``'s applied moves (None when it made none, or when the
    game has no equilibrium play to measure against: a signaling game without a pure PBE)."""
    state = game.new_initial_state()
    distances: list[float] = []
    for record in transcript.records:
        if record.action is None:
            continue
        if record.player == player:
            try:
                distances.append(game.move_distance(state, record.action))
            except GameError:  # no equilibrium move here: the game is still played, the distance is undefined
                return None
        state = state.apply(record.action)
    return sum(distances) / len(distances) if distances else None
