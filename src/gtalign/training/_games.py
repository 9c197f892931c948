"""Classic games as GRPO data and reward: one prompt per decision of the learner, scored by the
payoff its answer earns when the rest of the episode is played out (design (a) of
``docs/design/games-train.md``).

`game_rows` turns `gtalign.envs._decisions.DecisionPoint`s into rows in the paper's format, which
``gtalign train grpo`` reads with ``prompt: stored``: ``prompt`` (the system message a game player
gets and the learner's observation), ``data_source`` ``game/<game name>``, ``reward_model.ground_truth``
(the equilibrium move's text) and ``extra_info`` (the point, the opponent's and the continuation's
names and the number of playouts, JSON-ready). The loader hands TRL ``extra_info`` as JSON text and
the ground truth as a ``ground_truth`` column.

`GamePayoffReward` is the TRL reward function (synchronous, picklable, ``__name__`` ``game_payoff``):
it rebuilds each row's point, values the completion with `answer_value` (an invalid answer is a
forfeit: accrued payoff plus the game's penalty) and returns the learner's payoff, scaled to [0, 1]
by the game's payoff range when ``normalise`` is set. A row it cannot score (not a game row, a point
that does not rebuild, an unknown strategy name) is None, which TRL leaves out of the advantage,
never 0; such rows are counted (``games/unscored_frac``) and warned about once per batch. With
TRL's ``log_metric`` it logs under ``games/``: ``payoff_mean``, ``payoff_var``, ``group_std_mean``,
``payoff_norm_mean``, ``opponent_payoff_mean``, ``invalid_frac``, ``distance_mean`` (valid answers),
``regret_mean``, ``equilibrium_frac`` and ``unscored_frac``; ``log_extra`` adds ``game_move`` and
``game_error`` (the parse error, or ``unscored: <why>``) per completion.

Data source names use ``game/`` rather than ``game:``: the training loader's held-out check treats a
name with a colon as a dotted import path.

An edge module: no torch or TRL import (TRL only calls it).
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gtalign.envs._core import Game, GameError
from gtalign.envs._decisions import (
    DEFAULT_SAMPLES,
    AnswerOutcome,
    DecisionPoint,
    MoveValues,
    answer_value,
    game_from_spec,
    move_values,
    payoff_range,
    point_state,
    strategy_named,
)
from gtalign.envs._play import Strategy
from gtalign.integrations._common import batch_column, completion_text, mean

__all__ = ["DATA_SOURCE_PREFIX", "DEFAULT_NAME", "GamePayoffReward", "GameRow", "game_rows", "read_game_row"]

logger = logging.getLogger(__name__)

DATA_SOURCE_PREFIX = "game/"
"""A game row's ``data_source`` is this and the game's name (``game/prisoners-dilemma``)."""

DEFAULT_NAME = "game_payoff"


def _system_prompt() -> str:
    from gtalign.envs.players import GAME_SYSTEM_PROMPT  # the prompt `ChatPlayer` sends, so training matches play

    return GAME_SYSTEM_PROMPT


def game_rows(
    points: Sequence[DecisionPoint],
    *,
    continuation: str = "equilibrium",
    samples: int = DEFAULT_SAMPLES,
    system: str | None = None,
    strategies: Mapping[str, Strategy] | None = None,
) -> list[dict[str, Any]]:
    """One paper-format row per point, for ``gtalign train grpo`` (``prompt: stored``).

    continuation: the name of the policy that plays the learner's seat after its answer (the
    reward's `answer_value`); samples: playouts per value when a strategy is random; system: the
    system message (default ``gtalign.envs.players.GAME_SYSTEM_PROMPT``, what ``ChatPlayer`` sends).
    The opponent's and the continuation's names must resolve (`strategy_named`, with
    ``strategies`` for others, which the reward must then be given too): a `GameError` now rather
    than unscored rows in training."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise GameError(f"samples must be a positive integer, got {samples!r}")
    system = _system_prompt() if system is None else system
    games: dict[str, Game] = {}
    rows = []
    for number, point in enumerate(points):
        key = json.dumps([point.game, point.to_json()["params"]], sort_keys=True)
        if key not in games:
            games[key] = game_from_spec(point.game, point.params)
        game = games[key]
        try:
            point_state(game, point)
            strategy_named(game, point.opponent, strategies)
            strategy_named(game, continuation, strategies)
        except GameError as exc:
            raise GameError(f"point {number}: {exc}") from None
        extra = {**point.to_json(), "continuation": continuation, "samples": samples}
        rows.append({
            "data_source": DATA_SOURCE_PREFIX + point.game,
            "prompt": [{"role": "system", "content": system}, {"role": "user", "content": point.observation}],
            "ability": "game",
            "reward_model": {"style": "rule", "ground_truth": point.equilibrium_text},
            "extra_info": extra,
        })
    return rows


@dataclass(frozen=True)
class GameRow:
    """A row's point and how its answers are valued."""

    point: DecisionPoint
    continuation: str
    samples: int


def read_game_row(extra_info: Any) -> GameRow:
    """The point and valuation settings of a row's ``extra_info`` (a mapping or its JSON text); a
    `GameError` says what is wrong."""
    if isinstance(extra_info, (str, bytes)):
        try:
            extra_info = json.loads(extra_info)
        except ValueError as exc:
            raise GameError(f"extra_info is not JSON: {exc}") from None
    if not isinstance(extra_info, Mapping):
        raise GameError(f"extra_info must be an object, got {type(extra_info).__name__}")
    continuation = extra_info.get("continuation", "equilibrium")
    samples = extra_info.get("samples", DEFAULT_SAMPLES)
    if not isinstance(continuation, str):
        raise GameError(f"extra_info.continuation must be a strategy name, got {continuation!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise GameError(f"extra_info.samples must be a positive integer, got {samples!r}")
    return GameRow(DecisionPoint.from_json(extra_info), continuation, samples)


def _variance(values: Sequence[float]) -> float:
    centre = mean(values)
    return math.fsum((v - centre) ** 2 for v in values) / len(values)


@dataclass
class _Prepared:
    """One distinct row of a batch: its game, point, strategies and the values of its moves."""

    game: Game
    row: GameRow
    opponent: Strategy
    continuation: Strategy
    values: MoveValues
    bounds: tuple[float, float] | None


@dataclass
class GamePayoffReward:
    """The learner's payoff as a GRPO reward (see the module doc).

    normalise: scale the payoff to [0, 1] by `payoff_range` of the game and seat (clipped, for a
    sampled value of the infinitely repeated dilemma beyond its expected range). samples: playouts
    per value when a strategy is random (None: each row's ``extra_info.samples``). strategies:
    strategies by name beyond the games' own tables (picklable, to cross processes).
    ``unscored`` counts the rows returned as None since construction.
    """

    normalise: bool = False
    samples: int | None = None
    strategies: Mapping[str, Strategy] | None = None
    name: str = DEFAULT_NAME
    unscored: int = field(default=0, init=False)
    _games: dict[str, Game] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def __name__(self) -> str:  # TRL names the reward (logs, completions table) after __name__
        return self.name

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_games"] = {}
        return state

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        count = len(completions)
        if len(prompts) != count:
            raise ValueError(f"TRL passed {len(prompts)} prompts for {count} completions")
        sources = batch_column(kwargs, "data_source", count) or [None] * count
        infos = batch_column(kwargs, "extra_info", count) or [None] * count
        ids = batch_column(kwargs, "id", count) or [None] * count
        prepared: dict[str, _Prepared | str] = {}
        outcomes: list[AnswerOutcome | None] = []
        reasons: list[str] = []
        for source, info, completion in zip(sources, infos, completions):
            if not isinstance(source, str) or not source.startswith(DATA_SOURCE_PREFIX):
                outcomes.append(None)
                reasons.append(f"not a game row (data_source {source!r})")
                continue
            key = self._key(source, info)
            if key not in prepared:
                prepared[key] = self._prepare(source, info)
            entry = prepared[key]
            if isinstance(entry, str):
                outcomes.append(None)
                reasons.append(entry)
                continue
            try:
                outcome = answer_value(entry.game, entry.row.point, completion_text(completion), opponent=entry.opponent,
                                       continuation=entry.continuation, samples=self._samples(entry.row),
                                       values=entry.values)
                if not math.isfinite(outcome.payoff):
                    raise GameError(f"the payoff is {outcome.payoff!r}, not a finite number")
            except GameError as exc:
                outcomes.append(None)
                reasons.append(f"cannot value the answer: {exc}")
                continue
            outcomes.append(outcome)
            reasons.append("")
        keys = [self._key(source, info) for source, info in zip(sources, infos)]
        rewards = [None if o is None else self._reward(o, prepared, key) for o, key in zip(outcomes, keys)]
        missing = [reason for reason in reasons if reason]
        if missing:
            self.unscored += len(missing)
            logger.warning("reward %s: %d of %d completions unscored (returned as None, left out by TRL); first: %s",
                           self.name, len(missing), count, missing[0])
        self._log(outcomes, reasons, prepared, keys, ids, prompts, kwargs.get("log_metric"), kwargs.get("log_extra"))
        return rewards

    # -- helpers ----------------------------------------------------------------------------------

    def _samples(self, row: GameRow) -> int:
        return self.samples if self.samples is not None else row.samples

    @staticmethod
    def _key(source: Any, info: Any) -> str:
        """What identifies a row within a batch: its data source and its extra_info."""
        text = info if isinstance(info, str) else json.dumps(info, sort_keys=True, default=str)
        return f"{source}\n{text}"

    def _prepare(self, source: str, info: Any) -> _Prepared | str:
        """The row's game, point and strategies, and every move's value; or why not (a string)."""
        try:
            row = read_game_row(info)
            if source != DATA_SOURCE_PREFIX + row.point.game:
                raise GameError(f"data_source {source!r} does not match the point's game {row.point.game!r}")
            spec = json.dumps([row.point.game, row.point.params], sort_keys=True)
            game = self._games.get(spec)
            if game is None:
                game = self._games[spec] = game_from_spec(row.point.game, row.point.params)
            opponent = strategy_named(game, row.point.opponent, self.strategies)
            continuation = strategy_named(game, row.continuation, self.strategies)
            values = move_values(game, row.point, opponent=opponent, continuation=continuation,
                                 samples=self._samples(row))
        except GameError as exc:
            return f"cannot rebuild the row: {exc}"
        try:  # for --normalise, and for the payoff_norm_mean metric without it
            bounds: tuple[float, float] | None = payoff_range(game, row.point.seat, values.state)
        except GameError as exc:
            if self.normalise:
                return f"no payoff range to scale by: {exc}"
            bounds = None
        return _Prepared(game, row, opponent, continuation, values, bounds)

    def _reward(self, outcome: AnswerOutcome, prepared: Mapping[str, Any], key: str) -> float:
        if not self.normalise:
            return float(outcome.payoff)
        return _scaled(outcome.payoff, prepared[key].bounds)

    def _log(self, outcomes: Sequence[AnswerOutcome | None], reasons: Sequence[str], prepared: Mapping[str, _Prepared | str],
             keys: Sequence[str], ids: Sequence[Any], prompts: Sequence[Any],
             log_metric: Callable[[str, float], None] | None, log_extra: Callable[[str, list[Any]], None] | None) -> None:
        if log_extra is not None:
            log_extra("game_move", [None if o is None or o.action is None else str(o.action) for o in outcomes])
            log_extra("game_error", [f"unscored: {why}" if o is None else o.error for o, why in zip(outcomes, reasons)])
        if log_metric is None or not outcomes:
            return
        log_metric("games/unscored_frac", sum(o is None for o in outcomes) / len(outcomes))
        scored = [(o, key) for o, key in zip(outcomes, keys) if o is not None]
        if not scored:
            return
        payoffs = [o.payoff for o, _ in scored]
        log_metric("games/payoff_mean", mean(payoffs))
        log_metric("games/payoff_var", _variance(payoffs))
        log_metric("games/opponent_payoff_mean", mean([o.opponent_payoff for o, _ in scored]))
        log_metric("games/invalid_frac", sum(not o.valid for o, _ in scored) / len(scored))
        log_metric("games/equilibrium_frac", sum(o.is_equilibrium for o, _ in scored) / len(scored))
        distances = [o.distance for o, _ in scored if o.distance is not None]
        if distances:
            log_metric("games/distance_mean", mean(distances))
        regrets = [o.regret for o, _ in scored if o.regret is not None]
        if regrets:
            log_metric("games/regret_mean", mean(regrets))
        norms = []
        for o, key in scored:
            entry = prepared.get(key)
            if isinstance(entry, _Prepared) and entry.bounds is not None:
                norms.append(_scaled(o.payoff, entry.bounds))
        if norms:
            log_metric("games/payoff_norm_mean", mean(norms))
        groups: dict[Any, list[float]] = defaultdict(list)  # TRL's groups: the completions of one prompt
        for o, key, row_id, prompt in zip(outcomes, keys, ids, prompts):
            if o is not None:
                groups[(row_id, key, json.dumps(prompt, sort_keys=True, default=str))].append(o.payoff)
        stds = [math.sqrt(_variance(values)) for values in groups.values() if len(values) > 1]
        if stds:
            log_metric("games/group_std_mean", mean(stds))


def _scaled(payoff: float, bounds: tuple[float, float] | None) -> float:
    if bounds is None:
        raise GameError("no payoff range to scale by")
    low, high = bounds
    if high <= low:
        return 0.0
    return min(1.0, max(0.0, (payoff - low) / (high - low)))
