"""``gtalign games play``: episodes of a classic game, shown as they are played, then a summary;
``gtalign games train``: GRPO on the game's payoff, through ``gtalign train``'s machinery (`run_train`);
``gtalign games report``: those runs' logs as markdown and PNG plots (`run_report`, in `gtalign.cli._games_report`).

The learner (a model through a `ChatBackend`, or a fixed strategy) sits in one seat, the opponent (a
fixed strategy, or the same model: self-play) in the other. Each move is shown as it is made: the
model's raw answer and the move it was read as, invalid answers and their re-asks, forfeits; then each
episode's payoffs and each seat's distance from equilibrium play; then a summary over the episodes.
``--out`` writes one JSON line per episode as it ends (`episode_record`), which `read_transcript`
turns back into a `Transcript` that `gtalign.envs.replay` checks.

Only argparse and the shared argument types are imported at module level; the games, the backends
and rich are imported when the command runs, so ``gtalign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gtalign.cli._args import integer, key_value, non_negative_float, non_negative_int, positive_int, yaml_params
from gtalign.cli._train import add_model_arguments, add_output_arguments, add_trl_arguments

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console

    from gtalign.envs import Episode, Game, MoveRecord, Strategy, TextPlayer, Transcript
    from gtalign.envs.players import ChatTurn

__all__ = [
    "EPISODE_SCHEMA",
    "GAME_ROWS",
    "GAME_STRATEGY_NAMES",
    "GAME_TRL_DEFAULTS",
    "MeanSE",
    "PlayOptions",
    "PlaySummary",
    "configure",
    "episode_record",
    "options_from_args",
    "read_transcript",
    "resolve_game",
    "resolve_strategy",
    "run",
    "run_play",
    "run_report",
    "run_train",
    "strategies_for",
]

EPISODE_SCHEMA = 1
"""Version of the ``--out`` line format (`episode_record`)."""

MODEL = "model"
"""The ``--opponent`` that is the ``--backend`` model itself (self-play)."""

GAME_STRATEGY_NAMES: Mapping[str, tuple[str, ...]] = {
    "prisoners-dilemma": ("always-cooperate", "always-defect", "tit-for-tat", "grim-trigger", "random", "equilibrium"),
    "bargaining": ("equilibrium", "greedy", "fair", "random"),
    "signaling": ("equilibrium", "lowest", "highest", "honest", "random"),
    "spence": ("equilibrium", "lowest", "highest", "honest", "random"),
    "beer-quiche": ("equilibrium", "lowest", "highest", "honest", "random"),
}
"""The fixed strategies of each registered game, as ``--help`` lists them without importing the games
(a test checks them against the games' strategy maps)."""

_GAMES_DESCRIPTION = """\
Classic games as RL environments: the sequential prisoner's dilemma, Rubinstein bargaining and
signaling games (Spence, Beer-Quiche), played by models and fixed strategies.

Try:  gtalign games play prisoners-dilemma --player tit-for-tat --opponent always-defect
      gtalign games train prisoners-dilemma --seat 1 --dry-run
      gtalign games report runs/games/prisoners-dilemma
"""

_PLAY_DESCRIPTION = f"""\
Play episodes of a classic game and watch them: every move (a model's raw answer and the move it
was read as), invalid answers with their re-asks and forfeits, each episode's payoffs and each
seat's distance from equilibrium play (0: the game's reference equilibrium move at every turn, 1:
never; bargaining offers count by how far they are); then a summary over the episodes: mean payoff
per seat, invalid-answer rate, forfeits, mean distance from equilibrium.

Seats: the learner sits in --seat (0 moves first, and is the sender of a signaling game); the
opponent in the other seat.
  learner    the --backend model, or without --backend the fixed strategy --player NAME
  opponent   a fixed strategy --opponent NAME (default: equilibrium), or 'model': the --backend
             model on both seats (self-play)
Fixed strategies are named by the game (below), or module:attr of a gtalign.envs.Strategy.

A model answers each move in a fresh conversation: a system prompt saying it plays a game and must
answer in the format asked, and the seat's observation (the rules, the history it knows, and on a
re-ask the error of its last answer). An answer the game cannot read is asked again up to the game's
retries, then forfeited with its penalty (the invalid_moves parameter). A failed model call (server
down, context overflow, ...) counts as an answer the game refuses, so the episode goes on; it is
shown with its reason and makes the command exit 1.

GAME is a registered game or module:attr of a gtalign.envs.Game (or a factory of one). Set its
parameters with --param KEY=VALUE (repeatable; VALUE is read as YAML: 0.9, null, [0, 1, 2]):

  prisoners-dilemma  Each round player 0 chooses C (cooperate) or D (defect), player 1 sees it and
      chooses. T=5 R=3 P=1 S=0: the stage payoffs (T > R > P > S, 2R > T + S); discount=1: round k
      counts discount^(k-1); rounds=5 (null: infinitely repeated, going on after each round with
      probability discount < 1). Equilibrium: always defect (finite), grim trigger when
      discount >= (T - R) / (T - P) (infinite).
      Strategies: {", ".join(GAME_STRATEGY_NAMES["prisoners-dilemma"])}.
      e.g. gtalign games play prisoners-dilemma --param rounds=null --param discount=0.9 \\
               --player tit-for-tat --opponent grim-trigger --episodes 5
  bargaining  Rubinstein alternating offers over a pie: player 0 offers first ('offer X', X the
      share the proposer keeps), the other accepts or rejects and counter-offers. delta1=0.9
      delta2=0.9: the discount factors of player 0 and 1; pie=1; horizon=null: offer rounds (null:
      no last round, stopped after max_rounds=100 with 0 to both); precision=0.01: the offer grid.
      Equilibrium: the subgame-perfect play on the offer grid and round cap, agreed at once: near
      Rubinstein's share (1 - delta2) / (1 - delta1 delta2) for player 0, off by the grid's
      rounding (0.50 rather than 0.5263 at the defaults; precision=0.001 gives 0.523).
      Strategies: {", ".join(GAME_STRATEGY_NAMES["bargaining"])}.
      e.g. gtalign games play bargaining --param delta1=0.9 --param delta2=0.5 --player greedy
  spence  Job-market signaling: nature draws the worker's productivity (L or H), the worker
      (player 0) picks an education level, the employer sees it and pays a low or high wage.
      theta_low=1 theta_high=2: productivities; prior_high=0.5: P(H); cost_low=1 cost_high=0.5:
      cost per education level; levels=[0, 0.5, 1, 1.5, 2, 2.5, 3]. Equilibrium: a separating one.
      Strategies: {", ".join(GAME_STRATEGY_NAMES["spence"])}.
      e.g. gtalign games play spence --param prior_high=0.25 --player honest --opponent random
  beer-quiche  Cho and Kreps: a weak or strong newcomer (player 0) has quiche or beer, the bully
      sees the breakfast and duels or retreats. prior_strong=0.9. Equilibrium: pooling on beer.
      Strategies: {", ".join(GAME_STRATEGY_NAMES["beer-quiche"])}.
      e.g. gtalign games play beer-quiche --backend http://127.0.0.1:8000/v1 --model qwen --episodes 20
  signaling  Any finite signaling game given by its tables: types, prior, signals, actions,
      costs[type][signal], sender_payoffs[type][signal][action], receiver_payoffs[...] (and
      title, story, roles, nouns for the prompts); the defaults are spence's.
      Strategies: {", ".join(GAME_STRATEGY_NAMES["signaling"])}.
      e.g. gtalign games play signaling --param "prior=[0.3, 0.7]" --player lowest
Every game also takes invalid_moves={{retries: 2, penalty: -1}}: re-asks after an invalid answer,
then a forfeit costing that penalty. The signaling games' default penalty is below their worst
payoff (spence: -3), so that an unreadable answer never pays more than a valid one.

--out FILE.jsonl writes one JSON line per episode, as it ends (flushed and synced, so a crash loses
no finished episode; an existing FILE is overwritten): schema, episode, spec (GAME as given), the
transcript (game, params, seed, records of every answer and chance draw, payoffs, forfeit), players,
learner, distance (per seat) and generations (each model call: seat, text, status, reason,
finish_reason, tokens_in, tokens_out, latency, seed).

Examples:
  gtalign games play bargaining --player fair --opponent equilibrium --episodes 3
  gtalign games play prisoners-dilemma --backend embedded --opponent tit-for-tat --out pd.jsonl
  gtalign games play spence --backend http://127.0.0.1:8000/v1 --model qwen --opponent model --seat 1

Exit codes: 0 the episodes were played; 1 some model call failed (see the summary) or the command
could not finish; 2 usage error (a bad game, parameter or strategy); 130 interrupted (the episodes
written to --out so far are kept).
"""


def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``games`` subcommand (with ``play``) to ``commands`` and return its parser."""
    parser = commands.add_parser(
        "games",
        help="classic games (prisoner's dilemma, bargaining, signaling) played by models and fixed strategies",
        description=_GAMES_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="games_command", metavar="ACTION", title="actions")
    play = actions.add_parser(
        "play",
        help="play episodes and show each move, the payoffs and the distance from equilibrium",
        description=_PLAY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    play.add_argument("game", metavar="GAME", help="prisoners-dilemma, bargaining, spence, beer-quiche, signaling or module:attr")
    play.add_argument("--param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                      help="a game parameter, e.g. delta1=0.9 or rounds=null (repeatable; VALUE is read as YAML)")
    seats = play.add_argument_group("players")
    seats.add_argument("--player", metavar="NAME",
                       help="without --backend: the learner's fixed strategy (a name the game lists, or module:attr)")
    seats.add_argument("--opponent", default="equilibrium", metavar="NAME",
                       help="the other seat: a fixed strategy the game lists (see above), 'equilibrium', module:attr, "
                       "or 'model' for self-play with --backend (default: equilibrium)")
    seats.add_argument("--seat", type=int, choices=(0, 1), default=0, help="the learner's seat; 0 moves first (default: 0)")
    model = play.add_argument_group("model")
    model.add_argument("--backend", metavar="embedded|URL|module:attr",
                       help="the learner's model: 'embedded' (SmolLM2-135M-Instruct on the CPU, offline), "
                       "'embedded:PATH', the http(s):// base URL of an OpenAI-compatible server, or module:attr "
                       "of a ChatBackend (or its factory)")
    model.add_argument("--model", metavar="NAME", help="model name at the --backend URL; with the embedded backend, a local model")
    model.add_argument("--temperature", type=non_negative_float, default=0.0, metavar="T",
                       help="sampling temperature; 0 is greedy (default: 0)")
    model.add_argument("--max-tokens", type=positive_int, default=128, metavar="N",
                       help="token budget of one answer (default: 128)")
    run_group = play.add_argument_group("run")
    run_group.add_argument("--episodes", type=positive_int, default=1, metavar="N", help="episodes to play (default: 1)")
    run_group.add_argument("--seed", type=integer, default=0, metavar="S",
                           help="episode e (from 0) uses seed S+e for nature, the fixed strategies and the model's "
                           "sampling (default: 0)")
    run_group.add_argument("--out", metavar="FILE.jsonl", help="write one JSON line per episode, as it ends (overwritten)")
    run_group.add_argument("-q", "--quiet", action="store_true", help="no moves or episodes: the summary only")
    _configure_train(actions)
    _configure_report(actions)
    return parser


@dataclass(frozen=True, slots=True)
class PlayOptions:
    """What ``gtalign games play`` is asked to do; each command-line option is one field."""

    game: str
    params: Mapping[str, Any] = field(default_factory=dict)
    player: str | None = None
    opponent: str = "equilibrium"
    seat: int = 0
    backend: str | None = None
    model: str | None = None
    temperature: float = 0.0
    max_tokens: int = 128
    episodes: int = 1
    seed: int = 0
    out: str | None = None
    quiet: bool = False


def options_from_args(args: argparse.Namespace) -> PlayOptions:
    return PlayOptions(
        game=args.game, params=yaml_params(args.param), player=args.player, opponent=args.opponent, seat=args.seat,
        backend=args.backend, model=args.model, temperature=args.temperature, max_tokens=args.max_tokens,
        episodes=args.episodes, seed=args.seed, out=args.out, quiet=args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``gtalign games ACTION`` for parsed ``args``; returns the exit code."""
    from gtalign.cli._main import EXIT_USAGE

    action = getattr(args, "games_command", None)
    if action == "train":
        return run_train(args)
    if action == "report":
        return run_report(args)
    if action != "play":
        print("gtalign games: choose an action: play, train or report (see gtalign games play --help, "
              "gtalign games train --help, gtalign games report --help)", file=sys.stderr)
        return EXIT_USAGE
    return run_play(options_from_args(args))


# -- games and strategies ------------------------------------------------------------------------


def _usage(message: str) -> Exception:
    from gtalign.cli._main import UsageError

    return UsageError(message)


def resolve_game(spec: str, params: Mapping[str, Any] | None = None) -> Game:
    """The game ``spec`` names (a registry name or ``module:attr``) with ``params``; a `UsageError`
    names the bad game or parameter and lists the valid ones."""
    import inspect

    from gtalign._registry import REGISTRY, RegistryError
    from gtalign.envs import Game, GameError, InvalidMovePolicy

    params = dict(params or {})
    try:
        target = REGISTRY.get("game", spec)
    except RegistryError as exc:
        raise _usage(f"GAME: {exc}") from None
    if isinstance(target, Game):
        if params:
            raise _usage(f"game {spec} is a ready game object: it takes no --param (got {', '.join(sorted(params))})")
        return target
    if not callable(target):
        raise _usage(f"game {spec} is a {type(target).__name__}, not a gtalign.envs.Game or a factory of one")
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        valid = [name for name, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [key for key in params if key not in valid]
        if unknown:
            raise _usage(f"game {spec}: unknown parameter {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    if isinstance(params.get("invalid_moves"), Mapping):
        # checked here for a clear error; passed on as given, so a game's own default penalty (a signaling
        # game's, below its worst payoff) applies when the mapping leaves it out
        try:
            InvalidMovePolicy.coerce(params["invalid_moves"])
        except (GameError, TypeError) as exc:
            raise _usage(f"game {spec}: parameter 'invalid_moves': {exc} (expected {{retries: N, penalty: X}})") from None
    try:
        game = target(**params)
    except (GameError, TypeError, ValueError) as exc:
        given = ", ".join(f"{key}={value!r}" for key, value in params.items()) or "its defaults"
        raise _usage(f"game {spec} with {given}: {exc}") from None
    if not isinstance(game, Game):
        raise _usage(f"game {spec} made a {type(game).__name__}, not a gtalign.envs.Game")
    return game


def strategies_for(game: Game) -> Mapping[str, Strategy]:
    """The fixed strategies of ``game`` by name: its own ``strategies`` mapping when it has one,
    else the map of its kind (dilemma, bargaining, signaling); always with ``equilibrium``."""
    from gtalign.envs import (
        BARGAINING_STRATEGIES,
        DILEMMA_STRATEGIES,
        SIGNALING_STRATEGIES,
        Bargaining,
        EquilibriumPlay,
        PrisonersDilemma,
        Signaling,
    )

    own = getattr(game, "strategies", None)
    if isinstance(own, Mapping):
        return {"equilibrium": EquilibriumPlay(), **own}
    for kind, table in ((PrisonersDilemma, DILEMMA_STRATEGIES), (Bargaining, BARGAINING_STRATEGIES), (Signaling, SIGNALING_STRATEGIES)):
        if isinstance(game, kind):
            return table
    return {"equilibrium": EquilibriumPlay()}


def resolve_strategy(game: Game, spec: str, name: str, *, flag: str, model_ok: bool = False) -> Strategy:
    """The fixed strategy ``name`` of ``game`` (called ``spec`` on the command line), or one named
    by ``module:attr``; a `UsageError` names ``flag`` and lists the valid names."""
    from gtalign._registry import RegistryError, _resolve
    from gtalign.envs import Strategy

    table = strategies_for(game)
    if name in table:
        return table[name]
    valid = ", ".join([*table, *([MODEL] if model_ok else []), "or module:attr"])
    if ":" not in name:
        raise _usage(f"{flag} {name!r} is not a strategy of {spec}; valid: {valid}")
    try:
        target: Any = _resolve(name)
    except RegistryError as exc:
        raise _usage(f"{flag} {name!r}: {exc}") from None
    if isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise _usage(f"{flag} {name!r} cannot be built: {type(exc).__name__}: {exc}") from None
    if not isinstance(target, Strategy):
        raise _usage(f"{flag} {name!r} is a {type(target).__name__}, not a Strategy (needs `name` and "
                     f"`__call__(state, rng) -> action`); valid: {valid}")
    return target


def _build_backend(options: PlayOptions) -> Any:
    from gtalign.eval import EvalSetupError
    from gtalign.eval._setup import build_eval_backend

    try:
        return build_eval_backend(str(options.backend), options.model)
    except EvalSetupError as exc:
        raise _usage(f"--backend: {exc}") from None


# -- the episode log -------------------------------------------------------------------------------


def _pair_turns(records: Sequence[MoveRecord], seats: Sequence[Any]) -> list[tuple[MoveRecord, ChatTurn | None]]:
    """Each record with the model call that produced it (None: a chance draw or a fixed strategy).
    A `ChatPlayer` answers once per record of its seats, in order, so its turns pair one to one."""
    from gtalign.envs.players import ChatPlayer

    used: dict[int, int] = {}
    out: list[tuple[MoveRecord, ChatTurn | None]] = []
    for record in records:
        player = seats[record.player] if record.player in (0, 1) else None
        turn = None
        if isinstance(player, ChatPlayer):
            index = used.get(id(player), 0)
            if index < len(player.turns):
                turn = player.turns[index]
            used[id(player)] = index + 1
        out.append((record, turn))
    return out


def episode_record(
    transcript: Transcript, *, episode: int, spec: str, seats: Sequence[Any], learner: int,
    distance: Sequence[float | None],
) -> dict[str, Any]:
    """One ``--out`` line: the transcript as JSON (game, params, seed, records, payoffs, forfeit)
    with the episode number, GAME as given, the players, the learner's seat, each seat's distance
    from equilibrium and every model call (`ChatTurn.to_json` with its seat)."""
    generations = [{"seat": record.player, **turn.to_json()} for record, turn in _pair_turns(transcript.records, seats)
                   if turn is not None]
    return {
        "schema": EPISODE_SCHEMA,
        "episode": episode,
        "spec": spec,
        **transcript.to_json(),
        "players": [getattr(p, "name", type(p).__name__) for p in seats],
        "learner": learner,
        "distance": list(distance),
        "generations": generations,
    }


def read_transcript(line: Mapping[str, Any] | str) -> Transcript:
    """The `Transcript` of one ``--out`` line (a JSON text or its parsed object)."""
    import json

    from gtalign.envs import Transcript

    return Transcript.from_json(json.loads(line) if isinstance(line, str) else line)


# -- showing and summing up ---------------------------------------------------------------------------


def _short(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _num(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


def _seat_label(seat: int, seats: Sequence[Any], learner: int) -> str:
    name = getattr(seats[seat], "name", type(seats[seat]).__name__)
    return f"P{seat} {name}" + (" (learner)" if seat == learner else "")


class _Show:
    """Prints each new record of an episode as it is made (``on_step`` of `aplay`)."""

    def __init__(self, console: Console, game: Game, seats: Sequence[Any], learner: int, enabled: bool) -> None:
        self.console, self.game, self.seats, self.learner, self.enabled = console, game, seats, learner, enabled
        self.shown = 0
        self.state = game.new_initial_state()

    def __call__(self, episode: Episode) -> None:
        pairs = _pair_turns(episode.records, self.seats)
        for index in range(self.shown, len(pairs)):
            record, turn = pairs[index]
            if self.enabled:
                self._line(record, turn, last=index == len(pairs) - 1, forfeit=episode.forfeit)
            if record.action is not None:
                self.state = self.state.apply(record.action)
        self.shown = len(pairs)

    def _line(self, record: MoveRecord, turn: ChatTurn | None, *, last: bool, forfeit: int | None) -> None:
        from rich.text import Text

        from gtalign.envs import CHANCE

        if record.player == CHANCE:
            self.console.print(Text(f"  nature draws {record.action}", style="dim"), soft_wrap=True)
            return
        line = Text(f"  P{record.player} ", style="bold")
        if turn is not None and not turn.ok:
            line.append(f"model call failed ({turn.status}: {turn.reason})", style="red")
        elif turn is not None or record.action is None:
            line.append(repr(_short(record.text)))
        if record.action is not None:
            if turn is not None:
                line.append(" → ")
            line.append(self.game.format_move(record.action, self.state), style="green")
            if record.player == self.learner:
                from gtalign.envs import GameError

                try:
                    shown = _num(self.game.move_distance(self.state, record.action))
                except GameError:  # a game without equilibrium play (a signaling game with no pure PBE)
                    shown = "n/a"
                line.append(f"  (distance from equilibrium {shown})", style="dim")
        else:
            retries = self.game.invalid_moves.retries
            line.append(f" ✗ {record.error}", style="yellow")
            if last and forfeit == record.player:
                line.append(f" — forfeit (penalty {_num(self.game.invalid_moves.penalty)})", style="bold red")
            else:
                line.append(f" — asked again ({record.attempt + 1} of {retries})", style="yellow")
        if turn is not None and turn.ok:
            tokens = "?" if turn.tokens_out is None else str(turn.tokens_out)
            line.append(f"  [{tokens} tokens, {turn.latency:.2f} s]", style="dim")
        self.console.print(line, soft_wrap=True)


@dataclass(frozen=True, slots=True)
class MeanSE:
    """A mean over episodes with its standard error (sample sd / sqrt(n)); n = 0: no values."""

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> MeanSE:
        import math

        n = len(values)
        if n == 0:
            return cls(math.nan, math.nan, 0)
        mean = math.fsum(values) / n
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        return cls(mean, sd / math.sqrt(n), n)

    def __str__(self) -> str:
        if self.n == 0:
            return "n/a"
        return f"{self.mean:.3f}" if self.n == 1 else f"{self.mean:.3f} ± {self.se:.3f}"


@dataclass
class PlaySummary:
    """Totals over the episodes, per seat, from their ``--out`` lines (`add`), so a summary printed
    while playing and one read back from the file later (`read`) are the same computation."""

    names: tuple[str, str]
    learner: int
    episodes: int = 0
    payoffs: list[list[float]] = field(default_factory=lambda: [[], []])
    answers: list[int] = field(default_factory=lambda: [0, 0])
    invalid: list[int] = field(default_factory=lambda: [0, 0])
    forfeits: list[int] = field(default_factory=lambda: [0, 0])
    distances: list[list[float]] = field(default_factory=lambda: [[], []])
    model_calls: int = 0
    failed_calls: list[str] = field(default_factory=list)
    failed_by_seat: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, line: Mapping[str, Any]) -> None:
        """Count one episode: an `episode_record` (an ``--out`` line, parsed)."""
        transcript = read_transcript(line)
        self.episodes += 1
        for seat in (0, 1):
            self.payoffs[seat].append(transcript.payoffs[seat])
            mine = [r for r in transcript.records if r.player == seat]
            self.answers[seat] += len(mine)
            self.invalid[seat] += sum(1 for r in mine if r.action is None)
            d = line["distance"][seat]
            if d is not None:
                self.distances[seat].append(float(d))
        if transcript.forfeit is not None:
            self.forfeits[transcript.forfeit] += 1
        for call in line.get("generations") or ():
            self.model_calls += 1
            if call.get("status", "ok") != "ok":
                self.failed_calls.append(f"{call.get('status')}: {call.get('reason')}")
                if call.get("seat") in (0, 1):
                    self.failed_by_seat[call["seat"]] += 1

    @classmethod
    def read(cls, path: str | Path) -> PlaySummary:
        """The summary of a ``gtalign games play --out`` file (names and learner from its lines). A line
        that is not JSON (a write cut off by a kill) or not an episode is a ValueError naming the line."""
        import json

        lines: list[tuple[int, Any]] = []
        with open(path, encoding="utf-8") as handle:
            for number, text in enumerate(handle, 1):
                if text.strip():
                    try:
                        lines.append((number, json.loads(text)))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}, line {number}: not a JSON line ({exc.msg}); remove it, or play "
                                         "the episodes again") from None
        summary = cls(("P0", "P1"), 0)
        for number, line in lines:
            try:
                if summary.episodes == 0:
                    players = line.get("players") or ["P0", "P1"]
                    summary = cls((str(players[0]), str(players[1])), int(line["learner"]))
                summary.add(line)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"{path}, line {number}: not a `gtalign games play --out` episode "
                                 f"({type(exc).__name__}: {exc})") from None
        return summary

    @property
    def ok(self) -> bool:
        return not self.failed_calls

    def payoff(self, seat: int) -> MeanSE:
        return MeanSE.of(self.payoffs[seat])

    def distance(self, seat: int) -> MeanSE:
        """Over the episodes with a distance (one forfeited before the seat's first valid move has none)."""
        return MeanSE.of(self.distances[seat])

    def mean_payoff(self, seat: int) -> float:
        return self.payoff(seat).mean

    def mean_distance(self, seat: int) -> float | None:
        d = self.distance(seat)
        return d.mean if d.n else None

    def render(self, console: Console) -> None:
        from rich.table import Table
        from rich.text import Text

        plural = "s" if self.episodes != 1 else ""
        table = Table(title=f"Summary over {self.episodes} episode{plural}", title_justify="left",
                      caption="* the learner. payoff: the mean per episode; distance: the mean distance from equilibrium "
                      "play (0: the equilibrium move every time)", caption_justify="left")
        for column in ("seat", "player", "payoff", "answers", "invalid", "forfeits", "distance"):
            table.add_column(column, justify="left" if column in ("seat", "player") else "right")
        for seat in (0, 1):
            answers, invalid = self.answers[seat], self.invalid[seat]
            rate = f"{invalid} ({100 * invalid / answers:.0f}%)" if answers else "0"
            distance = self.mean_distance(seat)
            table.add_row(
                f"P{seat}" + ("*" if seat == self.learner else ""), self.names[seat],
                _num(round(self.mean_payoff(seat), 4)), str(answers), rate, str(self.forfeits[seat]),
                "n/a" if distance is None else _num(round(distance, 4)),
                style="bold" if seat == self.learner else "",
            )
        console.print(table)
        if self.failed_calls:
            console.print(Text(f"{len(self.failed_calls)} of {self.model_calls} model calls failed (counted as invalid "
                               f"answers); first: {self.failed_calls[0]}", style="bold red"), soft_wrap=True)


# -- the command ---------------------------------------------------------------------------------------


def _players(options: PlayOptions, game: Game) -> tuple[list[Strategy | TextPlayer], Any]:
    """The two seats and the backend (None without --backend)."""
    if options.backend is None:
        if options.opponent == MODEL:
            raise _usage("--opponent model is self-play with the --backend model: give --backend (and --model)")
        if options.model is not None:
            raise _usage("--model only applies with --backend")
        if options.player is None:
            names = ", ".join(strategies_for(game))
            raise _usage(f"who plays the learner's seat? give --backend (a model) or --player NAME (one of {names}, "
                         "or module:attr)")
    elif options.player is not None:
        raise _usage("--player names the learner's fixed strategy when there is no model; with --backend the model "
                     "plays the learner's seat (drop --player, or drop --backend)")
    learner: Any = None if options.player is None else resolve_strategy(game, options.game, options.player, flag="--player")
    opponent: Any = None
    if options.opponent != MODEL:
        opponent = resolve_strategy(game, options.game, options.opponent, flag="--opponent", model_ok=True)
    backend = _build_backend(options) if options.backend is not None else None
    seats: list[Any] = [None, None]
    seats[options.seat], seats[1 - options.seat] = learner, opponent
    return seats, backend


def _episode_seats(template: Sequence[Any], backend: Any, options: PlayOptions, seed: int) -> list[Any]:
    """This episode's players: the fixed strategies as given, one fresh `ChatPlayer` (seeded with
    the episode's seed) on every model seat, so self-play is one player on both seats."""
    from gtalign.envs.players import ChatPlayer

    if backend is None:
        return list(template)
    player = ChatPlayer(backend, temperature=options.temperature, max_tokens=options.max_tokens, seed=seed)
    return [player if seat is None else seat for seat in template]


def _write(handle: Any, record: Mapping[str, Any]) -> None:
    import json
    import os

    handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    handle.flush()
    try:
        os.fsync(handle.fileno())
    except OSError:  # a pipe or a special file: flushed is all it can be
        pass


async def _play_all(game: Game, template: Sequence[Any], backend: Any, options: PlayOptions, console: Console,
                    handle: Any) -> PlaySummary:
    from rich.text import Text

    from gtalign.envs import aplay, distance_from_equilibrium

    names = tuple(MODEL if seat is None else getattr(seat, "name", type(seat).__name__) for seat in template)
    if backend is not None:
        label = f"{MODEL} ({getattr(backend, 'model', '') or getattr(backend, 'name', '')})"
        names = tuple(label if seat is None else name for seat, name in zip(template, names))
    summary = PlaySummary((names[0], names[1]), options.seat)
    try:
        for episode in range(options.episodes):
            seed = options.seed + episode
            seats = _episode_seats(template, backend, options, seed)
            show = _Show(console, game, seats, options.seat, enabled=not options.quiet)
            if not options.quiet:
                console.print(Text.assemble((f"Episode {episode + 1} of {options.episodes}", "bold"),
                                            f" (seed {seed}): P0 {names[0]} vs P1 {names[1]}"), soft_wrap=True)
            transcript = await aplay(game, seats, seed, on_step=show)
            distance = [distance_from_equilibrium(game, transcript, seat) for seat in (0, 1)]
            record = episode_record(transcript, episode=episode, spec=options.game, seats=seats,
                                    learner=options.seat, distance=distance)
            summary.add(record)
            if handle is not None:
                _write(handle, record)
            if not options.quiet:
                line = Text("  payoffs: ", style="bold")
                line.append(f"P0 {_num(round(transcript.payoffs[0], 6))}, P1 {_num(round(transcript.payoffs[1], 6))}")
                if transcript.forfeit is not None:
                    line.append(f"  (P{transcript.forfeit} forfeited)", style="red")
                learner_distance = distance[options.seat]
                line.append("  learner's distance from equilibrium: ")
                line.append("n/a (no moves)" if learner_distance is None else _num(round(learner_distance, 4)))
                console.print(line, soft_wrap=True)
    finally:
        if backend is not None:
            await backend.aclose()
    return summary


def run_play(options: PlayOptions) -> int:
    """Run ``gtalign games play`` with ``options``; returns the exit code."""
    import asyncio
    from contextlib import nullcontext

    from rich.console import Console

    from gtalign.cli._main import EXIT_FAILED, EXIT_OK, CommandFailed
    from gtalign.envs import GameError

    game = resolve_game(options.game, options.params)
    template, backend = _players(options, game)
    console = Console(highlight=False)
    try:
        opened = open(options.out, "w", encoding="utf-8") if options.out is not None else nullcontext(None)  # noqa: SIM115
    except OSError:
        if backend is not None:
            asyncio.run(backend.aclose())
        raise
    with opened as handle:
        try:
            summary = asyncio.run(_play_all(game, template, backend, options, console, handle))
        except GameError as exc:  # a fixed strategy's illegal move, or a game whose texts do not parse back
            raise CommandFailed(f"{options.game}: {exc}") from None
    summary.render(console)
    if options.out is not None:
        plural = "s" if summary.episodes != 1 else ""
        console.print(f"wrote {summary.episodes} episode{plural} to {options.out}", markup=False, soft_wrap=True)
    return EXIT_OK if summary.ok else EXIT_FAILED


# -- gtalign games train -------------------------------------------------------------------------------

GAME_ROWS = "game_rows.jsonl"
"""The decision rows ``gtalign games train`` writes into its run folder and trains on."""

GAME_TRL_DEFAULTS: Mapping[str, Any] = {
    "max_steps": 200, "num_generations": 4, "max_completion_length": 64, "learning_rate": 1e-5, "save_steps": 25,
}
"""``gtalign games train``'s trl defaults, over ``gtalign train``'s (sized for SmolLM2-135M on a
2-core CPU: 2 prompts of 4 short completions a step). The per-device batch is 2 prompts' worth,
2 x num_generations, unless ``--trl per_device_train_batch_size=N`` says otherwise."""

_TRAIN_SHORTCUTS = ("max_steps", "learning_rate", "num_generations", "max_completion_length")

_TRAIN_DESCRIPTION = f"""\
Train a model on a classic game with GRPO (TRL's GRPOTrainer through `gtalign train`): each
training row is ONE decision of the learner, and the reward of an answer is the learner's payoff
when that answer is played there and the rest of the episode is played out.

A training row: seeded episodes of GAME are played between a behaviour policy on the learner's
--seat (--behaviour; default mix:0.5, the equilibrium move half the time, else a uniformly random
legal move, so positions off the equilibrium path are visited too) and a fixed --opponent. Every
position where the learner moves becomes a row: the prompt a model player gets in `gtalign games
play` (a game system message and the seat's observation: the rules, the history it knows, how to
answer), the equilibrium move as ground truth, and the position's history so the reward can
rebuild it. E.g. in a 5-round prisoner's dilemma at --seat 1 against always-defect, a row asks
"Round 3 of 5. The first player chose D this round. Your move. Answer with one letter: C ... or D".

The reward: the answer is read as the game reads a move. A valid move is applied, then the
--opponent keeps its seat and the --continuation policy (default: equilibrium) plays the learner's
later moves; the reward is the learner's total payoff (exactly, over chance, when every strategy is
deterministic; else the mean of --samples playouts, drawn the same for every answer at a row). An
answer the game cannot read is a forfeit there: the payoff so far plus the game's invalid-move
penalty (no re-ask; -1 by default, and below every payoff in signaling games: -3 in spence).
--normalise scales payoffs to [0, 1] by the game's payoff range. This is one decision's credit under a declared continuation, not whole-episode RL: evaluate
checkpoints on whole episodes with `gtalign games play --backend embedded:OUT/checkpoint-N`.

The opponent and the continuation are names the game lists (see `gtalign games play --help`),
'equilibrium', 'uniform' or mix:P; not module:attr, since the reward rebuilds them from the names
stored in each row. The behaviour may also be module:attr. GAME is a registered game (prisoners-dilemma,
bargaining, spence, beer-quiche, signaling) with --param KEY=VALUE.

OUT/{GAME_ROWS} holds the rows (a function of GAME, its parameters, the seats' strategies,
--episodes, --samples and --seed: the same flags write the same file, so a run resumes on the same
data; a file of other rows there is refused). Then OUT is a `gtalign train grpo` run folder:
gtalign_train.json, checkpoint-N/, train_log.jsonl, final/. Each logged step has TRL's reward,
reward_std and rewards/game_payoff/mean, and under games/: payoff_mean, payoff_var,
group_std_mean (mean within-prompt std), payoff_norm_mean, opponent_payoff_mean, invalid_frac,
distance_mean (from the equilibrium move, valid answers), regret_mean (the best move's payoff minus
the answer's, forfeits included at their penalty, so it falls as invalid answers do), equilibrium_frac
and unscored_frac. With --normalise, a row whose payoff range cannot scale (reversed or not finite)
is left unscored, with the reason.

Defaults (the trl ones can be changed with --trl KEY=VALUE, as for `gtalign train grpo`): the
embedded model (SmolLM2-135M-Instruct) with a LoRA adapter (r 8, lora_alpha 16, all linear layers),
{GAME_TRL_DEFAULTS["max_steps"]} steps of 2 prompts x {GAME_TRL_DEFAULTS["num_generations"]} completions of up to {GAME_TRL_DEFAULTS["max_completion_length"]} tokens, learning rate
{GAME_TRL_DEFAULTS["learning_rate"]:g}, a checkpoint every {GAME_TRL_DEFAULTS["save_steps"]} steps; --seed also seeds TRL (data order, sampling). On a 2-core
CPU a step takes about half a minute to a minute and a half (more while another run shares it).

Examples:
  gtalign games train prisoners-dilemma --seat 1 --opponent tit-for-tat --episodes 200 --out runs/pd-tft
  gtalign games train bargaining --param delta2=0.5 --max-completion-length 48 --normalise --out runs/barg
  gtalign games train beer-quiche --seat 1 --trl temperature=0.8 --threads 1 --dry-run

Exit codes: 0 trained; 1 failed; 2 usage error (a bad game, strategy or setting, a refused resume);
130 interrupted (run the same command again to resume from the newest checkpoint).
"""


def _configure_train(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    train = actions.add_parser(
        "train",
        help="GRPO on the game's payoff: one decision per prompt, the answer's payoff played out as its reward",
        description=_TRAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("game", metavar="GAME", help="prisoners-dilemma, bargaining, spence, beer-quiche or signaling")
    train.add_argument("--param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                       help="a game parameter, e.g. delta1=0.9 or rounds=null (repeatable; VALUE is read as YAML)")
    seats = train.add_argument_group("players and rows")
    seats.add_argument("--seat", type=int, choices=(0, 1), default=0,
                       help="the learner's seat; 0 moves first, is the sender of a signaling game (default: 0; the "
                       "paper's runs: 1 in the dilemma and signaling)")
    seats.add_argument("--opponent", default="equilibrium", metavar="NAME",
                       help="the other seat's fixed strategy: a name the game lists, equilibrium, uniform or mix:P "
                       "(default: equilibrium)")
    seats.add_argument("--behaviour", default="mix:0.5", metavar="NAME|mix:P",
                       help="who plays the learner's seat while the rows are collected: mix:P (equilibrium with "
                       "probability P, else a random move), a strategy name or module:attr (default: mix:0.5)")
    seats.add_argument("--continuation", default="equilibrium", metavar="NAME",
                       help="who plays the learner's later moves when an answer is valued (default: equilibrium)")
    seats.add_argument("--episodes", type=positive_int, default=200, metavar="N",
                       help="episodes played to collect the rows; every learner decision is a row (default: 200)")
    seats.add_argument("--samples", type=positive_int, default=8, metavar="N",
                       help="playouts per value when a strategy or nature is random and not enumerated (default: 8)")
    seats.add_argument("--normalise", action="store_true", help="reward on [0, 1] by the game's payoff range (default: raw payoff)")
    seats.add_argument("--seed", type=non_negative_int, default=0, metavar="S",
                       help="seed of the episodes (the rows) and of TRL (default: 0)")
    add_model_arguments(train, lora_param=False, lora_help="train a LoRA adapter (peft; r 8 on every linear layer): the default",
                        no_lora_help="train every weight instead of a LoRA adapter")
    add_trl_arguments(train, "grpo", _TRAIN_SHORTCUTS, defaults=dict(GAME_TRL_DEFAULTS))
    add_output_arguments(train, out_help="the run folder (default: runs/games/GAME); an existing run there is resumed",
                         dry_run_help=f"write OUT/{GAME_ROWS}, check every setting and print the plan; load no model, "
                         "train nothing")


def _train_strategy(game: Game, spec: str, name: str, flag: str, *, paths: bool = False) -> Strategy:
    """A strategy the reward can rebuild from its name (`strategy_named`); with ``paths`` also
    module:attr (`resolve_strategy`). A `UsageError` names ``flag``."""
    from gtalign.envs import GameError
    from gtalign.envs._decisions import strategy_named

    if ":" in name and not name.startswith("mix:"):
        if paths:
            return resolve_strategy(game, spec, name, flag=flag)
        raise _usage(f"{flag} {name!r}: a module:attr strategy cannot be trained against: the reward rebuilds each "
                     "row's strategies from their names; use a name the game lists, equilibrium, uniform or mix:P")
    try:
        return strategy_named(game, name)
    except GameError as exc:
        raise _usage(f"{flag} {name!r}: {exc}") from None


def _rows_text(rows: Sequence[Mapping[str, Any]]) -> str:
    import json

    return "".join(json.dumps(row, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n" for row in rows)


def _rows_difference(old: str, new: str) -> str:
    """What differs between two rows files, for a person."""
    import json

    before, after = old.splitlines(), new.splitlines()
    for number, (a, b) in enumerate(zip(before, after)):
        if a == b:
            continue
        try:
            info_a, info_b = json.loads(a).get("extra_info", {}), json.loads(b).get("extra_info", {})
        except (ValueError, AttributeError):
            return f"row {number + 1} differs"
        keys = [key for key in ("game", "params", "seat", "opponent", "behaviour", "continuation", "samples",
                                "episode_seed") if info_a.get(key) != info_b.get(key)]
        if keys:
            key = keys[0]
            return f"row {number + 1}: {key} {info_a.get(key)!r} there vs {info_b.get(key)!r} here"
        return f"row {number + 1} differs"
    return f"{len(before)} rows there vs {len(after)} here (--episodes?)"


def _write_rows(path: Any, text: str) -> bool:
    """Write ``text`` to ``path`` unless it holds it already (False then); a file of other rows is
    refused, naming the first difference."""
    import os

    if path.exists():
        old = path.read_text(encoding="utf-8")
        if old == text:
            return False
        raise _usage(f"{path} holds other game rows ({_rows_difference(old, text)}): the run there trains on them; "
                     "give the flags of that run, or another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return True


def run_train(args: argparse.Namespace) -> int:
    """Run ``gtalign games train`` for parsed ``args``: write the decision rows, then train on
    them with `gtalign.cli._train.execute`; returns the exit code."""
    from pathlib import Path

    from gtalign.cli._train import _quiet_libraries, execute, stderr_say, trl_from_args
    from gtalign.envs import GameError
    from gtalign.envs._decisions import decision_points
    from gtalign.training._config import TrainSetupError, build_lora_config, build_trl_args, config_from_settings
    from gtalign.training._games import game_rows

    command = "gtalign games train"
    game = resolve_game(args.game, yaml_params(args.param))
    opponent = _train_strategy(game, args.game, args.opponent, "--opponent")
    behaviour = _train_strategy(game, args.game, args.behaviour, "--behaviour", paths=True)
    _train_strategy(game, args.game, args.continuation, "--continuation")
    try:
        points = decision_points(game, seat=args.seat, opponent=opponent, behaviour=behaviour, episodes=args.episodes,
                                 seed=args.seed)
        rows = game_rows(points, continuation=args.continuation, samples=args.samples)
    except GameError as exc:
        raise _usage(f"GAME {args.game}: cannot make training rows: {exc}") from None
    if not rows:
        raise _usage(f"--seat {args.seat}: the learner never moves in {args.episodes} episodes of {args.game}")
    out = Path(args.out) if args.out else Path("runs") / "games" / args.game.replace(":", "-").replace("/", "-")
    path = out / GAME_ROWS
    trl: dict[str, Any] = {**GAME_TRL_DEFAULTS, "seed": args.seed, **trl_from_args(args, _TRAIN_SHORTCUTS)}
    trl.setdefault("per_device_train_batch_size", 2 * trl["num_generations"])
    settings = {
        "data": [str(path)], "output_dir": str(out), "prompt": "stored", "threads": args.threads,
        "lora": None if args.lora is False else {},
        "reward": {"mode": "game", "normalise": args.normalise, "samples": args.samples}, "trl": trl,
    }
    if args.model is not None:
        settings["model"] = args.model
    try:
        config = config_from_settings("grpo", settings)
        _quiet_libraries()
        build_trl_args(config)  # TRL's and peft's own checks, before OUT is written
        build_lora_config(config)
    except TrainSetupError as exc:
        raise _usage(str(exc)) from None
    written = _write_rows(path, _rows_text(rows))
    if args.dry_run or not args.quiet:
        what = "wrote" if written else "kept (the same rows)"
        stderr_say()(f"{command}: {what} {path}: {len(rows)} decision rows from {args.episodes} episodes of {args.game} "
                     f"(learner seat {args.seat}, behaviour {behaviour.name}; opponent {opponent.name}, continuation "
                     f"{args.continuation}, {args.samples} samples, seed {args.seed})")
    return execute(config, command=command, resume=args.resume, dry_run=args.dry_run, quiet=args.quiet)


# -- gtalign games report ------------------------------------------------------------------------------

_REPORT_DESCRIPTION = """\
Report what `gtalign games train` runs logged: OUT/report.md and PNG plots, one line per run,
labelled by the run's game, seat and opponent (read from its rows).

RUN_DIR is a `gtalign games train` output folder: gtalign_train.json (the run record),
game_rows.jsonl and train_log.jsonl. A resumed run logs its steps again: the newest line of a step
is used. A run that has not finished is reported as far as it got, and the report says so.

The plots:
  payoff.png       the payoff per step with a band of +- its within-step sd (from games/payoff_var),
                   and the payoff on [0, 1] (games/payoff_norm_mean) on an un-zoomed [0, 1] axis
                   with a 10-step rolling mean
  spread.png       the step-to-step sd of the payoff over a rolling 10-step window (raw, and on [0, 1])
  equilibrium.png  the share of invalid answers, distance from the equilibrium move, regret and the
                   share of equilibrium moves per step
The markdown: per run its status, a table (first vs last 20% of the logged steps: mean payoff with
its standard error and the difference, its spread, the invalid rate, distance from equilibrium,
regret, equilibrium moves), a convergence statement computed from those numbers (a difference of
more than 2 combined standard errors counts as a change; the spread "fell" when the last window's
step-to-step sd is at most half the first's) and the command that makes the run (rebuilt from the
run record and the rows).

Needs matplotlib (pip install 'gtalign[eval]').

Examples:
  gtalign games report runs/pd-tft
  gtalign games report runs/pd-eq runs/pd-tft runs/barg --out reports/games --title "SmolLM2-135M, 200 steps"

Exit codes: 0 written; 1 could not write; 2 usage error (a folder that is not a games train run, a
log with no games/ metrics).
"""


def _configure_report(actions: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = actions.add_parser(
        "report",
        help="reward per step, its variance, invalid answers and distance from equilibrium of games train runs "
        "(markdown and PNG plots)",
        description=_REPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a gtalign games train output folder (one or more)")
    report.add_argument("--out", metavar="DIR",
                        help="where report.md and the PNGs go (default: RUN_DIR/report for one run, games-report for "
                        "several)")
    report.add_argument("--title", metavar="TEXT", help="the report's title (also on the plots)")


def run_report(args: argparse.Namespace) -> int:
    """Run ``gtalign games report`` for parsed ``args``; returns the exit code."""
    from gtalign.cli._games_report import report
    from gtalign.cli._main import EXIT_OK, CommandFailed

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CommandFailed("gtalign games report needs matplotlib: pip install 'gtalign[eval]'") from None
    try:
        path, plots, runs = report(args.runs, args.out, args.title)
    except OSError as exc:
        raise CommandFailed(f"cannot write the report: {exc}") from None
    for run in runs:
        print(f"{run.folder}: {run.label}: {len(run.steps)} logged steps, {run.status}")
    print(f"wrote {path} and {', '.join(plots)} in {path.parent}")
    return EXIT_OK
