"""Rubinstein alternating-offers bargaining over a pie, with offers on a finite grid.

Player 0 proposes in round 0 (rounds t = 0, 1, ...). An offer states the share the proposer
*keeps*; the responder would get the rest. The responder accepts (the game ends with that split)
or rejects, and the roles swap for the next round. An agreement in round t on the proposer
keeping x pays the proposer δ_p^t x and the responder δ_r^t (pie - x); no agreement by the last
round pays 0 to both. Offers are multiples of ``precision``, so every position has finitely many
moves and the subgame-perfect play of the game as implemented can be computed exactly.

Theory, as pure functions that check each other: `rubinstein_share` (the infinite game's unique
subgame-perfect split, Rubinstein 1982), `finite_horizon_share` (the finite game's closed form),
`Bargaining.solution` (backward induction on the grid, round by round) and `backward_induction`
(the same found by walking the game's own states).

>>> round(rubinstein_share(0.9, 0.9), 4), round(rubinstein_share(0.9, 0.5), 4)
(0.5263, 0.9091)
>>> game = Bargaining(0.9, 0.5)
>>> game.solution.keep[0]
0.9
>>> from gtalign.envs._play import play
>>> [r.text for r in play(game, [EquilibriumPlay(), EquilibriumPlay()]).records]
['offer 0.90', 'accept']
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from gtalign.envs._core import TERMINAL, Action, Game, GameError, InvalidMovePolicy, MoveError, State
from gtalign.envs._play import EquilibriumPlay, Strategy

__all__ = [
    "ACCEPT",
    "BARGAINING_STRATEGIES",
    "DEFAULT_MAX_ROUNDS",
    "REJECT",
    "Bargaining",
    "BargainingSolution",
    "BargainingState",
    "FairBargainer",
    "GreedyBargainer",
    "RandomBargainer",
    "backward_induction",
    "bargaining_strategy",
    "finite_horizon_share",
    "rubinstein_share",
]

ACCEPT = "accept"
REJECT = "reject"

DEFAULT_MAX_ROUNDS = 100
"""Where a game without a horizon is stopped (disagreement, 0 to both): δ^50 is below 1e-2 for
δ <= 0.9, so the first offers of the truncated game are those of the infinite one to 4 decimals."""

_MAX_GRID = 100_000  # offers per position: legal_actions stays a small tuple
_TIE = 1e-9  # relative to the pie: a responder indifferent within this accepts
_MAX_NUMBER_CHARS = 40  # longer digit strings are refused before float() sees them


def _real(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise GameError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _discount(value: Any, where: str) -> float:
    d = _real(value, where)
    if not 0.0 < d < 1.0:
        raise GameError(f"{where} must be a discount factor in (0, 1), got {value!r}")
    return d


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise GameError(f"{where} must be an integer >= 1, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Theory


def rubinstein_share(d1: float, d2: float) -> float:
    """The first proposer's share of the pie in the unique subgame-perfect equilibrium of the
    infinite game, (1 - δ2) / (1 - δ1 δ2); the first offer is accepted."""
    d1, d2 = _discount(d1, "d1"), _discount(d2, "d2")
    return (1.0 - d2) / (1.0 - d1 * d2)


def finite_horizon_share(d1: float, d2: float, horizon: int) -> float:
    """The first proposer's subgame-perfect share when at most ``horizon`` offers can be made.

    Backward induction: the last proposer keeps everything, and each earlier proposer keeps
    1 - δ_r x_next. Unrolled, with q = δ1 δ2 and horizon = 2m (+1): (1 - δ2)(1 - q^m)/(1 - q)
    (+ q^m), which tends to `rubinstein_share` as the horizon grows.

    >>> finite_horizon_share(0.9, 0.9, 1), round(finite_horizon_share(0.9, 0.9, 2), 4)
    (1.0, 0.1)
    """
    d1, d2 = _discount(d1, "d1"), _discount(d2, "d2")
    horizon = _positive_int(horizon, "horizon")
    m, odd = divmod(horizon, 2)
    q = d1 * d2
    share = (1.0 - d2) * (1.0 - q**m) / (1.0 - q)
    return share + q**m if odd else share


@dataclass(frozen=True)
class BargainingSolution:
    """Subgame-perfect play on the grid, round by round.

    ``keep[t]``: what the round-t proposer keeps, and the responder accepts. ``reservation[t]``: the
    least share the round-t responder accepts, its value of rejecting in round-t units (δ_r times
    what it keeps as the next proposer; 0 in the last round). ``payoffs``: each player's discounted
    payoff of equilibrium play from round 0.

    Agreement is immediate in every round, on any grid: the proposer can leave the responder the
    next round's grid offer x', which covers δ_r x', and keeping pie - x' beats waiting for
    δ_p (pie - x').
    """

    keep: tuple[float, ...]
    reservation: tuple[float, ...]
    payoffs: tuple[float, float]


# ---------------------------------------------------------------------------------------------
# The game


@dataclass(frozen=True)
class Bargaining(Game):
    """Rubinstein alternating offers: ``delta1`` discounts player 0 (the first proposer),
    ``delta2`` player 1.

    ``horizon`` is the number of offer rounds; None is the infinite game, stopped after
    ``max_rounds`` rounds without agreement with 0 to both. So every game here is finite, and
    `equilibrium_action` is the subgame-perfect play of the game as implemented (`solution`): at
    round 0 within ``(δ1 δ2)^(max_rounds // 2)`` of Rubinstein's split (plus the grid's rounding),
    while near the cap the proposers demand more, up to the whole pie in the last round.

    Offers are multiples of ``precision`` from 0 to ``pie`` (``pie / precision`` must be a whole
    number). An answer off the grid is rounded to the nearest grid point; an answer outside
    [0, pie] is refused. Numbers are in pie units; ``55%`` is 0.55 of the pie.
    """

    delta1: float = 0.9
    delta2: float = 0.9
    _: KW_ONLY
    pie: float = 1.0
    horizon: int | None = None
    precision: float = 0.01
    max_rounds: int = DEFAULT_MAX_ROUNDS
    invalid_moves: InvalidMovePolicy = InvalidMovePolicy()

    name: ClassVar[str] = "bargaining"

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta1", _discount(self.delta1, "delta1"))
        object.__setattr__(self, "delta2", _discount(self.delta2, "delta2"))
        pie = _real(self.pie, "pie")
        if pie <= 0:
            raise GameError(f"pie must be positive, got {self.pie!r}")
        object.__setattr__(self, "pie", pie)
        if self.horizon is not None:
            object.__setattr__(self, "horizon", _positive_int(self.horizon, "horizon"))
        object.__setattr__(self, "max_rounds", _positive_int(self.max_rounds, "max_rounds"))
        precision = _real(self.precision, "precision")
        if precision <= 0:
            raise GameError(f"precision must be positive, got {self.precision!r}")
        steps = pie / precision
        if round(steps) < 1 or abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or round(steps) > _MAX_GRID:
            raise GameError(
                f"precision {self.precision!r} must divide the pie {pie!r} into at most {_MAX_GRID} equal steps"
            )
        object.__setattr__(self, "precision", precision)
        object.__setattr__(self, "invalid_moves", InvalidMovePolicy.coerce(self.invalid_moves))  # a mapping, as in `params`

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Bargaining:
        """The game `params` describes (e.g. a transcript's ``params``)."""
        valid = ("delta1", "delta2", "pie", "horizon", "precision", "max_rounds", "invalid_moves")
        unknown = sorted(str(k) for k in params if k not in valid)
        if unknown:
            raise GameError(f"unknown bargaining parameters {unknown}; valid: {sorted(valid)}")
        return cls(**params)

    # -- the grid -----------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Grid steps from 0 to the pie (``pie / precision``)."""
        return round(self.pie / self.precision)

    @property
    def rounds(self) -> int:
        """The number of offer rounds actually played at most: ``horizon``, else ``max_rounds``."""
        return self.horizon if self.horizon is not None else self.max_rounds

    @cached_property
    def offers(self) -> tuple[float, ...]:
        """Every legal offer (a proposer's share), from 0 to the pie."""
        return tuple(self._share(k) for k in range(self.steps + 1))

    def _share(self, k: int) -> float:
        return self.pie if k == self.steps else k * self.pie / self.steps

    def _index(self, share: float) -> int:
        """The nearest grid index (clamped to the grid)."""
        return min(self.steps, max(0, math.floor(share * self.steps / self.pie + 0.5)))

    def snap(self, share: float) -> float:
        """The grid offer nearest ``share`` (clamped to [0, pie])."""
        return self._share(self._index(_real(share, "share")))

    def discount(self, player: int) -> float:
        if player not in (0, 1):
            raise GameError(f"player must be 0 or 1, got {player!r}")
        return self.delta1 if player == 0 else self.delta2

    @cached_property
    def _decimals(self) -> int:
        for d in range(10):
            scale = 10**d
            if all(abs(v * scale - round(v * scale)) <= 1e-6 for v in (self.pie, self.pie / self.steps)):
                return d
        return 9

    def format_share(self, share: float) -> str:
        return f"{share:.{self._decimals}f}"

    # -- Game --------------------------------------------------------------------------------

    def new_initial_state(self) -> BargainingState:
        return BargainingState(self)

    def params(self) -> Mapping[str, Any]:
        return {
            "delta1": self.delta1,
            "delta2": self.delta2,
            "pie": self.pie,
            "horizon": self.horizon,
            "precision": self.precision,
            "max_rounds": self.max_rounds,
            "invalid_moves": {"retries": self.invalid_moves.retries, "penalty": self.invalid_moves.penalty},
        }

    def parse_move(self, text: str, state: State) -> Action | MoveError:
        """``offer X`` (X the share the proposer keeps, ``0.55``, ``.55`` or ``55%``) when a proposal
        is due; ``accept`` or ``reject`` when a response is due. Case-insensitive, surrounding words
        allowed. The number right after "offer" or "keep" counts; without one, the answer's only
        number. Refused, with the reason: several different offers, a number outside [0, pie], a
        negated keyword ("not accept"), both accept and reject, no move at all."""
        if not isinstance(state, BargainingState) or state.game != self:
            return MoveError(f"not a position of this game: {type(state).__name__}")
        if state.is_terminal:
            return MoveError("the game is over: no move is due")
        if not isinstance(text, str):
            return MoveError(f"an answer must be text, got {type(text).__name__}")
        tokens = _scan(text)
        return self._parse_response(tokens) if state.response_due else self._parse_offer(tokens)

    def _parse_response(self, tokens: list[_Token]) -> Action | MoveError:
        kinds = {t.kind for t in tokens if t.kind in ("accept", "reject")}
        negated = next((t for t in tokens if t.negated and t.kind in ("accept", "reject")), None)
        if negated is not None:
            return MoveError(f"{_quote(negated.text)} is negated, which is ambiguous: answer 'accept' or 'reject'")
        if len(kinds) == 2:
            return MoveError("the answer says both accept and reject: answer with one of them")
        if not kinds:
            hint = " (you make your own offer in the next round, after rejecting)" if tokens else ""
            return MoveError(f"a response is due: answer 'accept' or 'reject'{hint}")
        return ACCEPT if "accept" in kinds else REJECT

    def _parse_offer(self, tokens: list[_Token]) -> Action | MoveError:
        f = self.format_share
        how = f"answer 'offer X' with X the share you keep, a multiple of {f(self.precision)} from 0 to {f(self.pie)}"
        negated = next((t for t in tokens if t.negated and t.kind == "offer"), None)
        if negated is not None:
            return MoveError(f"{_quote(negated.text)} is negated, which is ambiguous: {how}")
        numbers_ = [t for t in tokens if t.kind == "number"]
        if not numbers_:
            said = {t.kind for t in tokens} & {"accept", "reject"}
            hint = " (there is no offer to accept or reject yet)" if said else ""
            return MoveError(f"an offer is due{hint}: {how}")
        candidates = [t for t in numbers_ if t.after_keyword] or numbers_
        indices: dict[int, str] = {}
        seen: set[tuple[str, bool, bool]] = set()  # a number repeated is read once
        for token in candidates:
            if (token.digits, token.negative, token.percent) in seen:
                continue
            seen.add((token.digits, token.negative, token.percent))
            index = self._offer_index(token, how)
            if isinstance(index, MoveError):
                return index
            indices.setdefault(index, token.text)
        if len(indices) > 1:
            named = ", ".join(_quote(t) for t in list(indices.values())[:3])
            more = ", ..." if len(indices) > 3 else ""
            return MoveError(f"the answer names several offers ({named}{more}): give one")
        return self._share(next(iter(indices)))

    def _offer_index(self, token: _Token, how: str) -> int | MoveError:
        digits = token.digits
        if len(digits) > _MAX_NUMBER_CHARS:
            return MoveError(f"the number {_quote(token.text)} is too long: {how}")
        if token.negative:
            return MoveError(f"{_quote(token.text)} is negative: {how}")
        if token.fraction:
            return MoveError(f"{_quote(token.text)} is not a number the game reads (a fraction or a decimal comma): "
                             f"write it with a decimal point; {how}")
        value = float(digits)
        if token.percent:
            if value > 100.0:
                return MoveError(f"{_quote(token.text)} is more than the whole pie: {how}")
            value = value * self.pie / 100.0
        if value > self.pie * (1.0 + _TIE):
            whole = "." not in digits and value <= 100.0
            hint = f" (for a percentage write {digits}%)" if whole and not token.percent else ""
            return MoveError(f"{_quote(token.text)} is more than the pie of {self.format_share(self.pie)}{hint}: {how}")
        return self._index(value)

    def format_move(self, action: Action, state: State) -> str:
        state = _state(state)
        if action not in state.legal_actions():
            raise GameError(f"{action!r} is not a legal move here; legal: {_legal_summary(state)}")
        if state.response_due:
            return str(action)
        return f"offer {self.format_share(float(action))}"  # type: ignore[arg-type]

    # -- equilibrium -------------------------------------------------------------------------

    @cached_property
    def solution(self) -> BargainingSolution:
        """Subgame-perfect play of this game on its grid, by backward induction over `rounds`
        rounds (a responder indifferent between accepting and rejecting accepts)."""
        keep, reservation = [0.0] * self.rounds, [0.0] * self.rounds
        following = 0.0  # what the next round's proposer keeps (nothing after the last round)
        for t in reversed(range(self.rounds)):
            reservation[t] = self.discount(1 - t % 2) * following  # the responder proposes next
            keep[t] = following = self._share(self._most_kept(reservation[t]))
        return BargainingSolution(tuple(keep), tuple(reservation), (keep[0], self.pie - keep[0]))

    def _most_kept(self, reserve: float) -> int:
        """The largest grid index that leaves the responder at least ``reserve`` (ties accepted)."""
        tie = _TIE * self.pie
        k = min(self.steps, max(0, math.floor((self.pie - reserve) * self.steps / self.pie)))
        while k < self.steps and self.pie - self._share(k + 1) >= reserve - tie:
            k += 1
        while k > 0 and self.pie - self._share(k) < reserve - tie:
            k -= 1
        return k

    def equilibrium_action(self, state: State) -> Action:
        state = _state(state)
        if state.is_terminal:
            raise GameError("the game is over: no move is due")
        if state.response_due:
            reserve = self.solution.reservation[state.round]
            return ACCEPT if state.offered >= reserve - _TIE * self.pie else REJECT
        return self.solution.keep[state.round]

    def move_distance(self, state: State, action: Action) -> float:
        """A proposal: |offer - equilibrium offer| / pie; a response: 0 if it is the equilibrium
        response, else 1."""
        state = _state(state)
        if action not in state.legal_actions():
            raise GameError(f"{action!r} is not a legal move here; legal: {_legal_summary(state)}")
        target = self.equilibrium_action(state)
        if state.response_due:
            return 0.0 if action == target else 1.0
        return min(1.0, abs(float(action) - float(target)) / self.pie)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BargainingState(State):
    """A position: the offers made so far (each the proposer's share) and the responses to them.
    A response is due when there are more offers than responses."""

    game: Bargaining
    offers: tuple[float, ...] = ()
    responses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.game, Bargaining):
            raise GameError(f"a BargainingState needs a Bargaining game, got {type(self.game).__name__}")
        if len(self.offers) - len(self.responses) not in (0, 1):
            raise GameError(f"{len(self.offers)} offers cannot have {len(self.responses)} responses")

    @property
    def response_due(self) -> bool:
        return len(self.offers) > len(self.responses)

    @property
    def agreed(self) -> bool:
        return bool(self.responses) and self.responses[-1] == ACCEPT

    @property
    def round(self) -> int:
        """The current round (0-based); after an agreement, its round; after a disagreement, the
        number of rounds played."""
        return len(self.offers) - 1 if self.response_due or self.agreed else len(self.responses)

    @property
    def proposer(self) -> int:
        return self.round % 2

    @property
    def responder(self) -> int:
        return 1 - self.proposer

    @property
    def pending_offer(self) -> float | None:
        """The share the proposer keeps in the offer awaiting a response."""
        return self.offers[-1] if self.response_due else None

    @property
    def offered(self) -> float:
        """The responder's share in the offer awaiting a response."""
        if not self.response_due:
            raise GameError("no offer is awaiting a response")
        return self.game.pie - self.offers[-1]

    @property
    def current_player(self) -> int:
        if self.agreed or len(self.responses) >= self.game.rounds:
            return TERMINAL
        return self.responder if self.response_due else self.proposer

    def legal_actions(self) -> tuple[Action, ...]:
        if self.is_terminal:
            return ()
        return (ACCEPT, REJECT) if self.response_due else self.game.offers

    def is_legal(self, action: Action) -> bool:
        """Without listing the grid (up to 100,001 offers): a response, or an offer on the grid."""
        if self.is_terminal:
            return False
        if self.response_due:
            return action in (ACCEPT, REJECT)
        if isinstance(action, bool) or not isinstance(action, numbers.Real) or not math.isfinite(action):
            return False
        return self.game._share(self.game._index(float(action))) == action

    def apply(self, action: Action) -> BargainingState:
        if self.is_terminal:
            raise GameError(f"the game is over: cannot apply {action!r}")
        if self.response_due:
            if action not in (ACCEPT, REJECT):
                raise GameError(f"a response is due: {action!r} is not {ACCEPT!r} or {REJECT!r}")
            return BargainingState(self.game, self.offers, (*self.responses, str(action)))
        game = self.game
        if isinstance(action, bool) or not isinstance(action, numbers.Real) or not math.isfinite(action):
            raise GameError(f"an offer is due: {action!r} is not a share of the pie")
        share = game._share(game._index(float(action)))
        if share != action:
            raise GameError(
                f"offer {action!r} is not on the grid (multiples of {game.precision!r} from 0 to {game.pie!r}); "
                "use Bargaining.snap"
            )
        return BargainingState(game, (*self.offers, share), self.responses)

    def returns(self) -> tuple[float, float]:
        if not self.agreed:
            return (0.0, 0.0)
        t, kept = len(self.offers) - 1, self.offers[-1]
        p = t % 2
        out = [0.0, 0.0]
        out[p] = self.game.discount(p) ** t * kept
        out[1 - p] = self.game.discount(1 - p) ** t * (self.game.pie - kept)
        return (out[0], out[1])

    def observation(self, player: int) -> str:
        if player not in (0, 1):
            raise GameError(f"player must be 0 or 1, got {player!r}")
        return "\n".join([*_rules(self.game, player), "", *_history(self, player), "", *_now(self, player)])


# ---------------------------------------------------------------------------------------------
# Observations


def _num(x: float) -> str:
    return f"{x:.6g}"


def _rules(game: Bargaining, player: int) -> list[str]:
    f, you, other = game.format_share, game.discount(player), game.discount(1 - player)
    mine, theirs = ("1, 3, 5", "2, 4, 6") if player == 0 else ("2, 4, 6", "1, 3, 5")
    if game.horizon is not None:
        end = f"- If no offer has been accepted after round {game.horizon}, the game ends and both players get 0."
    else:
        end = (
            f"- There is no fixed last round, but if no offer has been accepted after round {game.max_rounds}, "
            "the game is stopped and both players get 0."
        )
    return [
        f"You are playing a bargaining game with another player over a pie of size {f(game.pie)}.",
        "Rules:",
        f"- The players take turns making offers: you make the offers in rounds {mine} and so on; "
        f"the other player in rounds {theirs} and so on.",
        "- An offer states the share of the pie that the player making it KEEPS; the other player gets the rest.",
        "- The player receiving an offer accepts it (the game ends with that split) or rejects it "
        "(the next round begins and the player who rejected makes the next offer).",
        f"- Waiting costs: a share s agreed in round n is worth s x {_num(you)}^(n-1) to you "
        f"and s x {_num(other)}^(n-1) to the other player.",
        end,
        f"- Offers are multiples of {f(game.precision)} from 0 to {f(game.pie)}.",
    ]


def _history(state: BargainingState, player: int) -> list[str]:
    game, f = state.game, state.game.format_share
    if not state.offers:
        return ["No offers have been made yet."]
    lines = ["So far:"]
    for t, kept in enumerate(state.offers):
        who, whom = ("you", "the other player") if t % 2 == player else ("the other player", "you")
        line = f"- Round {t + 1}: {who} offered to keep {f(kept)} ({whom} would get {f(game.pie - kept)})"
        if t < len(state.responses):
            line += f"; {whom} {state.responses[t]}ed."
        else:
            line += "; waiting for the answer."
        lines.append(line)
    return lines


def _now(state: BargainingState, player: int) -> list[str]:
    game, f = state.game, state.game.format_share
    if state.is_terminal:
        payoff = state.returns()[player]
        if state.agreed:
            t, kept = state.round, state.offers[-1]
            share = kept if t % 2 == player else game.pie - kept
            return [
                f"The game is over: agreement in round {t + 1}; your share {f(share)} is worth {_num(payoff)} to you."
            ]
        return [f"The game is over: no agreement after {state.round} rounds; both players get 0."]
    t = state.round
    worth = game.discount(player) ** t
    last = " This is the last round: if the offer is rejected, both players get 0." if t + 1 == game.rounds else ""
    if state.response_due:
        kept = state.offers[-1]
        if state.current_player != player:
            return [f"Round {t + 1}: waiting for the other player to accept or reject your offer.{last}"]
        offered = game.pie - kept
        return [
            f"Round {t + 1}: the other player offers to keep {f(kept)} and give you {f(offered)}. "
            f"Accepting now is worth {f(offered)} x {_num(worth)} = {_num(offered * worth)} to you.{last}",
            "Answer with one word: accept or reject.",
        ]
    if state.current_player != player:
        return [f"Round {t + 1}: waiting for the other player to make an offer.{last}"]
    example = game.snap(game.pie * 0.6)
    return [
        f"Round {t + 1}: it is your turn to make an offer. A share agreed now is worth {_num(worth)} times "
        f"its size to you.{last}",
        f"Answer with 'offer X', where X is the share of the pie YOU KEEP (a multiple of {f(game.precision)} "
        f"from 0 to {f(game.pie)}); the other player would get {f(game.pie)} - X. "
        f"For example, 'offer {f(example)}' keeps {f(example)} for you and gives {f(game.pie - example)} "
        "to the other player.",
    ]


# ---------------------------------------------------------------------------------------------
# Parsing: one linear regex pass into tokens


_TOKEN = re.compile(
    r"(?P<neg>\b(?:not|never|cannot|no)\b|n['\u2019]t\b)"
    r"|(?P<accept>\b(?:accept|agree)\w*)"
    r"|(?P<reject>\b(?:reject|decline|refuse|disagree)\w*)"
    r"|(?P<offer>\b(?:offer|keep)\w*)"
    r"|(?P<number>(?<![\w.])(?P<sign>-?)(?P<digits>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?P<tail>[/,][0-9]+(?:\.[0-9]+)?)?(?P<percent>[ \t]*%)?)",
    re.IGNORECASE,
)
_KEYWORD_GAP = re.compile(r"[\s:=]*(?:(?:of|is|at|to)\s+)?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "accept", "reject", "offer", "number" ("neg" tokens only mark the next token)
    text: str
    negated: bool = False
    after_keyword: bool = False
    digits: str = ""
    negative: bool = False
    percent: bool = False
    fraction: bool = False  # "1/2" or "0,6": a fraction or a decimal comma, which the game does not read


def _scan(text: str) -> list[_Token]:
    """The answer's keywords and numbers, in order; linear in the text's length (each gap between
    two tokens is looked at once)."""
    tokens: list[_Token] = []
    previous: tuple[str, int] | None = None  # the last match's kind and end
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup if match.lastgroup in ("neg", "accept", "reject", "offer") else "number"
        gap = text[previous[1] : match.start()] if previous is not None else None
        if kind == "neg":
            previous = (kind, match.end())
            continue
        negated = previous is not None and previous[0] == "neg" and gap is not None and (gap == "" or gap.isspace())
        if kind == "number":
            after = previous is not None and previous[0] == "offer" and _KEYWORD_GAP.fullmatch(gap or "") is not None
            tokens.append(
                _Token(
                    "number",
                    match.group("number"),
                    after_keyword=after,
                    digits=match.group("digits"),
                    negative=bool(match.group("sign")),
                    percent=match.group("percent") is not None,
                    fraction=match.group("tail") is not None,
                )
            )
        else:
            tokens.append(_Token(kind, match.group(kind), negated=negated))
        previous = (kind, match.end())
    return tokens


def _quote(text: str, limit: int = 24) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _state(state: State) -> BargainingState:
    if not isinstance(state, BargainingState):
        raise GameError(f"expected a BargainingState, got {type(state).__name__}")
    return state


def _legal_summary(state: BargainingState) -> str:
    if state.is_terminal:
        return "none (the game is over)"
    if state.response_due:
        return f"{ACCEPT!r} or {REJECT!r}"
    game = state.game
    return f"multiples of {game.precision!r} from 0 to {game.pie!r}"


# ---------------------------------------------------------------------------------------------
# Backward induction by walking the states


def backward_induction(game: Bargaining) -> BargainingSolution:
    """`Bargaining.solution` found by walking the game's own states (``legal_actions``, ``apply``,
    ``returns``) from the last round back: an independent check of the grid recursion, for small
    games (about ``rounds**2 * steps`` state operations).

    The value of the position after a rejection depends only on its round (the offers made before
    do not change what follows), so each round is solved once.
    """
    tie = _TIE * game.pie
    chain = [game.new_initial_state()]  # a proposal position of each round: demand the pie, be rejected
    while not (after := chain[-1].apply(game.pie).apply(REJECT)).is_terminal:
        chain.append(after)
    rounds = len(chain)
    keep, reservation = [0.0] * rounds, [0.0] * rounds
    values: dict[int, tuple[float, float]] = {}  # round -> discounted payoffs of equilibrium play from there
    for t in reversed(range(rounds)):
        state = chain[t]
        p, r = state.proposer, state.responder
        options = []
        for offer in state.legal_actions():
            pending = state.apply(offer)
            yes = pending.apply(ACCEPT).returns()
            rejected = pending.apply(REJECT)
            no = rejected.returns() if rejected.is_terminal else values[rejected.round]
            accepted = yes[r] >= no[r] - tie
            outcome = yes if accepted else no
            options.append((outcome[p], accepted, float(offer), outcome, no))  # type: ignore[arg-type]
        best = max(o[0] for o in options)
        near = (o for o in options if o[0] >= best - tie)  # ties: prefer agreement, then the larger share
        _, _, keep[t], values[t], no = max(near, key=lambda o: (o[1], o[2]))
        reservation[t] = no[r] / game.discount(r) ** t
    return BargainingSolution(tuple(keep), tuple(reservation), values[0])


# ---------------------------------------------------------------------------------------------
# Fixed strategies


@dataclass(frozen=True)
class GreedyBargainer:
    """Demands the whole pie; accepts only a share of at least ``threshold`` (a fraction of the pie)."""

    threshold: float = 0.6
    name: str = "greedy"

    def __post_init__(self) -> None:
        value = _real(self.threshold, "threshold")
        if not 0.0 <= value <= 1.0:
            raise GameError(f"threshold must be a fraction of the pie in [0, 1], got {self.threshold!r}")
        object.__setattr__(self, "threshold", value)

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        s = _state(state)
        if s.response_due:
            return ACCEPT if s.offered >= self.threshold * s.game.pie * (1.0 - _TIE) else REJECT
        return s.game.pie


@dataclass(frozen=True)
class FairBargainer:
    """Offers an even split (keeping the grid point at or below half) and accepts at least half."""

    name: str = "fair"

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        s = _state(state)
        if s.response_due:
            return ACCEPT if s.offered >= s.game.pie / 2 * (1.0 - _TIE) else REJECT
        return s.game.offers[s.game.steps // 2]


@dataclass(frozen=True)
class RandomBargainer:
    """Offers a uniformly random grid share; accepts with probability ``accept_probability``."""

    accept_probability: float = 0.5
    name: str = "random"

    def __post_init__(self) -> None:
        value = _real(self.accept_probability, "accept_probability")
        if not 0.0 <= value <= 1.0:
            raise GameError(f"accept_probability must be in [0, 1], got {self.accept_probability!r}")
        object.__setattr__(self, "accept_probability", value)

    def __call__(self, state: State, rng: np.random.Generator) -> Action:
        s = _state(state)
        if s.response_due:
            return ACCEPT if rng.random() < self.accept_probability else REJECT
        return s.game.offers[int(rng.integers(len(s.game.offers)))]


BARGAINING_STRATEGIES: Mapping[str, Strategy] = MappingProxyType(
    {
        "equilibrium": EquilibriumPlay(),
        "greedy": GreedyBargainer(),
        "fair": FairBargainer(),
        "random": RandomBargainer(),
    }
)
"""The fixed bargaining opponents by name."""


def bargaining_strategy(name: str) -> Strategy:
    """The fixed strategy called ``name``; an unknown name gets an error listing the valid ones."""
    try:
        return BARGAINING_STRATEGIES[name]
    except (KeyError, TypeError):
        raise GameError(f"unknown bargaining strategy {name!r}; valid: {sorted(BARGAINING_STRATEGIES)}") from None
