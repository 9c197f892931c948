"""Single decisions of a classic game as training data, and the payoff a text answer earns there.

`decision_points` plays seeded episodes between a declared behaviour policy on the learner's seat
and a fixed opponent, and records every position where the learner moves: the game, its
parameters, the seat, the applied moves that lead there from ``new_initial_state`` (chance draws
included, all JSON-ready, so one JSONL row rebuilds the position), the observation the learner
sees and the equilibrium move. `restore` replays a history; `DecisionPoint.to_json` /
`DecisionPoint.from_json` and `game_from_spec` carry a point through JSON.

`answer_value` values a text answer at a point: the answer is parsed as `Episode.submit` parses it,
played, and the rest of the episode is played out by the declared ``continuation`` policy on the
learner's seat and the ``opponent`` on the other. An invalid answer is a forfeit at that point: the
learner's accrued payoff plus the game's ``invalid_moves.penalty`` (no re-ask: one completion
cannot be asked again). The result (`AnswerOutcome`) also carries the parsed move, its
`Game.move_distance` from the equilibrium move and its regret: the best value any legal move gets
at that point minus this one's.

How values are taken (declared, and the same for every answer at a point):

- The learner's information set. Where the learner does not see everything (the receiver of a
  signaling game never sees the sender's type), a move is valued in expectation over the
  positions it cannot tell apart: the point's history with other chance draws, kept when it is
  legal and shows the learner the same observation, weighted by the chance probabilities and by
  how likely the opponent's recorded moves are under the opponent's strategy (Bayes' rule). So the
  reward never depends on what the learner could not know. When the opponent's strategy gives
  every alternative probability 0 (a point made against another opponent), the chance
  probabilities alone weigh them.
- Chance after the move, and the strategies. When the opponent and the continuation are
  deterministic (they never draw a random number), chance is enumerated exactly; in the
  infinitely repeated dilemma the continue/stop chain is followed until its probability is below
  ``1e-12``. Otherwise the value is the mean of ``samples`` playouts whose generators are seeded
  by (the point's episode seed, its decision number, the playout number): they do not depend on
  the answer, so every answer at a point sees the same draws (common random numbers) and one text
  always gets one value.

Pure: no I/O, no global random state. With the equilibrium opponent and continuation, the
one-shot deviation principle makes the equilibrium move the best move at every point (regret 0),
which the tests check on every registered game.

>>> from gtalign.envs import AlwaysDefect, PrisonersDilemma
>>> game = PrisonersDilemma(rounds=2)
>>> points = decision_points(game, seat=1, opponent=AlwaysDefect(), behaviour=EquilibriumPlay(), episodes=1, seed=0)
>>> [p.history for p in points], points[0].equilibrium
([('D',), ('D', 'D', 'D')], 'D')
>>> outcome = answer_value(game, points[0], "C", opponent=AlwaysDefect())
>>> outcome.payoff, outcome.regret, answer_value(game, points[0], "maybe", opponent=AlwaysDefect()).payoff
(1.0, 1.0, -1.0)
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from gtalign.envs._core import CHANCE, TERMINAL, Action, Game, GameError, MoveError, State, read_answer
from gtalign.envs._play import EquilibriumPlay, Strategy, play

__all__ = [
    "DEFAULT_SAMPLES",
    "MAX_REGRET_MOVES",
    "AnswerOutcome",
    "DecisionPoint",
    "Mixed",
    "MoveValues",
    "UniformMove",
    "answer_value",
    "decision_points",
    "default_behaviour",
    "game_from_spec",
    "move_values",
    "payoff_range",
    "point_state",
    "restore",
    "strategy_named",
]

DEFAULT_SAMPLES = 8
"""Playouts per value when a strategy is random."""

MAX_REGRET_MOVES = 20_001
"""Regret enumerates every legal move; above this many (a bargaining grid finer than 1/20000)
regret is None."""

_TRUNCATE = 1e-12  # probability below which an exactly enumerated chance branch is cut (its accrued payoff kept)
_MAX_NODES = 2_000_000  # positions one exact value may visit
_MAX_PLAYOUT = 1_000_000  # moves one sampled playout may take
_LIKELIHOOD_DRAWS = 64  # draws that estimate a random opponent's probability of a recorded move


# --- behaviour policies --------------------------------------------------------------------------


@dataclass(frozen=True)
class UniformMove:
    """A uniformly random legal move of any game, from the player's own generator."""

    name: str = "uniform"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        legal = state.legal_actions()
        if not legal:
            raise GameError("no legal move to choose from")
        return legal[int(rng.integers(len(legal)))]


@dataclass(frozen=True)
class Mixed:
    """``first`` with probability ``p``, else ``second`` (one draw of the player's generator per
    move). ``Mixed(EquilibriumPlay(), UniformMove(), 0.5)`` is named ``mix:0.5``."""

    first: Strategy
    second: Strategy
    p: float = 0.5
    name: str = ""

    def __post_init__(self) -> None:
        p = self.p
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
            raise GameError(f"p must be a probability in [0, 1], got {self.p!r}")
        object.__setattr__(self, "p", float(p))
        if not self.name:
            default = isinstance(self.first, EquilibriumPlay) and isinstance(self.second, UniformMove)
            label = f"mix:{self.p:g}" if default else f"mix({self.first.name},{self.second.name},{self.p:g})"
            object.__setattr__(self, "name", label)

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        return (self.first if rng.random() < self.p else self.second)(state, rng)


def default_behaviour(p: float = 0.5) -> Mixed:
    """The learner's behaviour while points are collected: equilibrium play with probability ``p``,
    else a uniformly random move (equilibrium play alone visits only the equilibrium path)."""
    return Mixed(EquilibriumPlay(), UniformMove(), p)


def _strategy_table(game: Game) -> Mapping[str, Strategy]:
    from gtalign.envs._bargaining import BARGAINING_STRATEGIES, Bargaining
    from gtalign.envs._dilemma import DILEMMA_STRATEGIES, PrisonersDilemma
    from gtalign.envs._signaling import SIGNALING_STRATEGIES, Signaling

    own = getattr(game, "strategies", None)
    table: dict[str, Strategy] = {"equilibrium": EquilibriumPlay(), "uniform": UniformMove()}
    if isinstance(own, Mapping):
        table.update(own)
    for kind, named in ((PrisonersDilemma, DILEMMA_STRATEGIES), (Bargaining, BARGAINING_STRATEGIES),
                        (Signaling, SIGNALING_STRATEGIES)):
        if isinstance(game, kind):
            table.update(named)
    return table


def strategy_named(game: Game, name: str, extra: Mapping[str, Strategy] | None = None) -> Strategy:
    """The fixed strategy ``name`` of ``game``: one of ``extra``, of the game's own table (the
    dilemma's, bargaining's or signaling's, with ``equilibrium`` and ``uniform``), or ``mix:P``
    (`default_behaviour`). Never a dotted path (names come from data); an unknown name is a
    `GameError` listing the valid ones."""
    if extra and name in extra:
        return extra[name]
    table = _strategy_table(game)
    if name in table:
        return table[name]
    if isinstance(name, str) and name.startswith("mix:"):
        try:
            p = float(name[4:])
        except ValueError:
            p = math.nan
        if 0.0 <= p <= 1.0:
            return default_behaviour(p)
    valid = ", ".join([*sorted({*table, *(extra or {})}), "mix:P"])
    raise GameError(f"unknown strategy {name!r} for {game.name}; valid: {valid}")


# --- points ----------------------------------------------------------------------------------------


def _json_action(action: Any, where: str) -> Action:
    if action is None or isinstance(action, (str, bool, int)):
        return action
    if isinstance(action, float):
        if not math.isfinite(action):
            raise GameError(f"{where}: {action!r} is not a finite number")
        return action
    if isinstance(action, numbers.Real):
        return float(action)
    raise GameError(f"{where}: the move {action!r} ({type(action).__name__}) does not survive JSON")


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], json.loads(json.dumps(dict(params), allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise GameError(f"the game's parameters are not JSON-ready: {exc}") from None


@dataclass(frozen=True)
class DecisionPoint:
    """One position where the learner moves, and everything that rebuilds it.

    game, params: the game's ``name`` and ``params()`` (JSON-ready; `game_from_spec` rebuilds it).
    seat: the learner's player number. opponent, behaviour: the names of the strategies that played
    the episode (the other seat; the learner's seat up to here). episode_seed: the seed of the
    episode (`play`'s ``seed``). decision: which of the learner's decisions in the episode (from 0).
    history: the applied moves from ``new_initial_state``, chance draws included.
    observation: what the learner sees (``state.observation(seat)``). equilibrium,
    equilibrium_text: the equilibrium move and its canonical text.
    """

    game: str
    params: Mapping[str, Any] = field(hash=False)
    seat: int
    opponent: str
    behaviour: str
    episode_seed: int
    decision: int
    history: tuple[Action, ...]
    observation: str
    equilibrium: Action
    equilibrium_text: str

    def to_json(self) -> dict[str, Any]:
        """The point as JSON-ready values (`from_json` reads them back)."""
        return {
            "game": self.game,
            "params": _json_params(self.params),
            "seat": self.seat,
            "opponent": self.opponent,
            "behaviour": self.behaviour,
            "episode_seed": self.episode_seed,
            "decision": self.decision,
            "history": [_json_action(a, f"history[{i}]") for i, a in enumerate(self.history)],
            "observation": self.observation,
            "equilibrium": _json_action(self.equilibrium, "equilibrium"),
            "equilibrium_text": self.equilibrium_text,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DecisionPoint:
        """A point from `to_json`'s values; a `GameError` names the missing or mistyped key."""
        if not isinstance(data, Mapping):
            raise GameError(f"a decision point is a JSON object, got {type(data).__name__}")
        expected: dict[str, Any] = {
            "game": str, "params": Mapping, "seat": int, "opponent": str, "behaviour": str, "episode_seed": int,
            "decision": int, "history": list, "observation": str, "equilibrium_text": str,
        }
        for key, kind in expected.items():
            value = data.get(key)
            if value is None or isinstance(value, bool) or not isinstance(value, kind):
                got = "missing" if key not in data else f"{type(value).__name__} {value!r}"[:80]
                raise GameError(f"decision point key {key!r}: expected {getattr(kind, '__name__', kind)}, got {got}")
        if "equilibrium" not in data:
            raise GameError("decision point key 'equilibrium' is missing")
        if data["seat"] not in (0, 1):
            raise GameError(f"decision point key 'seat' must be 0 or 1, got {data['seat']!r}")
        history = tuple(_json_action(a, f"history[{i}]") for i, a in enumerate(data["history"]))
        return cls(
            game=data["game"], params=dict(data["params"]), seat=data["seat"], opponent=data["opponent"],
            behaviour=data["behaviour"], episode_seed=data["episode_seed"], decision=data["decision"],
            history=history, observation=data["observation"],
            equilibrium=_json_action(data["equilibrium"], "equilibrium"), equilibrium_text=data["equilibrium_text"],
        )


def game_from_spec(name: str, params: Mapping[str, Any]) -> Game:
    """The game registered as ``name`` (never a dotted path: names come from data), built from
    ``params`` as ``Game.params()`` gives them (``invalid_moves`` as a mapping). A game whose
    ``name`` or ``params()`` differ from what was asked is a `GameError`."""
    from gtalign._registry import REGISTRY, RegistryError
    from gtalign.envs._core import InvalidMovePolicy

    try:
        target = REGISTRY.get("game", name, paths=False)
    except RegistryError as exc:
        raise GameError(str(exc)) from None
    kwargs = dict(params)
    if isinstance(kwargs.get("invalid_moves"), Mapping):
        kwargs["invalid_moves"] = InvalidMovePolicy.coerce(kwargs["invalid_moves"])
    try:
        game = target(**kwargs) if callable(target) and not isinstance(target, Game) else target
    except TypeError as exc:
        raise GameError(f"game {name!r} cannot be built from these parameters: {exc}") from None
    if not isinstance(game, Game):
        raise GameError(f"game {name!r} is a {type(game).__name__}, not a Game")
    if game.name != name or _json_params(game.params()) != _json_params(params):
        raise GameError(f"game {name!r} built from these parameters is {game.name!r} with other parameters")
    return game


def restore(game: Game, history: Sequence[Action]) -> State:
    """The position ``history`` (applied moves, chance draws included) leads to; a `GameError`
    names the first move that is not legal."""
    state = game.new_initial_state()
    for i, action in enumerate(history):
        if not state.is_legal(action):
            raise GameError(f"history[{i}] = {action!r} is not a legal move there")
        state = state.apply(action)
    return state


def _episode_seeds(seed: int, episodes: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(episodes, dtype=np.uint32)]


def decision_points(
    game: Game,
    *,
    seat: int,
    opponent: Strategy,
    behaviour: Strategy | None = None,
    episodes: int,
    seed: int,
    unique: bool = False,
) -> tuple[DecisionPoint, ...]:
    """Every learner decision of ``episodes`` episodes of ``behaviour`` (on ``seat``, default
    `default_behaviour`) against ``opponent``, in play order. Episode ``k`` is
    ``play(game, players, seed=s_k)`` with ``s_k`` the k-th seed drawn from ``SeedSequence(seed)``,
    so the points are a function of the arguments. ``unique``: keep only the first point of each
    history (by default repeated positions keep their frequency under the behaviour)."""
    if seat not in (0, 1):
        raise GameError(f"seat must be 0 or 1, got {seat!r}")
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 0:
        raise GameError(f"episodes must be a non-negative integer, got {episodes!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GameError(f"seed must be a non-negative integer, got {seed!r}")
    behaviour = behaviour if behaviour is not None else default_behaviour()
    players = [opponent, opponent]
    players[seat] = behaviour
    params = _json_params(game.params())
    points: list[DecisionPoint] = []
    seen: set[str] = set()
    for episode_seed in _episode_seeds(seed, episodes):
        transcript = play(game, players, seed=episode_seed)
        state = game.new_initial_state()
        history: list[Action] = []
        decision = 0
        for action in transcript.actions:
            if state.current_player == seat:
                point = _point(game, params, state, seat, opponent, behaviour, episode_seed, decision, history)
                key = json.dumps(point.to_json()["history"])
                if not unique or key not in seen:
                    seen.add(key)
                    points.append(point)
                decision += 1
            state = state.apply(action)
            history.append(_json_action(action, f"move {len(history)}"))
    return tuple(points)


def _point(game: Game, params: dict[str, Any], state: State, seat: int, opponent: Strategy, behaviour: Strategy,
           episode_seed: int, decision: int, history: Sequence[Action]) -> DecisionPoint:
    equilibrium = _json_action(game.equilibrium_action(state), "the equilibrium move")
    return DecisionPoint(
        game=game.name, params=params, seat=seat, opponent=opponent.name, behaviour=behaviour.name,
        episode_seed=episode_seed, decision=decision, history=tuple(history), observation=state.observation(seat),
        equilibrium=equilibrium, equilibrium_text=game.format_move(equilibrium, state),
    )


def point_state(game: Game, point: DecisionPoint) -> State:
    """The point's position, checked: the learner moves there and sees the point's observation (a
    row made by another version of the game's prompts is refused, not valued)."""
    if game.name != point.game:
        raise GameError(f"the point is of {point.game!r}, not of {game.name!r}")
    state = restore(game, point.history)
    if state.current_player != point.seat:
        raise GameError(f"the point's history leads to a position where player {state.current_player} moves, "
                        f"not the learner's seat {point.seat}")
    if state.observation(point.seat) != point.observation:
        raise GameError("the point's observation differs from what the game shows at its history "
                        "(made with other game parameters or another version of the prompts?)")
    return state


# --- valuing moves ---------------------------------------------------------------------------------


class _NeedsRandom(Exception):
    """A strategy drew a random number where values are computed exactly."""


class _Deterministic:
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # introspection (doctest, copy, pickle), not a draw
            raise AttributeError(name)
        raise _NeedsRandom(name)


_DETERMINISTIC = cast(np.random.Generator, _Deterministic())


def _move(strategy: Strategy, state: State, rng: np.random.Generator) -> Action:
    action = strategy(state, rng)
    if not state.is_legal(action):
        raise GameError(f"strategy {strategy.name!r} played {action!r}, not a legal move there")
    return action


def _exact(state: State, profile: Sequence[Strategy]) -> tuple[float, float]:
    """Expected final payoffs from ``state`` with chance enumerated and deterministic strategies
    (`_NeedsRandom` when one draws). Branches below `_TRUNCATE` keep their accrued payoffs."""
    total = [0.0, 0.0]
    stack: list[tuple[State, float]] = [(state, 1.0)]
    visited = 0
    while stack:
        node, prob = stack.pop()
        visited += 1
        if visited > _MAX_NODES:
            raise GameError(f"an exact value visits more than {_MAX_NODES} positions; use random strategies to sample")
        who = node.current_player
        if who == TERMINAL or (who == CHANCE and prob < _TRUNCATE):
            returns = node.returns()
            total[0] += prob * returns[0]
            total[1] += prob * returns[1]
        elif who == CHANCE:
            for outcome, p in node.chance_outcomes():
                if p > 0:
                    stack.append((node.apply(outcome), prob * p))
        else:
            stack.append((node.apply(_move(profile[who], node, _DETERMINISTIC)), prob))
    return (total[0], total[1])


def _generators(point: DecisionPoint, k: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    seq = np.random.SeedSequence([point.episode_seed, point.decision, k])
    chance, first, second = seq.spawn(3)
    return np.random.default_rng(chance), np.random.default_rng(first), np.random.default_rng(second)


def _sampled(state: State, profile: Sequence[Strategy], point: DecisionPoint, samples: int) -> tuple[float, float]:
    """The mean final payoffs of ``samples`` playouts from ``state``, seeded by the point."""
    totals = [0.0, 0.0]
    for k in range(samples):
        chance_rng, *rngs = _generators(point, k)
        node = state
        for _ in range(_MAX_PLAYOUT):
            who = node.current_player
            if who == TERMINAL:
                break
            if who == CHANCE:
                outcomes = node.chance_outcomes()
                probs = np.array([p for _, p in outcomes], dtype=float)
                node = node.apply(outcomes[int(chance_rng.choice(len(outcomes), p=probs / probs.sum()))][0])
            else:
                node = node.apply(_move(profile[who], node, rngs[who]))
        else:
            raise GameError(f"a playout did not end within {_MAX_PLAYOUT} moves")
        returns = node.returns()
        totals[0] += returns[0]
        totals[1] += returns[1]
    return (totals[0] / samples, totals[1] / samples)


def _likelihood(strategy: Strategy, state: State, action: Action) -> float:
    """The probability that ``strategy`` plays ``action`` at ``state``: exact when it is
    deterministic, else the share of `_LIKELIHOOD_DRAWS` fixed draws."""
    try:
        return 1.0 if strategy(state, _DETERMINISTIC) == action else 0.0
    except _NeedsRandom:
        hits = sum(strategy(state, np.random.default_rng(k)) == action for k in range(_LIKELIHOOD_DRAWS))
        return hits / _LIKELIHOOD_DRAWS


def _information_set(game: Game, point: DecisionPoint, opponent: Strategy) -> list[tuple[State, float]]:
    """The positions the learner cannot tell from the point's, with normalised weights (see the
    module doc). Only the chance draws of the history vary."""
    found: list[tuple[State, float, float]] = []  # state, chance probability, opponent likelihood
    other = 1 - point.seat
    stack: list[tuple[State, int, float, float]] = [(game.new_initial_state(), 0, 1.0, 1.0)]
    while stack:  # a loop, not recursion: an infinitely repeated dilemma's history can be long
        state, i, chance, likely = stack.pop()
        if i == len(point.history):
            if state.current_player == point.seat and state.observation(point.seat) == point.observation:
                found.append((state, chance, likely))
            continue
        action = point.history[i]
        who = state.current_player
        if who == CHANCE:
            stack.extend((state.apply(outcome), i + 1, chance * p, likely)
                         for outcome, p in reversed(state.chance_outcomes()) if p > 0)
            continue
        if not state.is_legal(action):
            continue
        if who == other and likely > 0:
            likely *= _likelihood(opponent, state, action)
        stack.append((state.apply(action), i + 1, chance, likely))
    if len(found) <= 1:
        return [(s, 1.0) for s, _, _ in found]
    weights = [c * lk for _, c, lk in found]
    if sum(weights) <= 0:
        weights = [c for _, c, _ in found]
    total = math.fsum(weights)
    return [(s, w / total) for (s, _, _), w in zip(found, weights)]


@dataclass
class MoveValues:
    """The values of the moves at one decision point, for any number of answers (`move_values`).

    ``moves``: each legal move's (learner, opponent) expected payoffs, None when there are more
    than `MAX_REGRET_MOVES` (then a move is valued when asked). ``exact``: chance enumerated with
    deterministic strategies; False: the mean of ``samples`` seeded playouts. One method for every
    move of the point: when any move's playout meets a random draw, all are sampled.
    ``positions``: the learner's information set with its weights; ``state``: the point's own.
    """

    game: Game
    point: DecisionPoint
    state: State
    opponent: Strategy
    continuation: Strategy
    samples: int
    positions: tuple[tuple[State, float], ...]
    exact: bool = True
    moves: dict[Action, tuple[float, float]] | None = None

    @property
    def learner(self) -> dict[Action, float]:
        """Each legal move's value to the learner (`GameError` above `MAX_REGRET_MOVES`)."""
        if self.moves is None:
            raise GameError(f"over MAX_REGRET_MOVES = {MAX_REGRET_MOVES} legal moves: not all were valued")
        return {action: pair[0] for action, pair in self.moves.items()}

    @property
    def best(self) -> float | None:
        return None if self.moves is None else max(pair[0] for pair in self.moves.values())

    def value(self, action: Action) -> tuple[float, float]:
        """The (learner, opponent) expected payoffs of playing ``action`` (a legal move)."""
        if self.moves is not None and action in self.moves:
            return self.moves[action]
        try:
            return self._value(action, exact=self.exact)
        except _NeedsRandom:  # only on a grid too large to value every move up front
            return self._value(action, exact=False)

    def _value(self, action: Action, *, exact: bool) -> tuple[float, float]:
        pair = [self.opponent, self.opponent]
        pair[self.point.seat] = self.continuation
        total = [0.0, 0.0]
        for state, weight in self.positions:
            after = state.apply(action)
            v = _exact(after, pair) if exact else _sampled(after, pair, self.point, self.samples)
            total[0] += weight * v[0]
            total[1] += weight * v[1]
        seat = self.point.seat
        return (total[seat], total[1 - seat])

    def forfeit(self) -> tuple[float, float]:
        """An invalid answer's (learner, opponent) payoffs: accrued, plus the penalty for the learner."""
        penalty = float(self.game.invalid_moves.penalty)
        seat = self.point.seat
        mine = math.fsum(w * s.returns()[seat] for s, w in self.positions)
        theirs = math.fsum(w * s.returns()[1 - seat] for s, w in self.positions)
        return (mine + penalty, theirs)


def move_values(
    game: Game,
    point: DecisionPoint,
    *,
    opponent: Strategy,
    continuation: Strategy | None = None,
    samples: int = DEFAULT_SAMPLES,
) -> MoveValues:
    """Every legal move's value at ``point`` (see the module doc); a point that does not rebuild
    is a `GameError`."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise GameError(f"samples must be a positive integer, got {samples!r}")
    continuation = continuation or EquilibriumPlay()
    state = point_state(game, point)
    positions = tuple(_information_set(game, point, opponent)) or ((state, 1.0),)
    values = MoveValues(game, point, state, opponent, continuation, samples, positions)
    legal = state.legal_actions() if not _large(state) else None
    try:
        if legal is None:
            values._value(game.equilibrium_action(state), exact=True)  # probes whether the strategies draw
        else:
            values.moves = {action: values._value(action, exact=True) for action in legal}
    except _NeedsRandom:
        values.exact = False
        if legal is not None:
            values.moves = {action: values._value(action, exact=False) for action in legal}
    return values


def _large(state: State) -> bool:
    from gtalign.envs._bargaining import BargainingState

    if isinstance(state, BargainingState) and not state.response_due:  # count the grid without listing it
        return state.game.steps + 1 > MAX_REGRET_MOVES
    return len(state.legal_actions()) > MAX_REGRET_MOVES


@dataclass(frozen=True)
class AnswerOutcome:
    """What one answer earns at a decision point.

    payoff, opponent_payoff: the learner's and the opponent's expected final payoffs (a forfeit:
    the accrued payoff plus the penalty for the learner, the accrued payoff for the opponent).
    valid: the answer named a legal move (``action``); else ``error`` says why. distance:
    `Game.move_distance` of the move (None for an invalid answer). best: the best value of any
    legal move there (None above `MAX_REGRET_MOVES`); regret: ``best - payoff`` (>= 0 up to
    rounding). is_equilibrium: the move is the equilibrium move.
    """

    payoff: float
    opponent_payoff: float
    valid: bool
    action: Action | None
    error: str
    distance: float | None
    best: float | None
    regret: float | None
    is_equilibrium: bool

    @property
    def forfeit(self) -> bool:
        return not self.valid


def answer_value(
    game: Game,
    point: DecisionPoint,
    text: str,
    *,
    opponent: Strategy,
    continuation: Strategy | None = None,
    samples: int = DEFAULT_SAMPLES,
    values: MoveValues | None = None,
) -> AnswerOutcome:
    """The payoff ``text`` earns at ``point``: read by `read_answer` as `Episode.submit` reads it
    (an echo of the point's prompt is invalid), played,
    and played out by ``continuation`` (default `EquilibriumPlay`) on the learner's seat and
    ``opponent`` on the other; an invalid answer forfeits there. ``values``: the point's
    `move_values`, computed once for many answers (then ``opponent``, ``continuation`` and
    ``samples`` are those it was made with). A point that does not rebuild is a `GameError`."""
    if values is None:
        values = move_values(game, point, opponent=opponent, continuation=continuation, samples=samples)
    elif values.point != point:
        raise GameError("values were computed for another decision point")
    state = values.state
    best = values.best
    parsed = read_answer(game, state, text, observation=point.observation)
    if isinstance(parsed, MoveError):
        mine, theirs = values.forfeit()
        return AnswerOutcome(mine, theirs, False, None, parsed.reason, None, best,
                             None if best is None else best - mine, False)
    mine, theirs = values.value(parsed)
    return AnswerOutcome(
        payoff=mine, opponent_payoff=theirs, valid=True, action=parsed, error="",
        distance=float(game.move_distance(state, parsed)), best=best,
        regret=None if best is None else best - mine, is_equilibrium=parsed == point.equilibrium,
    )


# --- the payoff range --------------------------------------------------------------------------------


def payoff_range(game: Game, seat: int, state: State | None = None) -> tuple[float, float]:
    """Bounds of the learner's value on ``seat``, forfeits included (for scaling rewards to [0, 1]):
    every value `answer_value` gives at ``state`` (default: anywhere) lies within them, except a sampled
    value of the infinitely repeated dilemma (a long run of rounds), whose bounds are those of the
    expectation. The infinitely repeated dilemma needs ``state``: its payoff is the points of the rounds
    played so far (undiscounted) plus the expected rest, so a late point's values pass any bound fixed
    from the start."""
    from gtalign.envs._bargaining import Bargaining
    from gtalign.envs._dilemma import PrisonersDilemma
    from gtalign.envs._signaling import Signaling

    if seat not in (0, 1):
        raise GameError(f"seat must be 0 or 1, got {seat!r}")
    custom = getattr(game, "payoff_range", None)
    if callable(custom):  # a game's own range wins, a subclass of a built-in game's too
        return _own_range(game, custom, seat)
    penalty = float(game.invalid_moves.penalty)
    if isinstance(game, PrisonersDilemma):  # final: S..T per round, weighted; a forfeit adds to what has accrued
        accrued = 0.0
        if game.rounds is None:  # this round and an expected 1/(1 - δ) - 1 more, on top of the rounds played
            weight = 1.0 / (1.0 - game.discount)
            accrued = float(getattr(state, "accrued", (0.0, 0.0))[seat])
        else:
            weight = math.fsum(game.discount**k for k in range(game.rounds))
        low, high = game.S * weight, game.T * weight
        return (accrued + min(low, min(0.0, low) + penalty), accrued + max(high, max(0.0, high) + penalty))
    if isinstance(game, Bargaining):  # nothing accrues before the agreement
        return (min(0.0, penalty), max(game.pie, penalty))
    if isinstance(game, Signaling):  # the learner's forfeit comes before anything accrues to it
        if seat == 0:
            values = [game.sender_value(t, s, a) for t in range(len(game.types)) for s in range(len(game.signals))
                      for a in range(len(game.actions))]
        else:
            values = [v for by_type in game.receiver_payoffs for by_signal in by_type for v in by_signal]
        return (min(*values, penalty), max(*values, penalty))
    raise GameError(f"no payoff range for {game.name!r}: give the game a payoff_range(seat) method")


def _own_range(game: Game, custom: Any, seat: int) -> tuple[float, float]:
    """A game's own ``payoff_range(seat)``, if it can scale: two finite numbers, low <= high (reversed
    or NaN bounds would scale every answer to 0 without a word); a GameError otherwise, or when it fails."""
    try:
        low, high = (float(x) for x in custom(seat))
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise GameError(f"{game.name!r}.payoff_range({seat}) failed or gave no two numbers: {exc}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or high < low:
        raise GameError(f"{game.name!r}.payoff_range gave ({low!r}, {high!r}), not two finite numbers, low <= high")
    return low, high
