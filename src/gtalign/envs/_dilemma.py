"""The sequential prisoner's dilemma, one-shot, finitely repeated or infinitely repeated.

Each round player 0 chooses C (cooperate) or D (defect), player 1 sees that choice and then
chooses. Stage payoffs are the classic (T, R, P, S) with T > R > P > S and 2R > T + S.

Two horizons:

- ``rounds=N``: N rounds, and round k's payoffs count ``discount ** (k - 1)`` times;
  `DilemmaState.returns` is that discounted sum.
- ``rounds=None``: the infinitely repeated game, realised as OpenSpiel's iterated dilemma does:
  after each round a chance node continues with probability ``discount`` and otherwise ends
  the game. Returns are the undiscounted sum of the rounds played; their expectation over
  nature's stops is exactly the ``discount``-discounted infinite sum, the value the theory
  uses (a round k is reached with probability ``discount ** (k - 1)``). Every episode is
  finite (mean length ``1 / (1 - discount)``), no truncation biases it, nobody knows which
  round is the last, and a seeded episode replays. ``discount`` must then be below 1.

Reference (subgame-perfect) play, `PrisonersDilemma.equilibrium_action`: always defect in the
one-shot and finitely repeated games (by backward induction D is strictly best at every node);
in the infinitely repeated game, grim trigger when ``discount >= (T - R) / (T - P)``, else
always defect. The grim trigger of that profile is the strict one (`GrimTrigger` with
``strict=True``): it defects once any move so far is D, its own and the current round's first
move included; a grim trigger that ignored either would not be subgame perfect (after its own
deviation, or after seeing the first mover defect, cooperating is not a best reply).

Answers are read word by word (runs of letters and apostrophes, case-insensitive, one pass, so
linear in the text's length): "c", "coop" and "cooperat..." name C; "d" and "defect..." name D
("I'd" is one word, not a D). An answer naming both moves, neither, or holding a negation
("not", "never", "...n't": a keyword reading could get it backwards) is a `MoveError` saying which.

The fixed strategies `TitForTat` and `GrimTrigger` (default) are the classic ones of the
iterated game (Axelrod's TitForTat and Grudger): they answer the other's moves in completed
rounds, so a match between two of them is the simultaneous-move match of the literature.

>>> from gtalign.envs import play
>>> game = PrisonersDilemma(rounds=3)
>>> t = play(game, [TitForTat(), AlwaysDefect()], seed=0)
>>> t.actions, t.payoffs
(('C', 'D', 'D', 'D', 'D', 'D'), (2.0, 7.0))
>>> backward_induction(game).path
('D', 'D', 'D', 'D', 'D', 'D')
>>> grim_trigger_threshold(5, 3, 1, 0)
0.5
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, ClassVar, cast

import numpy as np

from gtalign.envs._core import (
    CHANCE,
    TERMINAL,
    Action,
    Game,
    GameError,
    InvalidMovePolicy,
    MoveError,
    State,
)
from gtalign.envs._play import EquilibriumPlay, Strategy

__all__ = [
    "DILEMMA_STRATEGIES",
    "AlwaysCooperate",
    "AlwaysDefect",
    "BackwardInduction",
    "DilemmaState",
    "GrimTrigger",
    "PrisonersDilemma",
    "RandomMove",
    "TitForTat",
    "backward_induction",
    "continuation_value",
    "grim_trigger_is_equilibrium",
    "grim_trigger_threshold",
    "is_subgame_perfect",
    "one_shot_deviation_gain",
]

COOPERATE = "C"
DEFECT = "D"
CONTINUE = "continue"
STOP = "stop"
MOVES = (COOPERATE, DEFECT)


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise GameError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_payoffs(T: Any, R: Any, P: Any, S: Any) -> tuple[float, float, float, float]:
    t, r, p, s = (_real(n, v) for n, v in (("T", T), ("R", R), ("P", P), ("S", S)))
    if not t > r > p > s:
        raise GameError(f"a prisoner's dilemma needs T > R > P > S, got T={t:g}, R={r:g}, P={p:g}, S={s:g}")
    if not 2 * r > t + s:
        raise GameError(
            f"a prisoner's dilemma needs 2R > T + S (mutual cooperation beats taking turns), "
            f"got 2R={2 * r:g}, T + S={t + s:g} (T={t:g}, R={r:g}, S={s:g})"
        )
    return t, r, p, s


def grim_trigger_threshold(T: float, R: float, P: float, S: float) -> float:
    """The smallest discount at which grim trigger is subgame perfect in the infinitely repeated
    game: cooperating forever (R each round) beats defecting once for T and then P forever
    exactly when ``discount >= (T - R) / (T - P)``.

    >>> grim_trigger_threshold(5, 3, 1, 0)
    0.5
    """
    t, r, p, _ = _check_payoffs(T, R, P, S)
    return (t - r) / (t - p)


@dataclass(frozen=True, slots=True)
class PrisonersDilemma(Game):
    """The rules: stage payoffs, the discount, the horizon (None: infinitely repeated, see the
    module doc) and what an invalid answer costs."""

    name: ClassVar[str] = "prisoners-dilemma"

    T: float = 5.0
    R: float = 3.0
    P: float = 1.0
    S: float = 0.0
    discount: float = 1.0
    rounds: int | None = 5
    invalid_moves: InvalidMovePolicy = field(default_factory=InvalidMovePolicy)

    def __post_init__(self) -> None:
        t, r, p, s = _check_payoffs(self.T, self.R, self.P, self.S)
        discount = _real("discount", self.discount)
        if not 0 < discount <= 1:
            raise GameError(f"discount must be in (0, 1], got {self.discount!r}")
        rounds = self.rounds
        if rounds is not None:
            if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
                raise GameError(f"rounds must be a positive integer or None (infinitely repeated), got {rounds!r}")
            rounds = int(rounds)
        elif discount == 1:
            raise GameError(
                "the infinitely repeated game (rounds=None) continues after each round with probability "
                "discount, so discount must be below 1 (got 1.0: it would never end)"
            )
        object.__setattr__(self, "invalid_moves", InvalidMovePolicy.coerce(self.invalid_moves))  # a mapping, as in `params`
        for name, value in (("T", t), ("R", r), ("P", p), ("S", s), ("discount", discount), ("rounds", rounds)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PrisonersDilemma:
        """The game `params` describes (e.g. read back from a transcript)."""
        known = {"T", "R", "P", "S", "discount", "rounds", "invalid_moves"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise GameError(f"unknown prisoner's dilemma parameters {unknown}; valid: {sorted(known)}")
        kwargs = dict(params)
        if isinstance(kwargs.get("invalid_moves"), Mapping):
            kwargs["invalid_moves"] = InvalidMovePolicy(**kwargs["invalid_moves"])
        return cls(**kwargs)

    @property
    def infinite(self) -> bool:
        return self.rounds is None

    def stage_payoffs(self, move0: str, move1: str) -> tuple[float, float]:
        """One round's payoffs (player 0, player 1), undiscounted."""
        table = {
            (COOPERATE, COOPERATE): (self.R, self.R),
            (COOPERATE, DEFECT): (self.S, self.T),
            (DEFECT, COOPERATE): (self.T, self.S),
            (DEFECT, DEFECT): (self.P, self.P),
        }
        return table[move0, move1]

    def stage_matrices(self) -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]:
        """The stage game as a bimatrix (rows: player 0's C, D; columns: player 1's C, D), for
        normal-form solvers such as nashpy."""
        a = tuple(tuple(self.stage_payoffs(m0, m1)[0] for m1 in MOVES) for m0 in MOVES)
        b = tuple(tuple(self.stage_payoffs(m0, m1)[1] for m1 in MOVES) for m0 in MOVES)
        return a, b

    def new_initial_state(self) -> DilemmaState:
        return DilemmaState(self)

    def parse_move(self, text: str, state: State) -> Action | MoveError:
        return _parse(text, state)

    def format_move(self, action: Action, state: State) -> str:
        if action not in state.legal_actions():
            raise GameError(f"{action!r} is not a legal move here; legal: {list(state.legal_actions())}")
        return str(action)

    def params(self) -> Mapping[str, Any]:
        return {
            "T": self.T,
            "R": self.R,
            "P": self.P,
            "S": self.S,
            "discount": self.discount,
            "rounds": self.rounds,
            "invalid_moves": {"retries": self.invalid_moves.retries, "penalty": self.invalid_moves.penalty},
        }

    def equilibrium_action(self, state: State) -> Action:
        """D everywhere, except strict grim trigger in the infinitely repeated game when
        ``discount >= grim_trigger_threshold``."""
        state = _own_state(state)
        if state.current_player not in (0, 1):
            raise GameError(f"no player moves here (current player {state.current_player}), so no equilibrium move")
        if self.infinite and self.discount >= grim_trigger_threshold(self.T, self.R, self.P, self.S):
            return _strict_grim(state)
        return DEFECT

    def rules_text(self) -> str:
        """The rules with this game's numbers, as the players read them."""
        lines = [
            "You are playing a sequential prisoner's dilemma against another player.",
            "Each round the first player chooses C (cooperate) or D (defect); the second player sees "
            "that choice and then chooses C or D.",
            "Points each round:",
            f"- both choose C: {_points(self.R)} each",
            f"- both choose D: {_points(self.P)} each",
            f"- one chooses D and the other C: {_points(self.T)} for the one who chose D, "
            f"{_points(self.S)} for the one who chose C",
        ]
        if self.rounds is None:
            lines.append(
                f"After each round the game continues with probability {self.discount:g} and otherwise ends, "
                "so nobody knows which round is the last."
            )
        elif self.discount == 1:
            lines.append(f"The game lasts {_plural(self.rounds, 'round')}.")
        else:
            lines.append(
                f"The game lasts {_plural(self.rounds, 'round')}; points in round k count "
                f"{self.discount:g}^(k-1) times (round 1 fully, round 2 times {self.discount:g}, ...)."
            )
        lines.append("Your goal is to score as many points as possible in total.")
        return "\n".join(lines)


def _points(x: float) -> str:
    return f"{x:g} point" if x == 1 else f"{x:g} points"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _own_state(state: State) -> DilemmaState:
    if not isinstance(state, DilemmaState):
        raise GameError(f"expected a prisoner's dilemma state, got {type(state).__name__}")
    return state


@dataclass(frozen=True, slots=True)
class DilemmaState(State):
    """A position: the completed rounds, player 0's move in the current round (``pending``), how
    many times nature has continued the infinitely repeated game, whether it stopped, and the
    payoffs of the completed rounds (``accrued``, what `returns` gives)."""

    game: PrisonersDilemma
    history: tuple[tuple[str, str], ...] = ()
    pending: str | None = None
    continues: int = 0
    stopped: bool = False
    accrued: tuple[float, float] = (0.0, 0.0)

    @property
    def round(self) -> int:
        """The current round, counting from 1 (after the last round: rounds played + 1)."""
        return len(self.history) + 1

    @property
    def current_player(self) -> int:
        played = len(self.history)
        if self.stopped or (self.game.rounds is not None and played >= self.game.rounds):
            return TERMINAL
        if self.game.rounds is None and played > self.continues:
            return CHANCE
        return 0 if self.pending is None else 1

    def legal_actions(self) -> tuple[Action, ...]:
        who = self.current_player
        if who == TERMINAL:
            return ()
        if who == CHANCE:
            return (CONTINUE, STOP)
        return MOVES

    def chance_outcomes(self) -> tuple[tuple[Action, float], ...]:
        if self.current_player != CHANCE:
            return State.chance_outcomes(self)
        return ((CONTINUE, self.game.discount), (STOP, 1.0 - self.game.discount))

    def apply(self, action: Action) -> DilemmaState:
        who = self.current_player
        if action not in self.legal_actions():
            where = {TERMINAL: "the game is over", CHANCE: "nature moves"}.get(who, f"player {who} moves")
            raise GameError(f"{action!r} is not a legal move here ({where}); legal: {list(self.legal_actions())}")
        if who == CHANCE:
            return replace(self, continues=self.continues + 1) if action == CONTINUE else replace(self, stopped=True)
        if who == 0:
            return replace(self, pending=cast(str, action))
        assert self.pending is not None
        u0, u1 = self.game.stage_payoffs(self.pending, cast(str, action))
        weight = 1.0 if self.game.rounds is None else self.game.discount ** len(self.history)
        accrued = (self.accrued[0] + weight * u0, self.accrued[1] + weight * u1)
        return replace(self, history=(*self.history, (self.pending, cast(str, action))), pending=None, accrued=accrued)

    def returns(self) -> tuple[float, float]:
        return self.accrued

    def observation(self, player: int) -> str:
        if player not in (0, 1):
            raise GameError(f"player must be 0 or 1, got {player!r}")
        game = self.game
        other = 1 - player
        theirs = self.accrued[other]
        lines = [game.rules_text(), ""]
        lines.append(
            "You are the first player: you choose first in each round."
            if player == 0
            else "You are the second player: you see the first player's choice, then choose."
        )
        if self.history:
            lines.append("Rounds so far (your choice, the other player's choice, your points):")
            for k, moves in enumerate(self.history, start=1):
                mine = game.stage_payoffs(*moves)[player]
                lines.append(f"Round {k}: you {moves[player]}, other {moves[other]}, you scored {mine:g}")
            kind = " (discounted)" if game.rounds is not None and game.discount < 1 else ""
            lines.append(f"Your total so far{kind}: {self.accrued[player]:g}; the other player's: {theirs:g}.")
        else:
            lines.append("No rounds have been played yet.")
        of = "" if game.rounds is None else f" of {game.rounds}"
        who = self.current_player
        if who == TERMINAL:
            lines.append(f"The game is over. Your total: {self.accrued[player]:g}; the other player's: {theirs:g}.")
        elif who == CHANCE:
            lines.append(f"Round {len(self.history)} is over; the game continues with probability {game.discount:g}.")
        elif who != player:
            mine = f" You chose {self.pending} this round." if self.pending is not None else ""
            lines.append(f"Round {self.round}{of}.{mine} Waiting for the other player.")
        else:
            seen = f" The first player chose {self.pending} this round." if player == 1 else ""
            lines.append(f"Round {self.round}{of}.{seen} Your move.")
            lines.append(
                "Answer with one letter: C to cooperate or D to defect. An answer that names both moves, "
                "neither, or negates one (\"not\") is not accepted."
            )
        return "\n".join(lines)


# Parsing: one pass of a regular expression over the text's words, so linear in its length.

_WORD = re.compile(r"[A-Za-z']+")
_NEGATIONS = frozenset({"not", "never", "dont", "wont", "cannot", "cant", "didnt", "shouldnt", "wouldnt", "isnt"})


def _word_move(word: str) -> str | None:
    if word == "c" or word == "coop" or word.startswith("cooperat"):
        return COOPERATE
    if word == "d" or word.startswith("defect"):
        return DEFECT
    return None


def _quote(word: str) -> str:
    return repr(word if len(word) <= 20 else word[:20] + "...")


def _parse(text: Any, state: State) -> Action | MoveError:
    if not isinstance(text, str):
        return MoveError(f"the answer is not text (got {type(text).__name__})")
    who = state.current_player
    if who == TERMINAL:
        return MoveError("the game is over: no move is expected")
    if who == CHANCE:
        word = text.strip().lower()
        return word if word in (CONTINUE, STOP) else MoveError(f"nature moves here: {CONTINUE!r} or {STOP!r}")
    named: dict[str, str] = {}
    negation = ""
    for match in _WORD.finditer(text.lower().replace("co-op", "coop").replace("\u2019", "'")):  # won’t as won't
        word = match.group().strip("'")
        move = _word_move(word)
        if move is not None:
            named.setdefault(move, word)
        elif not negation and (word in _NEGATIONS or word.endswith("n't")):
            negation = word
    if len(named) == 2:
        return MoveError(
            f"the answer names both moves (cooperate as {_quote(named[COOPERATE])}, defect as "
            f"{_quote(named[DEFECT])}); answer with only C or only D"
        )
    if not named:
        return MoveError("the answer names no move; answer C (cooperate) or D (defect)")
    if negation:
        return MoveError(
            f"the answer negates a move ({_quote(negation)}), so it could mean either; answer with only C or only D"
        )
    return next(iter(named))


# Fixed strategies.


def _opponent_moves(state: DilemmaState, player: int) -> list[str]:
    return [moves[1 - player] for moves in state.history]


def _strict_grim(state: DilemmaState) -> str:
    defected = any(DEFECT in moves for moves in state.history) or state.pending == DEFECT
    return DEFECT if defected else COOPERATE


@dataclass(frozen=True, slots=True)
class AlwaysCooperate:
    """C every round."""

    name: str = "always-cooperate"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        return COOPERATE


@dataclass(frozen=True, slots=True)
class AlwaysDefect:
    """D every round."""

    name: str = "always-defect"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        return DEFECT


@dataclass(frozen=True, slots=True)
class TitForTat:
    """C in the first round, then the other's move of the previous round (Axelrod's TitForTat;
    as the second player it does not react to the first player's move of the current round)."""

    name: str = "tit-for-tat"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        state = cast(DilemmaState, state)
        seen = _opponent_moves(state, state.current_player)
        return seen[-1] if seen else COOPERATE


@dataclass(frozen=True, slots=True)
class GrimTrigger:
    """C until the other defects, then D forever (Friedman's grim trigger, Axelrod's Grudger):
    it watches the other's moves in completed rounds.

    ``strict=True`` is the subgame-perfect version of equilibrium play: D once any move so far
    is D, its own and the first player's move of the current round included.
    """

    strict: bool = False
    name: str = "grim-trigger"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        state = cast(DilemmaState, state)
        if self.strict:
            return _strict_grim(state)
        return DEFECT if DEFECT in _opponent_moves(state, state.current_player) else COOPERATE


@dataclass(frozen=True, slots=True)
class RandomMove:
    """C with probability ``p`` (drawn from the player's own generator), else D."""

    p: float = 0.5
    name: str = "random"

    def __post_init__(self) -> None:
        p = _real("p", self.p)
        if not 0 <= p <= 1:
            raise GameError(f"p must be a probability in [0, 1], got {self.p!r}")

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        return COOPERATE if rng.random() < self.p else DEFECT


DILEMMA_STRATEGIES: Mapping[str, Strategy] = MappingProxyType(
    {
        s.name: s
        for s in (AlwaysCooperate(), AlwaysDefect(), TitForTat(), GrimTrigger(), RandomMove(), EquilibriumPlay())
    }
)
"""The fixed opponents by name (for the command line): always-cooperate, always-defect,
tit-for-tat, grim-trigger, random (p = 0.5) and equilibrium."""


# Theory: backward induction, continuation values, the one-shot deviation principle.


@dataclass(frozen=True, slots=True)
class BackwardInduction:
    """The subgame-perfect play of a finite game found by backward induction: both players'
    values, the equilibrium path's moves, the move at every decision node, and whether every
    decision had a single best move (then the subgame-perfect equilibrium is unique)."""

    values: tuple[float, float]
    path: tuple[Action, ...]
    policy: Mapping[State, Action]
    unique: bool


def backward_induction(game: PrisonersDilemma, *, max_rounds: int = 8, tol: float = 1e-9) -> BackwardInduction:
    """Walk the whole game tree from the end: at each decision node the mover takes the move
    with the larger own value (ties, within ``tol``: the first legal move, and ``unique`` is
    False). The tree has 4 ** rounds histories, hence ``max_rounds``."""
    if game.rounds is None:
        raise GameError(
            "backward induction needs a finite horizon; the infinitely repeated game (rounds=None) has none"
        )
    if game.rounds > max_rounds:
        raise GameError(
            f"backward induction walks 4 ** rounds histories; rounds={game.rounds} > max_rounds={max_rounds}"
        )
    policy: dict[State, Action] = {}
    unique = True

    def solve(state: State) -> tuple[float, float]:
        nonlocal unique
        who = state.current_player
        if who == TERMINAL:
            return state.returns()
        if who == CHANCE:
            values = [(p, solve(state.apply(a))) for a, p in state.chance_outcomes()]
            return (sum(p * v[0] for p, v in values), sum(p * v[1] for p, v in values))
        best: tuple[Action, tuple[float, float]] | None = None
        for action in state.legal_actions():
            value = solve(state.apply(action))
            if best is None or value[who] > best[1][who] + tol:
                best = (action, value)
            elif abs(value[who] - best[1][who]) <= tol:
                unique = False
        assert best is not None
        policy[state] = best[0]
        return best[1]

    root = game.new_initial_state()
    values = solve(root)
    path: list[Action] = []
    state: State = root
    while state.current_player in (0, 1):
        path.append(policy[state])
        state = state.apply(policy[state])
    return BackwardInduction(values, tuple(path), MappingProxyType(policy), unique)


class _NoRandomness:
    """Stands in for a generator where play must be deterministic."""

    def __getattr__(self, name: str) -> Any:
        raise GameError("continuation values need deterministic strategies, but one drew a random number")


_NO_RNG = cast(np.random.Generator, _NoRandomness())
_MAX_WALK = 100_000


def _summary(state: DilemmaState) -> tuple[Any, ...]:
    last = state.history[-1] if state.history else None
    return (last, any(m[0] == DEFECT for m in state.history), any(m[1] == DEFECT for m in state.history))


def continuation_value(state: State, profile: Sequence[Strategy]) -> tuple[float, float]:
    """Both players' expected final payoffs from ``state`` when each plays its strategy in
    ``profile`` (nature's stops taken in expectation).

    In the infinitely repeated game the walk ends when a round starts in a situation already
    seen (same last round, same record of who has ever defected) and sums the repeating rest
    as a geometric series; so the strategies must be deterministic and depend on the history
    only through that summary, as all the fixed ones here do except `RandomMove`.
    """
    if len(profile) != 2:
        raise GameError(f"a profile has two strategies, got {len(profile)}")
    total = list(state.returns())
    prob = 1.0
    seen: dict[tuple[Any, ...], tuple[float, tuple[float, ...]]] = {}
    for _ in range(_MAX_WALK):
        who = state.current_player
        if who == TERMINAL:
            return (total[0], total[1])
        if who == CHANCE:
            key = _summary(cast(DilemmaState, state))
            if key in seen:
                start_prob, start_total = seen[key]
                q = prob / start_prob
                return cast(
                    tuple[float, float],
                    tuple(t + (t - s) * q / (1 - q) for t, s in zip(total, start_total)),
                )
            seen[key] = (prob, tuple(total))
            prob *= dict(state.chance_outcomes())[CONTINUE]
            state = state.apply(CONTINUE)
            continue
        before = state.returns()
        state = state.apply(profile[who](state, _NO_RNG))
        after = state.returns()
        total = [t + prob * (a - b) for t, a, b in zip(total, after, before)]
    raise GameError(f"play did not settle into a repeating pattern within {_MAX_WALK} moves")


def one_shot_deviation_gain(
    game: PrisonersDilemma, profile: Sequence[Strategy] | None = None, *, rounds: int | None = None
) -> float:
    """The largest gain any player gets by changing one move of ``profile`` (default: equilibrium
    play), at any decision node in the first ``rounds`` rounds, and following the profile after.

    By the one-shot deviation principle the profile is subgame perfect iff no such gain is
    positive at any history. ``rounds`` defaults to the whole finite game, and to 3 in the
    infinitely repeated game: there the value of a history depends only on `continuation_value`'s
    summary (last round, who has ever defected), and every summary occurs within two rounds.
    Gains are in payoff units of the start of the game (later rounds discounted).
    """
    profile = tuple(profile) if profile is not None else (EquilibriumPlay(), EquilibriumPlay())
    depth = rounds if rounds is not None else (game.rounds if game.rounds is not None else 3)
    best = -math.inf
    stack: list[State] = [game.new_initial_state()]
    while stack:
        state = stack.pop()
        who = state.current_player
        if who == TERMINAL or len(cast(DilemmaState, state).history) >= depth:
            continue
        if who == CHANCE:
            stack.append(state.apply(CONTINUE))  # stopping leaves no decision to check
            continue
        follow = profile[who](state, _NO_RNG)
        base = continuation_value(state.apply(follow), profile)[who]
        for action in state.legal_actions():
            if action != follow:
                best = max(best, continuation_value(state.apply(action), profile)[who] - base)
            stack.append(state.apply(action))
    return best


def is_subgame_perfect(
    game: PrisonersDilemma, profile: Sequence[Strategy] | None = None, *, rounds: int | None = None, tol: float = 1e-9
) -> bool:
    """No one-shot deviation gains more than ``tol`` (scaled by the payoffs' size)."""
    scale = max(abs(game.T), abs(game.S), 1.0) / (1 - game.discount if game.infinite else 1.0)
    return one_shot_deviation_gain(game, profile, rounds=rounds) <= tol * scale


def grim_trigger_is_equilibrium(game: PrisonersDilemma) -> bool:
    """Whether (strict) grim trigger against grim trigger is subgame perfect, checked numerically
    by the one-shot deviation principle (theory: iff ``discount >= grim_trigger_threshold`` in the
    infinitely repeated game; never in a finite one, where the last round unravels it)."""
    grim = GrimTrigger(strict=True)
    return is_subgame_perfect(game, (grim, grim))

