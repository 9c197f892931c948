"""The classic games as Gymnasium environments: one learner in a seat, the opponent inside the env.

`TextGameEnv` wraps any core `Game` (or a registry name and its parameters). Observations are the
learner's text prompt and actions its text answer; the opponent's moves are played inside `step`
until it is the learner's turn again or the game ends. The reward is the change in the learner's
payoff since its previous accepted step (the first one also pays what the opponent's opening moves
accrued), so an episode's rewards add up to its final payoff, a forfeit penalty included; an invalid
answer is re-asked (the observation carries the error) with reward 0.

Seeding follows Gymnasium: ``reset(seed=...)`` seeds ``self.np_random`` and every episode's seed is
drawn from it, so a seeded reset replays the same episode (nature's draws and the opponent's own
generator both come from that episode seed, as in `gtalign.envs.play`).

Nothing registers on import: call `register_envs()` to make the games known to ``gymnasium.make``.
This is the only module of `gtalign.envs` that imports gymnasium (the ``games`` extra).
"""

from __future__ import annotations

import inspect
import unicodedata
from collections.abc import Mapping
from typing import Any

import gymnasium
from gymnasium import spaces
from gymnasium.envs.registration import registry

from gtalign.envs._core import Episode, Game, GameError
from gtalign.envs._play import EquilibriumPlay, Strategy, TextPlayer, _player_rngs, distance_from_equilibrium

__all__ = ["CHARSET", "ENV_IDS", "MAX_ANSWER_CHARS", "MAX_OBSERVATION_CHARS", "TextGameEnv", "register_envs"]

_BLOCKS = (
    (0x20, 0x7E),  # printable ASCII
    (0xA0, 0xFF),  # Latin-1: accents, ×, ÷, ±, ½, §, currency
    (0x370, 0x3FF),  # Greek: δ, θ, π, σ in parameters and formulas
    (0x2010, 0x205E),  # general punctuation: dashes, curly quotes, bullets, …, ‰, primes
    (0x20A0, 0x20C0),  # currency: €, ₹
    (0x2150, 0x218B),  # number forms: ⅓, ⅔
    (0x2190, 0x21FF),  # arrows
    (0x2200, 0x22FF),  # mathematical operators: ≤, ≥, ≠, ≈, ∈, √
    (0x2500, 0x257F),  # box drawing, for payoff tables
)
_EXCLUDED = {"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"}  # controls, invisible formatting, unassigned

CHARSET: frozenset[str] = frozenset(
    {"\n", "\t"}
    | {chr(c) for lo, hi in _BLOCKS for c in range(lo, hi + 1) if unicodedata.category(chr(c)) not in _EXCLUDED}
)
"""The characters of observations and answers: English prompts, so printable ASCII with newlines and
tabs, plus the Latin-1, Greek, punctuation, currency, fraction, arrow, math and box-drawing blocks
that rules and payoff tables are written with. No control or invisible characters, no emoji. A game
whose prompts leave this set fails ``check_env``; the tests play every registered game to check."""

MAX_OBSERVATION_CHARS = 32_768
"""Room for the rules plus a long history (about 8k tokens); a game with a longer horizon passes a
larger ``max_observation_chars``."""

MAX_ANSWER_CHARS = 4_096
"""Room for a short reasoning before the move. Longer answers are still accepted and parsed; the
bound is what ``action_space.sample()`` draws and what a policy is expected to emit."""

ENV_IDS: Mapping[str, str] = {
    "gtalign/PrisonersDilemma-v0": "prisoners-dilemma",
    "gtalign/Bargaining-v0": "bargaining",
    "gtalign/Signaling-v0": "signaling",
    "gtalign/BeerQuiche-v0": "beer-quiche",
}
"""Gymnasium id -> registry name of the game (kind ``"game"``)."""

_ENTRY_POINT = f"{__name__}:TextGameEnv"


def _make_game(game: Game | str, params: Mapping[str, Any] | None) -> Game:
    if isinstance(game, Game):
        if params:
            raise GameError(f"params are for a game named by the registry, not a built {type(game).__name__}")
        return game
    if isinstance(game, str):
        from gtalign._registry import REGISTRY  # the registry resolves the game module only now

        built = REGISTRY.create("game", game, **dict(params or {}))
        if not isinstance(built, Game):
            raise GameError(f"registry game {game!r} gave a {type(built).__name__}, not a Game")
        return built
    raise GameError(f"game must be a Game or a registry name, got {type(game).__name__}")


class TextGameEnv(gymnasium.Env[str, str]):
    """One learner in ``seat`` against ``opponent`` (a `Strategy`, or a text player whose ``answer``
    is synchronous; default the game's `EquilibriumPlay`).

    ``info`` carries ``transcript`` (the episode so far), ``episode_seed``, ``seat``,
    ``invalid_answers`` (the learner's, this episode) and, after a step, ``invalid``/``error``
    (this answer was re-asked or forfeited, and why); at the end ``payoffs`` (both players),
    ``forfeit`` (who, or None) and ``distance_from_equilibrium`` (the learner's applied moves, mean
    `Game.move_distance`; None when it made none). Episodes end by the game's rules (``terminated``);
    the env never truncates: wrap it in ``TimeLimit`` for a step budget.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}  # one prompt per step

    def __init__(
        self,
        game: Game | str,
        *,
        params: Mapping[str, Any] | None = None,
        seat: int = 0,
        opponent: Strategy | TextPlayer | None = None,
        render_mode: str | None = None,
        max_observation_chars: int = MAX_OBSERVATION_CHARS,
        max_answer_chars: int = MAX_ANSWER_CHARS,
    ) -> None:
        if seat not in (0, 1) or isinstance(seat, bool):
            raise GameError(f"seat must be 0 or 1, got {seat!r}")
        if opponent is not None and not isinstance(opponent, (Strategy, TextPlayer)):
            raise GameError(f"opponent must be a Strategy or a TextPlayer, got {type(opponent).__name__}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise GameError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.game = _make_game(game, params)
        self.seat = seat
        self.opponent: Strategy | TextPlayer = opponent if opponent is not None else EquilibriumPlay()
        self.render_mode = render_mode
        self.observation_space = spaces.Text(max_observation_chars, min_length=1, charset=CHARSET)
        self.action_space = spaces.Text(max_answer_chars, min_length=0, charset=CHARSET)
        self._episode: Episode | None = None
        self._episode_seed: int | None = None
        self._opponent_rng = _player_rngs(None)[0]  # replaced by the episode's at every reset
        self._paid = 0.0  # the learner's payoff as of its last reward
        self._invalid = 0

    # ------------------------------------------------------------------ Gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """A new episode. ``options={"episode_seed": n}`` plays the episode ``play(game, ..., seed=n)``
        would (the draw from ``np_random`` still happens, so the stream of later seeds is the same)."""
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**63 - 1))
        if options and options.get("episode_seed") is not None:
            episode_seed = int(options["episode_seed"])
        self._episode_seed = episode_seed
        self._episode = Episode(self.game, episode_seed)
        self._opponent_rng = _player_rngs(episode_seed)[1 - self.seat]
        self._paid, self._invalid = 0.0, 0
        self._play_opponent()
        if self._episode.done:
            raise GameError(
                f"the episode ended before player {self.seat} moved "
                f"(forfeit: {self._episode.forfeit}); the opponent {self.opponent.name!r} cannot be played against"
            )
        return self._episode.observation(self.seat), self._info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """The learner's answer, then the opponent's moves until the learner is asked again or the
        game ends."""
        episode = self._episode
        if episode is None or episode.done:
            raise gymnasium.error.ResetNeeded("call reset() before step(), and again after the episode ends")
        if not isinstance(action, str):
            raise TypeError(f"the action is the learner's answer as a str, got {type(action).__name__}")
        outcome = episode.submit(action)
        if not outcome.accepted:
            self._invalid += 1
        reward = 0.0
        if not outcome.reask:  # a re-ask pays nothing, even what accrued before the learner's first step
            self._play_opponent()
            now = episode.payoffs()[self.seat]
            reward, self._paid = now - self._paid, now
        info = self._info()
        info["invalid"], info["error"] = not outcome.accepted, outcome.record.error
        return episode.observation(self.seat), float(reward), episode.done, False, info

    def render(self) -> str | None:
        """The learner's current prompt (``render_mode="ansi"``)."""
        if self.render_mode != "ansi" or self._episode is None:
            return None
        return self._episode.observation(self.seat)

    # ------------------------------------------------------------------ internals

    def _play_opponent(self) -> None:
        episode = self._episode
        assert episode is not None
        while not episode.done and episode.to_move != self.seat:
            if isinstance(self.opponent, Strategy):
                episode.submit_action(self.opponent(episode.state, self._opponent_rng))
                continue
            reply = self.opponent.answer(episode.observation())
            if inspect.isawaitable(reply):
                if inspect.iscoroutine(reply):
                    reply.close()
                raise GameError(f"opponent {self.opponent.name!r} answers asynchronously: use aplay, or a sync player")
            episode.submit(str(reply))

    def _info(self) -> dict[str, Any]:
        episode = self._episode
        assert episode is not None
        transcript = episode.transcript()
        info: dict[str, Any] = {
            "transcript": transcript,
            "episode_seed": self._episode_seed,
            "seat": self.seat,
            "invalid_answers": self._invalid,
        }
        if episode.done:
            info["payoffs"] = transcript.payoffs
            info["forfeit"] = transcript.forfeit
            info["distance_from_equilibrium"] = distance_from_equilibrium(self.game, transcript, self.seat)
        return info


def register_envs() -> tuple[str, ...]:
    """Register `ENV_IDS` with gymnasium (entry point `TextGameEnv`, the game by registry name);
    ids already registered are left alone, so calling it again is harmless. Returns the ids.
    Then ``gymnasium.make("gtalign/Bargaining-v0", seat=1, params={...}, opponent=...)``."""
    for env_id, name in ENV_IDS.items():
        if env_id not in registry:
            gymnasium.register(env_id, entry_point=_ENTRY_POINT, kwargs={"game": name}, nondeterministic=False)
    return tuple(ENV_IDS)
