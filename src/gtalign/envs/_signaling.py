"""A sequential signaling game: nature draws the sender's type, the sender sends a costly signal, the
receiver sees the signal (never the type) and acts.

`Signaling` is any finite such game, declared by tables: the types and their prior, the signals and
what each costs each type, the receiver's actions, and both players' payoffs per (type, signal,
action). Player 0 is the sender, player 1 the receiver. ``Signaling()`` is Spence's job-market game
(`spence`), and `beer_quiche` is Cho and Kreps' Beer-Quiche game.

The theory is brute force and exact on small games: `perfect_bayesian_equilibria` lists the
pure-strategy perfect Bayesian equilibria, `intuitive_criterion` is Cho and Kreps' refinement,
`reference_equilibrium` is the one equilibrium play follows, `normal_form` is the bimatrix an
independent solver (nashpy) can check, and `spence_separating_levels` / `spence_pooling_outcomes`
are Spence's closed forms.

>>> game = Signaling()
>>> spence_separating_levels(1.0, 2.0, 1.0, 0.5, (0, 0.5, 1, 1.5, 2, 2.5, 3))
(1.0, 1.5, 2.0)
>>> eq = reference_equilibrium(game)
>>> eq.kind, eq.sender, [s for s, a in zip(eq.signals, eq.receiver) if a == "high"]
('separating', ('0', '1'), ['1'])
>>> reference_equilibrium(beer_quiche()).sender
('beer', 'beer')
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import numpy as np

from gtalign.envs._core import CHANCE, TERMINAL, Action, Game, GameError, InvalidMovePolicy, MoveError, State
from gtalign.envs._play import EquilibriumPlay, Strategy

__all__ = [
    "SIGNALING_STRATEGIES",
    "HighestSignal",
    "Honest",
    "LowestSignal",
    "NormalForm",
    "RandomPlay",
    "Signaling",
    "SignalingEquilibrium",
    "SignalingState",
    "beer_quiche",
    "intuitive_criterion",
    "normal_form",
    "perfect_bayesian_equilibria",
    "reference_equilibrium",
    "spence",
    "spence_pooling_outcomes",
    "spence_separating_levels",
]

_TOL = 1e-9
"""Relative tolerance of every payoff comparison (scaled by 1 + the largest payoff)."""

_MAX_SENDER_STRATEGIES = 100_000
_MAX_NORMAL_FORM_CELLS = 1_000_000
_MAX_NUMBER_CHARS = 64  # a longer number in an answer cannot be a signal's label

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?(?P<tail>[/,]\d+(?:\.\d+)?)?(?!\w)")
_NEGATED = re.compile(r"(?:\b(?:not|never|cannot|no)|\b\w*n['\u2019]t)\s+(?:[a-z]+\s+)?$")
"""A negation right before a label, or one word before it ("not duel", "won't duel", "not to retreat",
"not drink quiche"): the answer is ambiguous. Looked for in a bounded window before each label."""
_MARKER = "answer:"


# --- validation --------------------------------------------------------------------------------


def _number(value: Any, where: str) -> float:
    """A finite real as a float; booleans are refused (JSON ``true`` is not a payoff)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise GameError(f"{where} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise GameError(f"{where} must be finite, got {value!r}")
    return number


def _numeric_value(label: str) -> float | None:
    return float(label) if _NUMBER.fullmatch(label) else None


def _labels(value: Any, where: str) -> tuple[str, ...]:
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise GameError(f"{where} must be a sequence of names, got {value!r}")
    labels = tuple(value)
    if not labels:
        raise GameError(f"{where} needs at least one name")
    seen: dict[str, str] = {}
    values: dict[float, str] = {}
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip() or label != label.strip() or "\n" in label:
            raise GameError(
                f"{where}[{i}] must be a non-empty name without surrounding spaces or line breaks, got {label!r}"
            )
        if _MARKER in label.lower():
            raise GameError(f"{where}[{i}] = {label!r} contains {_MARKER!r}, which answers use to mark the choice")
        key = label.lower()
        if key in seen:
            raise GameError(f"{where} repeats {label!r} (as {seen[key]!r}; names are compared case-insensitively)")
        seen[key] = label
        number = _numeric_value(label)
        if number is not None:
            if number in values:
                raise GameError(f"{where} has {values[number]!r} and {label!r}, the same number")
            values[number] = label
    for label in labels:  # a word label must not name a numeric one, or its own text would be ambiguous
        if _numeric_value(label) is None:
            for m in _NUMBER_IN_TEXT.finditer(label.lower()):
                if float(m.group()) in values:
                    raise GameError(f"{where}: {label!r} contains the number of {values[float(m.group())]!r}")
    return labels


def _table(value: Any, axes: Sequence[tuple[str, tuple[str, ...]]], where: str) -> Any:
    """Nested tuples of floats, one level per axis, from nested sequences or mappings keyed by label."""
    if not axes:
        return _number(value, where)
    (axis, labels), rest = axes[0], axes[1:]
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in labels]
        missing = [label for label in labels if label not in value]
        if unknown or missing:
            raise GameError(
                f"{where} must have one key per {axis} ({', '.join(map(repr, labels))}); "
                f"unknown: {unknown}, missing: {missing}"
            )
        items = [value[label] for label in labels]
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(labels):
            raise GameError(
                f"{where} has {len(value)} entries, expected {len(labels)} (one per {axis}: {', '.join(labels)})"
            )
        items = list(value)
    else:
        raise GameError(f"{where} must be a sequence (or a mapping by {axis}), got {type(value).__name__} {value!r}")
    return tuple(_table(v, rest, f"{where}[{label!r}]") for label, v in zip(labels, items))


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise GameError(f"{where} must be text, got {type(value).__name__} {value!r}")
    return value


def _fmt(x: float) -> str:
    """A payoff or level as short text: 2 not 2.0, 0.75, -1."""
    x = x + 0.0  # no "-0"
    return f"{x:g}" if abs(x) >= 1e-4 or x == 0 else repr(x)


def _level_label(x: float) -> str:
    """The exact shortest text of a number: 1 not 1.0, 0.5, 1e-05."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"


def _choices(labels: Sequence[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


# --- Spence and Beer-Quiche tables -------------------------------------------------------------

_SPENCE_STORY = (
    "A worker's productivity is low (L) or high (H). The worker chooses an education level; education "
    "does not raise productivity, but each level costs a high-productivity worker less than a low one. "
    "The employer sees the education level, never the productivity, and pays a low wage (the low "
    "productivity) or a high wage (the high productivity); the employer wants the wage to match the "
    "worker's productivity."
)


def _spence_tables(
    theta_low: float, theta_high: float, prior_high: float, cost_low: float, cost_high: float, levels: Sequence[float]
) -> dict[str, Any]:
    theta_low, theta_high = _number(theta_low, "theta_low"), _number(theta_high, "theta_high")
    prior_high = _number(prior_high, "prior_high")
    cost_low, cost_high = _number(cost_low, "cost_low"), _number(cost_high, "cost_high")
    if theta_high <= theta_low:
        raise GameError(f"theta_high must exceed theta_low, got theta_low={theta_low!r}, theta_high={theta_high!r}")
    if not 0 < prior_high < 1:
        raise GameError(f"prior_high must be in (0, 1), got {prior_high!r}")
    if not cost_low > cost_high > 0:
        raise GameError(
            "costs must satisfy cost_low > cost_high > 0 (single crossing), "
            f"got cost_low={cost_low!r}, cost_high={cost_high!r}"
        )
    if isinstance(levels, str) or not isinstance(levels, Sequence) or not levels:
        raise GameError(f"levels must be a non-empty sequence of education levels, got {levels!r}")
    grid = tuple(_number(e, f"levels[{i}]") for i, e in enumerate(levels))
    for i, e in enumerate(grid):
        if e < 0:
            raise GameError(f"levels[{i}] must be non-negative, got {e!r}")
        if i and e <= grid[i - 1]:
            raise GameError(f"levels must be strictly increasing, got levels[{i - 1}]={grid[i - 1]!r}, levels[{i}]={e!r}")
    wages = (theta_low, theta_high)
    thetas = (theta_low, theta_high)
    costs = (cost_low, cost_high)
    return {
        "types": ("L", "H"),
        "prior": (1.0 - prior_high, prior_high),
        "signals": tuple(_level_label(e) for e in grid),
        "actions": ("low", "high"),
        "costs": tuple(tuple(c * e for e in grid) for c in costs),
        "sender_payoffs": tuple(tuple(wages for _ in grid) for _ in thetas),
        "receiver_payoffs": tuple(tuple(tuple(0.0 - (w - th) ** 2 + 0.0 for w in wages) for _ in grid) for th in thetas),
        "title": "Job-market signaling (Spence)",
        "story": _SPENCE_STORY,
        "roles": ("worker", "employer"),
        "nouns": ("productivity", "education level", "wage"),
    }


_SPENCE_LEVELS = (0, 0.5, 1, 1.5, 2, 2.5, 3)
_SPENCE = _spence_tables(1.0, 2.0, 0.5, 1.0, 0.5, _SPENCE_LEVELS)


# --- the game ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signaling(Game):
    """A finite sequential signaling game. Player 0 (sender) learns its type, drawn by nature from
    ``prior``, and sends a signal; player 1 (receiver) sees the signal, not the type, and acts.

    Tables are nested sequences (or mappings keyed by label), outermost axis first:
    ``costs[type][signal]``, ``sender_payoffs[type][signal][action]`` (before the signal's cost) and
    ``receiver_payoffs[type][signal][action]``. The sender gets ``sender_payoffs - costs``; the cost
    is paid when the signal is sent, so a receiver's forfeit leaves the sender ``-cost``.

    The defaults are Spence's job-market game, `spence` with its defaults: types L/H with
    productivities 1 and 2, prior 1/2 each; education levels 0, 0.5, ..., 3 costing the L type
    ``1 * e`` and the H type ``0.5 * e``; the employer pays the wage ``low`` = 1 or ``high`` = 2, so
    the worker gets ``wage - c * e`` and the employer ``-(wage - productivity) ** 2``.

    ``title``, ``story``, ``roles`` (sender, receiver) and ``nouns`` (type, signal, action) only
    word the prompts; pass your own with your own tables. Answers name a label, case-insensitively;
    a numeric label is also matched by value (``"1.50"`` is level ``1.5``).

    ``invalid_moves`` defaults to two re-asks and a forfeit penalty below every payoff of the
    tables: -1, or ``floor(worst payoff) - 1`` when some valid play pays -1 or less (Spence's
    defaults: -3), so an unreadable answer never beats a valid one; a mapping without ``penalty``
    gets the same penalty.
    """

    types: tuple[str, ...] = _SPENCE["types"]
    prior: tuple[float, ...] = _SPENCE["prior"]
    signals: tuple[str, ...] = _SPENCE["signals"]
    actions: tuple[str, ...] = _SPENCE["actions"]
    costs: tuple[tuple[float, ...], ...] = _SPENCE["costs"]
    sender_payoffs: tuple[tuple[tuple[float, ...], ...], ...] = _SPENCE["sender_payoffs"]
    receiver_payoffs: tuple[tuple[tuple[float, ...], ...], ...] = _SPENCE["receiver_payoffs"]
    title: str = _SPENCE["title"]
    story: str = _SPENCE["story"]
    roles: tuple[str, str] = _SPENCE["roles"]
    nouns: tuple[str, str, str] = _SPENCE["nouns"]
    invalid_moves: InvalidMovePolicy | None = None

    name: ClassVar[str] = "signaling"

    def __post_init__(self) -> None:
        def put(attr: str, value: Any) -> None:
            object.__setattr__(self, attr, value)

        put("types", _labels(self.types, "types"))
        put("signals", _labels(self.signals, "signals"))
        put("actions", _labels(self.actions, "actions"))
        t_axis, s_axis, a_axis = ("type", self.types), ("signal", self.signals), ("action", self.actions)
        prior = _table(self.prior, [t_axis], "prior")
        for label, p in zip(self.types, prior):
            if p <= 0:
                raise GameError(f"prior[{label!r}] must be positive, got {p!r} (leave out a type that never occurs)")
        if abs(sum(prior) - 1.0) > 1e-9:
            raise GameError(f"prior must sum to 1, got {sum(prior)!r} ({dict(zip(self.types, prior))})")
        put("prior", prior)
        put("costs", _table(self.costs, [t_axis, s_axis], "costs"))
        put("sender_payoffs", _table(self.sender_payoffs, [t_axis, s_axis, a_axis], "sender_payoffs"))
        put("receiver_payoffs", _table(self.receiver_payoffs, [t_axis, s_axis, a_axis], "receiver_payoffs"))
        put("title", _text(self.title, "title"))
        put("story", _text(self.story, "story"))
        for attr, size in (("roles", 2), ("nouns", 3)):
            given = getattr(self, attr)
            if isinstance(given, str) or not isinstance(given, Sequence) or len(given) != size:
                raise GameError(f"{attr} must be {size} names, got {given!r}")
            put(attr, tuple(_text(x, f"{attr}[{i}]") for i, x in enumerate(given)))
        policy = {} if self.invalid_moves is None else self.invalid_moves
        # a forfeit must cost more than any valid play, or refusing to answer could pay
        worst = min(min(self.sender_value(t, s, a), self.receiver_value(t, s, a)) for t in range(len(self.types))
                    for s in range(len(self.signals)) for a in range(len(self.actions)))
        put("invalid_moves", InvalidMovePolicy.coerce(policy, min(InvalidMovePolicy().penalty, float(math.floor(worst)) - 1.0)))

    # --- payoffs by index -------------------------------------------------------------------

    def sender_value(self, t: int, s: int, a: int) -> float:
        """The sender's payoff, the signal's cost subtracted (by index)."""
        return self.sender_payoffs[t][s][a] - self.costs[t][s]

    def receiver_value(self, t: int, s: int, a: int) -> float:
        return self.receiver_payoffs[t][s][a]

    @cached_property
    def tolerance(self) -> float:
        """Absolute tolerance of payoff comparisons in the theory (ties within it are ties)."""
        top = max(abs(x) for table in (self.costs, self.sender_payoffs, self.receiver_payoffs) for x in _flat(table))
        return _TOL * (1.0 + 2.0 * top)

    @cached_property
    def reference(self) -> SignalingEquilibrium | None:
        """`reference_equilibrium` of this game, computed once."""
        return reference_equilibrium(self)

    # --- Game -------------------------------------------------------------------------------

    def new_initial_state(self) -> SignalingState:
        return SignalingState(self)

    def parse_move(self, text: str, state: State) -> Action | MoveError:
        if not isinstance(text, str):
            return MoveError(f"an answer must be text, got {type(text).__name__}")
        player = state.current_player
        if player == 0:
            return _parse_choice(text, self.signals, self.nouns[1])
        if player == 1:
            return _parse_choice(text, self.actions, self.nouns[2])
        return MoveError("no player is to move here (nature moves or the game is over)")

    def format_move(self, action: Action, state: State) -> str:
        if action not in state.legal_actions():
            raise GameError(f"{action!r} is not a legal move here; legal: {list(state.legal_actions())}")
        return str(action)

    def params(self) -> dict[str, Any]:
        """Every constructor argument as JSON-ready values: ``Signaling(**game.params()) == game``."""

        def lists(x: Any) -> Any:
            return [lists(v) for v in x] if isinstance(x, tuple) else x

        return {
            "types": list(self.types),
            "prior": list(self.prior),
            "signals": list(self.signals),
            "actions": list(self.actions),
            "costs": lists(self.costs),
            "sender_payoffs": lists(self.sender_payoffs),
            "receiver_payoffs": lists(self.receiver_payoffs),
            "title": self.title,
            "story": self.story,
            "roles": list(self.roles),
            "nouns": list(self.nouns),
            "invalid_moves": {"retries": self.invalid_moves.retries, "penalty": self.invalid_moves.penalty},
        }

    def equilibrium_action(self, state: State) -> Action:
        """The move under `reference_equilibrium`; `GameError` when the game has no pure PBE."""
        ref = self.reference
        if ref is None:
            raise GameError(
                f"{self.title!r} has no pure-strategy perfect Bayesian equilibrium, so equilibrium play is "
                "undefined (mixed equilibria are not computed)"
            )
        if not isinstance(state, SignalingState) or state.game != self:
            raise GameError(f"{state!r} is not a state of this game")
        player = state.current_player
        if player == 0:
            return ref.sender[self.types.index(state.sender_type)]
        if player == 1:
            return ref.receiver[self.signals.index(state.signal)]
        raise GameError("no player is to move here (nature moves or the game is over)")

    def move_distance(self, state: State, action: Action) -> float:
        """Numeric signals (education levels): the distance to the equilibrium level over the
        levels' range; otherwise 0 for the equilibrium move and 1 for any other."""
        values = [_numeric_value(s) for s in self.signals]
        if state.current_player == 0 and None not in values and len(values) > 1 and action in self.signals:
            span = max(values) - min(values)  # type: ignore[type-var]
            chosen = values[self.signals.index(action)]
            target = values[self.signals.index(self.equilibrium_action(state))]
            return abs(chosen - target) / span  # type: ignore[operator]
        return super().move_distance(state, action)


def _flat(table: Any) -> Iterator[float]:
    if isinstance(table, tuple):
        for x in table:
            yield from _flat(x)
    else:
        yield table


def spence(
    theta_low: float = 1.0,
    theta_high: float = 2.0,
    prior_high: float = 0.5,
    cost_low: float = 1.0,
    cost_high: float = 0.5,
    levels: Sequence[float] = _SPENCE_LEVELS,
    invalid_moves: InvalidMovePolicy | None = None,
) -> Signaling:
    """Spence's job-market signaling game with linear costs and two wages.

    Types L and H (productivities ``theta_low < theta_high``, ``P(H) = prior_high``); signals are the
    education ``levels`` (labels like ``"1.5"``), costing type θ ``cost_θ * e`` with
    ``cost_low > cost_high > 0``; the employer pays ``low`` = θL or ``high`` = θH. Worker:
    ``wage - cost_θ * e``; employer: ``-(wage - θ) ** 2``.
    """
    tables = _spence_tables(theta_low, theta_high, prior_high, cost_low, cost_high, levels)
    return Signaling(**tables, invalid_moves=invalid_moves)


def beer_quiche(prior_strong: float = 0.9, invalid_moves: InvalidMovePolicy | None = None) -> Signaling:
    """Cho and Kreps' Beer-Quiche game (QJE 1987; Fudenberg and Tirole, Game Theory, 1991, §11.2).

    A newcomer is ``weak`` (prior 0.1) or ``strong`` (prior 0.9) and has ``quiche`` or ``beer``
    for breakfast; the bully sees the breakfast and chooses to ``duel`` or ``retreat``. The newcomer
    gets 1 for its preferred breakfast (weak: quiche, strong: beer) plus 2 if there is no duel:

    ========  ===============  ==============  =================  ================
    newcomer  quiche, retreat  quiche, duel    beer, retreat      beer, duel
    weak      3                1               2                  0
    strong    2                0               3                  1
    ========  ===============  ==============  =================  ================

    As tables: sender payoff 3 (retreat) or 1 (duel), minus a cost of 1 for the non-preferred
    breakfast. The bully gets 1 for dueling a weak newcomer or retreating from a strong one, else 0.
    Pure PBEs: pooling on beer (duel after quiche) and pooling on quiche (duel after beer); only the
    first passes the intuitive criterion.
    """
    p = _number(prior_strong, "prior_strong")
    if not 0 < p < 1:
        raise GameError(f"prior_strong must be in (0, 1), got {prior_strong!r}")
    return Signaling(
        types=("weak", "strong"),
        prior=(1.0 - p, p),
        signals=("quiche", "beer"),
        actions=("duel", "retreat"),
        costs=((0.0, 1.0), (1.0, 0.0)),
        sender_payoffs=(((1.0, 3.0), (1.0, 3.0)), ((1.0, 3.0), (1.0, 3.0))),
        receiver_payoffs=(((1.0, 0.0), (1.0, 0.0)), ((0.0, 1.0), (0.0, 1.0))),
        title="Beer-Quiche (Cho and Kreps)",
        story=(
            "A newcomer is weak or strong. At breakfast the newcomer has quiche or beer: a weak newcomer "
            "prefers quiche, a strong one prefers beer. A bully sees the breakfast, never the newcomer's "
            "strength, and then chooses to duel or to retreat; the bully wants to duel a weak newcomer and "
            "to avoid a strong one."
        ),
        roles=("newcomer", "bully"),
        nouns=("strength", "breakfast", "response"),
        invalid_moves=invalid_moves,
    )


# --- states and prompts ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalingState(State):
    """A position: nature's draw, the signal and the action so far (None: not yet made)."""

    game: Signaling
    sender_type: str | None = None
    signal: str | None = None
    action: str | None = None

    @property
    def current_player(self) -> int:
        if self.sender_type is None:
            return CHANCE
        if self.signal is None:
            return 0
        if self.action is None:
            return 1
        return TERMINAL

    def legal_actions(self) -> tuple[Action, ...]:
        player = self.current_player
        if player == CHANCE:
            return self.game.types
        if player == 0:
            return self.game.signals
        if player == 1:
            return self.game.actions
        return ()

    def chance_outcomes(self) -> tuple[tuple[Action, float], ...]:
        if self.current_player != CHANCE:
            raise GameError("the sender's type is already drawn")
        return tuple(zip(self.game.types, self.game.prior))

    def apply(self, action: Action) -> SignalingState:
        legal = self.legal_actions()
        if action not in legal:
            raise GameError(f"{action!r} is not a legal move here; legal: {list(legal)}")
        player = self.current_player
        if player == CHANCE:
            return SignalingState(self.game, str(action))
        if player == 0:
            return SignalingState(self.game, self.sender_type, str(action))
        return SignalingState(self.game, self.sender_type, self.signal, str(action))

    def _indices(self) -> tuple[int, int | None, int | None]:
        g = self.game
        t = g.types.index(self.sender_type)
        s = None if self.signal is None else g.signals.index(self.signal)
        a = None if self.action is None else g.actions.index(self.action)
        return t, s, a

    def returns(self) -> tuple[float, float]:
        if self.sender_type is None or self.signal is None:
            return (0.0, 0.0)
        t, s, a = self._indices()
        if a is None:
            return (-self.game.costs[t][s], 0.0)  # type: ignore[index]
        return (self.game.sender_value(t, s, a), self.game.receiver_value(t, s, a))  # type: ignore[arg-type]

    def observation(self, player: int) -> str:
        if player not in (0, 1):
            raise GameError(f"player must be 0 (sender) or 1 (receiver), got {player!r}")
        g = self.game
        sender, receiver = g.roles
        type_noun, signal_noun, action_noun = g.nouns
        head = f"{g.title}\n{g.story}".strip()
        odds = ", ".join(f"{t} with probability {_fmt(p)}" for t, p in zip(g.types, g.prior))
        current = self.current_player
        if player == 0:
            if current == CHANCE:
                return f"{head}\n\nYou are the {sender}. Nature has not drawn your {type_noun} yet."
            t, s, a = self._indices()
            if current == 0:
                return f"{head}\n\n{_sender_prompt(g, t, odds)}"
            if a is None:
                return (
                    f"{head}\n\nYou are the {sender}; your {type_noun} is {self.sender_type}. You chose the "
                    f"{signal_noun} {self.signal}. Waiting for the {receiver}'s {action_noun}."
                )
            return (
                f"{head}\n\nThe game is over. Your {type_noun}: {self.sender_type}; your {signal_noun}: "
                f"{self.signal}; the {receiver}'s {action_noun}: {self.action}. Your payoff: {_fmt(self.returns()[0])}."
            )
        # the receiver: never the type, whatever the stage
        if self.signal is None:
            return f"{head}\n\nYou are the {receiver}. Waiting for the {sender}'s {signal_noun}."
        s = g.signals.index(self.signal)
        if current == 1:
            return f"{head}\n\n{_receiver_prompt(g, s, odds)}"
        return (
            f"{head}\n\nThe game is over. The {sender}'s {signal_noun}: {self.signal}; your {action_noun}: "
            f"{self.action}."
        )


def _how_to_answer(noun: str, labels: Sequence[str]) -> str:
    example = labels[len(labels) // 2]
    return (
        f"Answer with exactly one {noun}: {_choices(labels)}. Reply with the choice alone (for example: {example}), "
        f'or end your reply with a line "Answer: {example}".'
    )


def _sender_prompt(g: Signaling, t: int, odds: str) -> str:
    sender, receiver = g.roles
    type_noun, signal_noun, action_noun = g.nouns
    rows = "\n".join(
        f"  {signal} (costs you {_fmt(g.costs[t][s])}): "
        + ", ".join(f"{action} -> {_fmt(g.sender_value(t, s, a))}" for a, action in enumerate(g.actions))
        for s, signal in enumerate(g.signals)
    )
    return (
        f"You are the {sender}. Nature drew your {type_noun}: {g.types[t]}. Only you know it; the {receiver} "
        f"knows only the odds: {odds}.\n"
        f"You choose {_a(signal_noun)}. The {receiver} sees it, never your {type_noun}, and then chooses "
        f"{_a(action_noun)}: {_choices(g.actions)}.\n\n"
        f"Your payoff as {g.types[t]}, for each {signal_noun} and each {action_noun} of the {receiver} "
        f"(the {signal_noun}'s cost already subtracted):\n{rows}\n"
        f"The {receiver}'s payoff, by your {type_noun}:\n{_receiver_rows(g, range(len(g.signals)))}\n\n"
        f"{_how_to_answer(signal_noun, g.signals)}"
    )


def _receiver_rows(g: Signaling, signals: Sequence[int]) -> str:
    """The receiver's payoffs per type, one line per type (and per signal when they depend on it)."""
    same = all(g.receiver_payoffs[t][s] == g.receiver_payoffs[t][signals[0]] for t in range(len(g.types)) for s in signals)
    lines = []
    for t, label in enumerate(g.types):
        for s in signals[:1] if same else signals:
            where = "" if same else f" after {g.signals[s]}"
            cells = ", ".join(f"{action} -> {_fmt(g.receiver_value(t, s, a))}" for a, action in enumerate(g.actions))
            lines.append(f"  if {label}{where}: {cells}")
    return "\n".join(lines)


def _receiver_prompt(g: Signaling, s: int, odds: str) -> str:
    sender, receiver = g.roles
    type_noun, signal_noun, action_noun = g.nouns
    signal = g.signals[s]
    sender_rows = "\n".join(
        f"  if {label} (the {signal_noun} costs {_fmt(g.costs[t][s])}): "
        + ", ".join(f"{action} -> {_fmt(g.sender_value(t, s, a))}" for a, action in enumerate(g.actions))
        for t, label in enumerate(g.types)
    )
    return (
        f"You are the {receiver}. Nature drew the {sender}'s {type_noun}: {odds}. You do not see it.\n"
        f"The {sender} chose the {signal_noun}: {signal}.\n\n"
        f"Your payoff for each {action_noun}, by the {sender}'s {type_noun}:\n{_receiver_rows(g, [s])}\n"
        f"The {sender}'s payoff after this {signal_noun}, by {type_noun} (its cost subtracted):\n{sender_rows}\n\n"
        f"{_how_to_answer(action_noun, g.actions)}"
    )


# --- parsing -----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _matcher(labels: tuple[str, ...]) -> tuple[re.Pattern[str] | None, dict[str, int], dict[float, int]]:
    """The word pattern of the non-numeric labels (longest first), and the index of each label."""
    words = {label.lower(): i for i, label in enumerate(labels) if _numeric_value(label) is None}
    numbers = {v: i for i, label in enumerate(labels) if (v := _numeric_value(label)) is not None}
    if not words:
        return None, words, numbers
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)"), words, numbers


def _answer_region(lowered: str) -> str:
    """The text after the last ``answer:`` up to the end of that line (or the next line when it is
    empty); the whole text when there is no marker."""
    at = lowered.rfind(_MARKER)
    if at < 0:
        return lowered
    rest = lowered[at + len(_MARKER) :].lstrip()
    end = rest.find("\n")
    return rest if end < 0 else rest[:end]


def _parse_choice(text: str, labels: tuple[str, ...], noun: str) -> str | MoveError:
    """The one label ``text`` names; linear in the text (one regex pass each for words and numbers)."""
    pattern, words, numbers_ = _matcher(labels)
    region = _answer_region(text.lower())
    named: dict[int, None] = {}
    for m in pattern.finditer(region) if pattern is not None else ():
        negation = _NEGATED.search(region, max(0, m.start() - 32), m.start())
        if negation is not None:
            return MoveError(f"the answer negates {_a(noun)} ({region[negation.start():m.end()]!r}), which is "
                             f"ambiguous; name the one you choose: {_choices(labels)}")
        named[words[m.group()]] = None
    stray: list[str] = []
    for m in _NUMBER_IN_TEXT.finditer(region):
        token = m.group()
        if m.group("tail"):
            if not numbers_:  # no label is a number: "(1,3)" in a word-labelled game is text, not a choice
                continue
            shown = token if len(token) <= 20 else token[:20] + "..."
            return MoveError(f"{shown} is not a number the game reads (a fraction or a decimal comma): write it "
                             f"with a decimal point, one of: {_choices(labels)}")
        index = numbers_.get(float(token)) if len(token) <= _MAX_NUMBER_CHARS else None
        if index is not None:
            named[index] = None
        elif len(stray) < 3:
            stray.append(token if len(token) <= 20 else token[:20] + "...")
    if len(named) == 1:
        return labels[next(iter(named))]
    if named:
        return MoveError(
            f"the answer names more than one {noun} ({', '.join(labels[i] for i in named)}); name exactly one"
        )
    if not region.strip():
        return MoveError(f"the answer is empty; name one {noun}: {_choices(labels)}")
    if stray:
        return MoveError(f"{', '.join(stray)} is not {_a(noun)} here; name one of: {_choices(labels)}")
    return MoveError(f"the answer names no {noun}; name one of: {_choices(labels)}")


# --- theory ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalingEquilibrium:
    """A pure-strategy perfect Bayesian equilibrium, by label in the game's orders.

    ``sender[i]`` is the signal of type ``types[i]``; ``receiver[j]`` the action after
    ``signals[j]``; ``beliefs[j]`` the receiver's probability of each type after ``signals[j]``
    (Bayes' rule on the path, a belief that supports the action off it). ``sender_values`` is each
    type's payoff, ``receiver_value`` the receiver's expected payoff under the prior.
    """

    types: tuple[str, ...]
    signals: tuple[str, ...]
    sender: tuple[str, ...]
    receiver: tuple[str, ...]
    beliefs: tuple[tuple[float, ...], ...]
    on_path: tuple[bool, ...]
    sender_values: tuple[float, ...]
    receiver_value: float

    @property
    def kind(self) -> str:
        """``separating`` (every type its own signal), ``pooling`` (one signal) or ``partially pooling``."""
        distinct = len(set(self.sender))
        if distinct == len(self.types):
            return "separating"
        return "pooling" if distinct == 1 else "partially pooling"

    def signal_of(self, type_: str) -> str:
        return self.sender[self.types.index(type_)]

    def action_after(self, signal: str) -> str:
        return self.receiver[self.signals.index(signal)]


@dataclass(frozen=True)
class _Outcome:
    """An equilibrium outcome: the sender's map, the on-path responses, and for each signal the
    responses that keep every type from deviating (one on the path, possibly several off it)."""

    sigma: tuple[int, ...]
    admissible: tuple[tuple[int, ...], ...]
    values: tuple[float, ...]
    on_path: tuple[bool, ...]


def _posterior(game: Signaling, sigma: Sequence[int], s: int) -> tuple[float, ...]:
    mass = [p if sigma[t] == s else 0.0 for t, p in enumerate(game.prior)]
    total = sum(mass)
    return tuple(m / total for m in mass)


def _expected(game: Signaling, belief: Sequence[float], s: int, a: int) -> float:
    return sum(b * game.receiver_value(t, s, a) for t, b in enumerate(belief) if b)


def _best_actions(game: Signaling, belief: Sequence[float], s: int) -> tuple[int, ...]:
    values = [_expected(game, belief, s, a) for a in range(len(game.actions))]
    top = max(values)
    return tuple(a for a, v in enumerate(values) if v >= top - game.tolerance)


def _supporting_belief(game: Signaling, s: int, a: int, support: Sequence[int]) -> tuple[float, ...] | None:
    """A belief on the types in ``support`` to which ``a`` is a best response after ``s``, or None.

    Exact by vertex enumeration: the beliefs where ``a`` is optimal form a polytope in the simplex;
    when it is not empty, one of its vertices solves n - 1 of its tight constraints with sum 1.
    """
    n, tol = len(support), game.tolerance
    rows = [[1.0 if k == j else 0.0 for k in range(n)] for j in range(n)]  # mu_j >= 0 (pure beliefs first)
    rows += [
        [game.receiver_value(t, s, a) - game.receiver_value(t, s, b) for t in support]
        for b in range(len(game.actions))
        if b != a
    ]
    matrix = np.array(rows, dtype=float)
    for tight in itertools.combinations(range(len(rows)), n - 1):
        system = np.vstack([matrix[list(tight)], np.ones(n)])
        if np.linalg.matrix_rank(system) < n:
            continue
        mu = np.linalg.solve(system, np.eye(n)[-1])
        if np.all(matrix @ mu >= -tol):
            mu = np.clip(mu, 0.0, None)
            mu /= mu.sum()
            full = [0.0] * len(game.types)
            for k, t in enumerate(support):
                full[t] = float(mu[k])
            return tuple(full)
    return None


def _check_size(game: Signaling) -> None:
    count = len(game.signals) ** len(game.types)
    if count > _MAX_SENDER_STRATEGIES:
        raise GameError(
            f"brute force over {len(game.signals)}^{len(game.types)} = {count} sender strategies is too large "
            f"(limit {_MAX_SENDER_STRATEGIES}); use fewer signals or types"
        )


def _outcomes(game: Signaling) -> Iterator[_Outcome]:
    """Every pure PBE outcome, sender maps in lexicographic order (type 0 slowest)."""
    _check_size(game)
    n_types, n_signals, n_actions = len(game.types), len(game.signals), len(game.actions)
    tol = game.tolerance
    supportable = {
        (s, a): _supporting_belief(game, s, a, range(n_types)) is not None
        for s in range(n_signals)
        for a in range(n_actions)
    }
    for sigma in itertools.product(range(n_signals), repeat=n_types):
        path = sorted(set(sigma))
        best = [_best_actions(game, _posterior(game, sigma, s), s) for s in path]
        for choice in itertools.product(*best):
            rho = dict(zip(path, choice))
            values = tuple(game.sender_value(t, sigma[t], rho[sigma[t]]) for t in range(n_types))
            if any(game.sender_value(t, s, rho[s]) > values[t] + tol for t in range(n_types) for s in path):
                continue
            admissible: list[tuple[int, ...]] = []
            for s in range(n_signals):
                if s in rho:
                    admissible.append((rho[s],))
                    continue
                deterring = tuple(
                    a
                    for a in range(n_actions)
                    if supportable[s, a] and all(game.sender_value(t, s, a) <= values[t] + tol for t in range(n_types))
                )
                if not deterring:
                    break
                admissible.append(deterring)
            else:
                on_path = tuple(s in rho for s in range(n_signals))
                yield _Outcome(sigma, tuple(admissible), values, on_path)


def _receiver_value(game: Signaling, sigma: Sequence[int], rho: Sequence[int]) -> float:
    return sum(p * game.receiver_value(t, sigma[t], rho[sigma[t]]) for t, p in enumerate(game.prior))


def _equilibrium(
    game: Signaling, out: _Outcome, rho: Sequence[int], beliefs: Sequence[tuple[float, ...]]
) -> SignalingEquilibrium:
    return SignalingEquilibrium(
        types=game.types,
        signals=game.signals,
        sender=tuple(game.signals[s] for s in out.sigma),
        receiver=tuple(game.actions[a] for a in rho),
        beliefs=tuple(beliefs),
        on_path=out.on_path,
        sender_values=out.values,
        receiver_value=_receiver_value(game, out.sigma, rho),
    )


def perfect_bayesian_equilibria(
    game: Signaling, *, off_path: Literal["all", "one"] = "all"
) -> Iterator[SignalingEquilibrium]:
    """Every pure-strategy perfect Bayesian equilibrium, lazily, by brute force.

    A sender map (type -> signal) and a receiver map (signal -> action) form a PBE when each type's
    signal is optimal given the receiver's map; after each signal on the path the action is optimal
    for the Bayes posterior; after each signal off the path the action is optimal for *some* belief
    over the types (any belief is consistent there), found exactly by `_supporting_belief`.
    Payoff ties within ``game.tolerance`` count as ties. Exponential in the number of types and
    signals; meant for textbook games.

    ``off_path="all"``: receiver maps that differ only off the path are distinct equilibria (their
    number grows as 2^(unused signals) in Spence). ``"one"``: one equilibrium per outcome (sender map
    and on-path responses), off the path responding as `reference_equilibrium` does (its rule 4).
    """
    if off_path not in ("all", "one"):
        raise GameError(f"off_path must be 'all' or 'one', got {off_path!r}")
    types = range(len(game.types))
    for out in _outcomes(game):
        if off_path == "one":
            yield _with_off_path_choice(game, out)
            continue
        for rho in itertools.product(*out.admissible):
            beliefs = [
                _posterior(game, out.sigma, s) if out.on_path[s] else _supporting_belief(game, s, rho[s], types)
                for s in range(len(game.signals))
            ]
            yield _equilibrium(game, out, rho, beliefs)  # type: ignore[arg-type]


def _dominated(game: Signaling, s: int, values: Sequence[float]) -> list[int]:
    """Types for which ``s`` is equilibrium-dominated: no response optimal for any belief beats
    their equilibrium payoff."""
    responses = [a for a in range(len(game.actions)) if _supporting_belief(game, s, a, range(len(game.types)))]
    return [
        t
        for t in range(len(game.types))
        if values[t] > max(game.sender_value(t, s, a) for a in responses) + game.tolerance
    ]


def _passes_intuitive(game: Signaling, values: Sequence[float], on_path: Sequence[bool]) -> bool:
    for s, used in enumerate(on_path):
        if used:
            continue
        dominated = _dominated(game, s, values)
        rest = [t for t in range(len(game.types)) if t not in dominated]
        if not rest or not dominated:
            continue  # every type or no type excluded: beliefs stay unrestricted
        responses = [a for a in range(len(game.actions)) if _supporting_belief(game, s, a, rest)]
        for t in rest:
            if all(game.sender_value(t, s, a) > values[t] + game.tolerance for a in responses):
                return False
    return True


def intuitive_criterion(game: Signaling, equilibrium: SignalingEquilibrium) -> bool:
    """Whether the equilibrium's outcome survives Cho and Kreps' intuitive criterion: after no
    unused signal does some type gain under every response that is optimal for some belief on the
    types for which that signal is not equilibrium-dominated."""
    return _passes_intuitive(game, equilibrium.sender_values, equilibrium.on_path)


def reference_equilibrium(game: Signaling) -> SignalingEquilibrium | None:
    """The PBE that equilibrium play follows (None when there is no pure one), chosen by rule:

    1. outcomes that pass the intuitive criterion (all outcomes when none does);
    2. separating outcomes when there are any (Spence: the separating ones, not pooling);
    3. the highest expected sender payoff, then receiver payoff, then the first in enumeration
       order (Spence: the least-cost separating, Riley outcome; Beer-Quiche: pooling on beer);
    4. after a signal off the path: the best response (first in action order) to the prior restricted
       to the types for which the signal is not equilibrium-dominated (to all types when it is for
       every type) if that response deters every deviation, else the first response that does.
    """
    outcomes = list(_outcomes(game))
    if not outcomes:
        return None
    pool = [o for o in outcomes if _passes_intuitive(game, o.values, o.on_path)] or outcomes
    pool = [o for o in pool if len(set(o.sigma)) == len(game.types)] or pool
    prior = game.prior

    def rank(o: _Outcome) -> tuple[float, float]:
        rho = [acts[0] for acts in o.admissible]  # the receiver's on-path value ignores off-path choices
        sender = sum(p * v for p, v in zip(prior, o.values))
        return (round(sender / game.tolerance), round(_receiver_value(game, o.sigma, rho) / game.tolerance))

    return _with_off_path_choice(game, max(pool, key=rank))  # max: the first of the best


def _with_off_path_choice(game: Signaling, out: _Outcome) -> SignalingEquilibrium:
    """The outcome completed off the path by rule 4 of `reference_equilibrium`."""
    n_types, prior = len(game.types), game.prior
    rho, beliefs = [], []
    for s, acts in enumerate(out.admissible):
        if out.on_path[s]:
            rho.append(acts[0])
            beliefs.append(_posterior(game, out.sigma, s))
            continue
        dominated = _dominated(game, s, out.values)
        rest = [t for t in range(n_types) if t not in dominated] or list(range(n_types))
        mass = sum(prior[t] for t in rest)
        belief: tuple[float, ...] | None = tuple(prior[t] / mass if t in rest else 0.0 for t in range(n_types))
        a = _best_actions(game, belief, s)[0]  # type: ignore[arg-type]
        if a not in acts:
            a = acts[0]
            belief = _supporting_belief(game, s, a, range(n_types))
        rho.append(a)
        beliefs.append(belief)
    return _equilibrium(game, out, rho, beliefs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NormalForm:
    """The strategic form: pure sender strategies (a signal per type) as rows, pure receiver
    strategies (an action per signal) as columns, expected payoffs under the prior.

    Rows and columns are in lexicographic order of the game's labels (the first type / signal
    varies slowest); ``sender_payoffs`` and ``receiver_payoffs`` are nashpy's ``A`` and ``B``.
    """

    sender_strategies: tuple[tuple[str, ...], ...]
    receiver_strategies: tuple[tuple[str, ...], ...]
    sender_payoffs: tuple[tuple[float, ...], ...]
    receiver_payoffs: tuple[tuple[float, ...], ...]

    def index(self, equilibrium: SignalingEquilibrium) -> tuple[int, int]:
        """The (row, column) of an equilibrium's pure profile."""
        return self.sender_strategies.index(equilibrium.sender), self.receiver_strategies.index(equilibrium.receiver)


def normal_form(game: Signaling) -> NormalForm:
    """The bimatrix of ``game`` (|signals|^|types| rows, |actions|^|signals| columns)."""
    n_types, n_signals, n_actions = len(game.types), len(game.signals), len(game.actions)
    rows, columns = n_signals**n_types, n_actions**n_signals
    if rows * columns > _MAX_NORMAL_FORM_CELLS:
        raise GameError(f"the normal form has {rows} x {columns} cells, over the limit of {_MAX_NORMAL_FORM_CELLS}")
    sigmas = list(itertools.product(range(n_signals), repeat=n_types))
    rhos = list(itertools.product(range(n_actions), repeat=n_signals))
    prior = game.prior
    sender = tuple(
        tuple(sum(p * game.sender_value(t, sig[t], rho[sig[t]]) for t, p in enumerate(prior)) for rho in rhos)
        for sig in sigmas
    )
    receiver = tuple(tuple(_receiver_value(game, sig, rho) for rho in rhos) for sig in sigmas)
    return NormalForm(
        sender_strategies=tuple(tuple(game.signals[s] for s in sig) for sig in sigmas),
        receiver_strategies=tuple(tuple(game.actions[a] for a in rho) for rho in rhos),
        sender_payoffs=sender,
        receiver_payoffs=receiver,
    )


def spence_separating_levels(
    theta_low: float, theta_high: float, cost_low: float, cost_high: float, levels: Sequence[float]
) -> tuple[float, ...]:
    """The levels ``e*`` of a separating PBE of `spence` (L at the lowest level ``e0``, H at ``e*``):
    ``(θH - θL) / c_L <= e* - e0 <= (θH - θL) / c_H``, boundaries included (the indifferent type
    keeps its own signal), within a relative tolerance of 1e-9. With ``e0 = 0`` this is the issue's
    ``(θH - θL)/c_L <= e* <= (θH - θL)/c_H``.

    >>> spence_separating_levels(1, 2, 1, 0.5, (0, 0.5, 1, 1.5, 2, 2.5))
    (1.0, 1.5, 2.0)
    """
    grid = [float(e) for e in levels]
    e0, gap = min(grid), theta_high - theta_low
    low, high = gap / cost_low, gap / cost_high
    eps = _TOL * (1.0 + abs(high) + max(abs(e) for e in grid))
    return tuple(e for e in grid if low - eps <= e - e0 <= high + eps)


def spence_pooling_outcomes(
    theta_low: float, theta_high: float, prior_high: float, cost_low: float, levels: Sequence[float]
) -> tuple[tuple[float, str], ...]:
    """The pooling outcomes ``(level, wage)`` of `spence`: both types at ``e`` paid ``high`` when
    ``P(H) >= 1/2`` and ``e - e0 <= (θH - θL) / c_L`` (the L type would rather go to ``e0`` and be
    paid low), and both at ``e0`` paid ``low`` when ``P(H) <= 1/2``.

    >>> spence_pooling_outcomes(1, 2, 0.25, 1, (0, 0.5, 1))
    ((0.0, 'low'),)
    """
    grid = [float(e) for e in levels]
    e0, gap = min(grid), theta_high - theta_low
    eps = _TOL * (1.0 + abs(gap / cost_low) + max(abs(e) for e in grid))
    out = [(e, "high") for e in grid if prior_high >= 0.5 and e - e0 <= gap / cost_low + eps]
    if prior_high <= 0.5:
        out.insert(0, (e0, "low"))
    return tuple(out)


# --- fixed strategies --------------------------------------------------------------------------


def _game_of(state: State) -> Signaling:
    game = state.game
    if not isinstance(game, Signaling) or state.current_player not in (0, 1):
        raise GameError(f"a signaling strategy moves for the sender or the receiver, not at {state!r}")
    return game


@dataclass(frozen=True)
class LowestSignal:
    """Sender: the first signal (the lowest education level; quiche). Receiver: the first action
    (the low wage; duel)."""

    name: str = "lowest"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        _game_of(state)
        return state.legal_actions()[0]


@dataclass(frozen=True)
class HighestSignal:
    """Sender: the last signal (the highest education level; beer). Receiver: the last action (the
    high wage; retreat)."""

    name: str = "highest"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        _game_of(state)
        return state.legal_actions()[-1]


def _honest_signal(game: Signaling, t: int) -> int:
    n_types, n_signals = len(game.types), len(game.signals)
    return 0 if n_types == 1 else round(t * (n_signals - 1) / (n_types - 1))


@dataclass(frozen=True)
class Honest:
    """Type-revealing play, in the declared orders. Sender: the i-th of n types sends the signal at
    position ``round(i * (len(signals) - 1) / (n - 1))`` (L the lowest education and H the highest;
    weak quiche and strong beer). Receiver: takes the signal at face value: the best response
    (first in action order) to the prior restricted to the types whose honest signal it is, to the
    prior when it is none's."""

    name: str = "honest"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        game = _game_of(state)
        assert isinstance(state, SignalingState)
        if state.current_player == 0:
            return game.signals[_honest_signal(game, game.types.index(state.sender_type))]
        s = game.signals.index(state.signal)
        senders = [t for t in range(len(game.types)) if _honest_signal(game, t) == s] or range(len(game.types))
        mass = sum(game.prior[t] for t in senders)
        belief = [game.prior[t] / mass if t in senders else 0.0 for t in range(len(game.types))]
        return game.actions[_best_actions(game, belief, s)[0]]


@dataclass(frozen=True)
class RandomPlay:
    """A uniformly random legal move, from the player's own generator."""

    name: str = "random"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        _game_of(state)
        legal = state.legal_actions()
        return legal[int(rng.integers(len(legal)))]


SIGNALING_STRATEGIES: Mapping[str, Strategy] = MappingProxyType(
    {
        s.name: s
        for s in (EquilibriumPlay(), LowestSignal(), HighestSignal(), Honest(), RandomPlay())
    }
)
"""The fixed opponents of the signaling games by name: equilibrium, lowest, highest, honest, random."""
