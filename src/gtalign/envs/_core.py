"""The pure core of the classic games: rules, immutable states, episodes and transcripts.

A `Game` holds the rules and their validated parameters. A `State` is an immutable position:
`State.apply` returns a new state, so backward induction, replay and self-play walk the same
tree. Players see a text observation and answer in text; `Game.parse_move` turns that text into
an action or a `MoveError` that says why not, and never raises. An `Episode` drives one play:
it resolves chance moves with its own seeded generator, applies the game's `InvalidMovePolicy`
(re-ask, then forfeit with a declared penalty) and records every answer, valid or not, in a
`Transcript` that replays to the same payoffs.

Two players, numbered 0 and 1. No I/O, no network, no global random state (after OpenSpiel's
``new_initial_state`` / ``apply_action`` / ``returns`` and TextArena's error allowance).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "CHANCE",
    "TERMINAL",
    "Action",
    "Episode",
    "Game",
    "GameError",
    "InvalidMovePolicy",
    "MoveError",
    "MoveRecord",
    "State",
    "StepOutcome",
    "Transcript",
    "ECHO_WORDS",
    "read_answer",
    "replay",
]

Action = Hashable
"""A move in a game's own terms: ``"C"``/``"D"``, an offer, ``"accept"``, a signal level, a type."""

CHANCE = -2
"""`State.current_player` of a chance node (nature draws, e.g. the sender's type)."""

TERMINAL = -1
"""`State.current_player` once the game is over."""


class GameError(ValueError):
    """Bad game parameters or a move applied where it is not legal; the message names the value."""


@dataclass(frozen=True, slots=True)
class MoveError:
    """Why a text is not a legal move here (returned by `Game.parse_move`, never raised)."""

    reason: str


@dataclass(frozen=True, slots=True)
class InvalidMovePolicy:
    """What happens after an invalid answer: ``retries`` re-asks (the error shown to the player),
    then a forfeit: the episode ends, the offender's payoff is what it had accrued plus ``penalty``,
    the other player keeps what it had accrued."""

    retries: int = 2
    penalty: float = -1.0

    def __post_init__(self) -> None:
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise GameError(f"retries must be a non-negative integer, got {self.retries!r}")
        penalty = self.penalty
        if isinstance(penalty, bool) or not isinstance(penalty, numbers.Real) or not math.isfinite(penalty):
            raise GameError(f"penalty must be a finite number, got {self.penalty!r}")

    @classmethod
    def coerce(cls, value: Any, default_penalty: float | None = None) -> InvalidMovePolicy:
        """A policy from a policy or a mapping of its fields (as in `Game.params` and ``--param``); a
        mapping without ``penalty`` gets ``default_penalty`` (the game's own default) when given."""
        if isinstance(value, InvalidMovePolicy):
            return value
        if not isinstance(value, Mapping):
            raise GameError(f"invalid_moves must be an InvalidMovePolicy or a mapping, got {value!r}")
        unknown = sorted(str(k) for k in value if k not in ("retries", "penalty"))
        if unknown:
            raise GameError(f"invalid_moves has unknown keys {unknown}; valid: ['penalty', 'retries']")
        given = dict(value)
        if "penalty" not in given and default_penalty is not None:
            given["penalty"] = default_penalty
        return cls(**given)


class State(ABC):
    """An immutable position of a game. Subclasses are frozen dataclasses holding ``game``."""

    game: Game

    @property
    @abstractmethod
    def current_player(self) -> int:
        """0 or 1, `CHANCE`, or `TERMINAL`."""

    @abstractmethod
    def legal_actions(self) -> tuple[Action, ...]:
        """The moves of the player to move (a chance node: its outcomes; terminal: none)."""

    def chance_outcomes(self) -> tuple[tuple[Action, float], ...]:
        """(outcome, probability) pairs at a chance node."""
        raise GameError(f"{type(self).__name__} has no chance node here")

    def is_legal(self, action: Action) -> bool:
        """Whether ``action`` is a move of the player to move; games with large move sets (an offer
        grid) override it with a check that does not list them all."""
        return action in self.legal_actions()

    @abstractmethod
    def apply(self, action: Action) -> State:
        """The position after ``action``; `GameError` when it is not legal here."""

    @abstractmethod
    def observation(self, player: int) -> str:
        """What ``player`` sees, as the text prompt a language model is given: the rules, the
        history this player knows (never the other's private information), and how to answer."""

    @abstractmethod
    def returns(self) -> tuple[float, float]:
        """Each player's payoff accrued so far (discounted where the game discounts); final at
        the terminal state."""

    @property
    def is_terminal(self) -> bool:
        return self.current_player == TERMINAL


class Game(ABC):
    """The rules of a two-player game. Immutable; parameters are checked in the constructor."""

    name: ClassVar[str]
    invalid_moves: InvalidMovePolicy

    @abstractmethod
    def new_initial_state(self) -> State:
        """The position before the first move (possibly a chance node)."""

    @abstractmethod
    def parse_move(self, text: str, state: State) -> Action | MoveError:
        """The action ``text`` names for the player to move in ``state``, or why it names none.
        Never raises, on any string; linear in the text's length."""

    @abstractmethod
    def format_move(self, action: Action, state: State) -> str:
        """Canonical text of ``action``: ``parse_move(format_move(a, s), s) == a`` for legal ``a``."""

    @abstractmethod
    def params(self) -> Mapping[str, Any]:
        """The parameters as JSON-ready values (recorded in every transcript)."""

    @abstractmethod
    def equilibrium_action(self, state: State) -> Action:
        """The move of the player to move under the game's reference (subgame-perfect or
        perfect Bayesian) equilibrium, for equilibrium-play opponents and distances."""

    def move_distance(self, state: State, action: Action) -> float:
        """How far ``action`` is from equilibrium play at ``state``, in [0, 1]. Default: 0 when it
        is the equilibrium move, else 1; games with numeric moves override it."""
        return 0.0 if action == self.equilibrium_action(state) else 1.0


@dataclass(frozen=True, slots=True)
class MoveRecord:
    """One answer or chance draw, as it happened. ``action`` is None for an invalid answer
    (``error`` says why); ``attempt`` counts re-asks of the same decision (0 = first answer)."""

    player: int
    text: str
    action: Action | None
    error: str = ""
    attempt: int = 0

    @property
    def valid(self) -> bool:
        return self.action is not None


@dataclass(frozen=True, slots=True)
class Transcript:
    """A whole episode: the game, its parameters and seed, every record, the final payoffs, and
    who forfeited (None: the game ended by its rules)."""

    game: str
    params: Mapping[str, Any]
    seed: int | None
    records: tuple[MoveRecord, ...]
    payoffs: tuple[float, float]
    forfeit: int | None = None

    @property
    def actions(self) -> tuple[Action, ...]:
        """The applied moves, chance draws included, in order."""
        return tuple(r.action for r in self.records if r.action is not None)

    @property
    def invalid(self) -> tuple[MoveRecord, ...]:
        return tuple(r for r in self.records if r.action is None)

    def to_json(self) -> dict[str, Any]:
        """The transcript as JSON-ready values: moves as strings or numbers (numpy numbers as Python
        ones, anything else as its text), parameters through their text where JSON has no type for
        them; `from_json` reads it back, and `replay` checks it."""
        return {
            "game": self.game,
            "params": json.loads(json.dumps(self.params, default=str)),
            "seed": self.seed,
            "records": [{"player": r.player, "text": r.text, "action": _json_move(r.action), "error": r.error,
                         "attempt": r.attempt} for r in self.records],
            "payoffs": list(self.payoffs),
            "forfeit": self.forfeit,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transcript:
        """The transcript `to_json` wrote (extra keys, such as a log line's, are ignored)."""
        records = tuple(MoveRecord(r["player"], r["text"], r["action"], r.get("error", ""), r.get("attempt", 0))
                        for r in data["records"])
        payoffs = data["payoffs"]
        return cls(game=data["game"], params=data["params"], seed=data.get("seed"), records=records,
                   payoffs=(float(payoffs[0]), float(payoffs[1])), forfeit=data.get("forfeit"))


def _json_move(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What `Episode.submit` did with one answer."""

    record: MoveRecord
    accepted: bool
    reask: bool
    forfeit: bool
    done: bool


@dataclass
class Episode:
    """One play of ``game``: who is to move, what they see, and what their answers do.

    ``seed`` seeds the generator of chance moves (and nothing else); chance nodes are resolved
    as soon as they are reached, so `to_move` is always 0, 1 or `TERMINAL`.
    """

    game: Game
    seed: int | None = None
    state: State = field(init=False)
    records: list[MoveRecord] = field(init=False, default_factory=list)
    forfeit: int | None = field(init=False, default=None)
    _attempt: int = field(init=False, default=0)
    _last_error: str = field(init=False, default="")
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.state = self.game.new_initial_state()
        self._resolve_chance()

    @property
    def to_move(self) -> int:
        return TERMINAL if self.done else self.state.current_player

    @property
    def done(self) -> bool:
        return self.forfeit is not None or self.state.is_terminal

    def observation(self, player: int | None = None) -> str:
        """The prompt of ``player`` (default: the one to move), with the last error when it is
        being asked again, and how the episode ended after a forfeit (the position itself still
        asks for the move that was never made)."""
        who = self.to_move if player is None else player
        text = self.state.observation(who)
        if self.forfeit is not None:  # the state still asks for the move that was never made
            if who == self.forfeit:
                text += f"\n\nThe game is over: you forfeited after too many invalid answers ({self._last_error})."
            else:
                text += "\n\nThe game is over: the other player forfeited after too many invalid answers."
        elif self._attempt and who == self.to_move:
            text += f"\n\nYour last answer was not a legal move: {self._last_error}. Answer again."
        return text

    def submit(self, text: str) -> StepOutcome:
        """The answer of the player to move: applied when `read_answer` reads a legal move in it
        (the prompt it answered is checked for echoes), else re-asked or forfeited."""
        if self.done:
            raise GameError("the episode is over")
        player = self.state.current_player
        parsed = read_answer(self.game, self.state, text, observation=self.observation())
        if isinstance(parsed, MoveError):
            record = MoveRecord(player, text, None, parsed.reason, self._attempt)
            self.records.append(record)
            if self._attempt < self.game.invalid_moves.retries:
                self._attempt += 1
                self._last_error = parsed.reason
                return StepOutcome(record, accepted=False, reask=True, forfeit=False, done=False)
            self.forfeit, self._last_error = player, parsed.reason
            return StepOutcome(record, accepted=False, reask=False, forfeit=True, done=True)
        return self._accept(player, text, parsed)

    def submit_action(self, action: Action) -> StepOutcome:
        """A fixed strategy's move, recorded with its canonical text (not read as a model's answer: no
        echo check). A text that does not parse back to the move is the game's bug, raised here rather
        than recorded as the strategy's re-asks."""
        if self.done:
            raise GameError("the episode is over")
        if not self.state.is_legal(action):
            raise GameError(f"{self.game.name}: {action!r} is not a legal move here")
        text = self.game.format_move(action, self.state)
        parsed = self.game.parse_move(text, self.state)
        if isinstance(parsed, MoveError) or parsed != action:
            got = parsed.reason if isinstance(parsed, MoveError) else f"it parses as {parsed!r}"
            raise GameError(f"{self.game.name}: the text {text!r} of the move {action!r} does not parse back ({got}): "
                            "format_move and parse_move disagree")
        return self._accept(self.state.current_player, text, action)

    def _accept(self, player: int, text: str, action: Action) -> StepOutcome:
        record = MoveRecord(player, text, action, "", self._attempt)
        self.records.append(record)
        self._attempt, self._last_error = 0, ""
        self.state = self.state.apply(action)
        self._resolve_chance()
        return StepOutcome(record, accepted=True, reask=False, forfeit=False, done=self.done)

    def payoffs(self) -> tuple[float, float]:
        """The payoffs so far; after a forfeit the offender's includes the penalty."""
        return _payoffs(self.state, self.forfeit, self.game.invalid_moves.penalty)

    def transcript(self) -> Transcript:
        return Transcript(
            game=self.game.name,
            params=dict(self.game.params()),
            seed=self.seed,
            records=tuple(self.records),
            payoffs=self.payoffs(),
            forfeit=self.forfeit,
        )

    def _resolve_chance(self) -> None:
        while self.state.current_player == CHANCE:
            outcomes = self.state.chance_outcomes()
            probs = np.array([p for _, p in outcomes], dtype=float)
            pick = int(self._rng.choice(len(outcomes), p=probs / probs.sum()))
            action = outcomes[pick][0]
            self.records.append(MoveRecord(CHANCE, "", action))
            self.state = self.state.apply(action)


ECHO_WORDS = 10
"""An answer that repeats this many words of its prompt in a row is refused: small models echo the
prompt, and the rules they echo name moves ("chooses C (cooperate) or D") they never chose."""

_WORD = re.compile(r"\S+")


def _echo(answer: str, prompt: str, n: int = ECHO_WORDS) -> str:
    """The first run of ``n`` words of ``answer`` that stands in ``prompt`` too ('' when none); linear in both."""
    words = [w.lower() for w in _WORD.findall(prompt)]
    runs = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
    if not runs:
        return ""
    window: list[str] = []
    for match in _WORD.finditer(answer):
        window.append(match.group().lower())
        if len(window) > n:
            del window[0]
        if len(window) == n and tuple(window) in runs:
            return " ".join(window)
    return ""


def read_answer(game: Game, state: State, text: str, *, observation: str | None = None) -> Action | MoveError:
    """The legal move ``text`` names for the player to move, or why it names none: the game's
    `Game.parse_move`, refused when the move is not legal here or when the answer repeats
    `ECHO_WORDS` words of ``observation`` (the prompt it answers) in a row. Never raises."""
    if not isinstance(text, str):
        return MoveError(f"an answer is text, not {type(text).__name__}")
    if observation:
        echo = _echo(text, observation)
        if echo:
            shown = echo if len(echo) <= 80 else echo[:77] + "..."
            return MoveError(f'the answer repeats the prompt ("{shown}") instead of answering it')
    parsed = game.parse_move(text, state)
    if not isinstance(parsed, MoveError) and not state.is_legal(parsed):
        return MoveError(f"{parsed!r} is not a legal move here")
    return parsed


def _payoffs(state: State, forfeit: int | None, penalty: float) -> tuple[float, float]:
    accrued = tuple(float(x) for x in state.returns())
    if forfeit is None:
        return (accrued[0], accrued[1])
    out = list(accrued)
    out[forfeit] += penalty
    return (out[0], out[1])


def replay(game: Game, transcript: Transcript | Sequence[Action]) -> tuple[float, float]:
    """The payoffs ``game`` gives the transcript's applied moves (or a plain move list), forfeit
    included: a check that a transcript is what it claims."""
    actions = transcript.actions if isinstance(transcript, Transcript) else tuple(transcript)
    state = game.new_initial_state()
    for action in actions:
        state = state.apply(action)
    forfeit = transcript.forfeit if isinstance(transcript, Transcript) else None
    return _payoffs(state, forfeit, game.invalid_moves.penalty)
