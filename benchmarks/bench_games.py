"""Benchmark: the paper's Figure-3 experiment at small scale (issue 11): RL directly on classic games.

The paper trains an LLM with RL on a sequential prisoner's dilemma, Rubinstein bargaining and a
signaling game and reports reward that is high-variance and does not settle. Here SmolLM2-135M-
Instruct (the embedded default) learns each game against a fixed opponent with `gtalign games
train` (GRPO; each completion is one decision of the learner, scored by the payoff it earns when
the episode is played out), once from the base model and once from the GTAlign-trained adapter of
issue 10 (``--adapter``, e.g. the learning curve's ``OUT/grpo/final``): does a model that reasons
with payoff matrices start or end closer to equilibrium play?

The games (``GAMES``), each against the game's own equilibrium strategy in the other seat, so the
learner's best response is the equilibrium move and payoff and distance from equilibrium agree:
  * ``prisoners-dilemma``: 5 rounds, no discount, T R P S = 5 3 1 0; the learner moves first in
    each round (seat 0). Subgame-perfect play: defect every round.
  * ``bargaining``: Rubinstein alternating offers, delta = (0.9, 0.9), offers on a 0.01 grid, the
    learner proposes first. Subgame-perfect play on the grid: offer 0.50 and agree at once.
  * ``beer-quiche``: the newcomer (sender, seat 0; weak with probability 0.1) against the bully's
    reference equilibrium (duel after quiche, retreat after beer). Equilibrium: beer for both types.

1. ``run`` does every step below, each an ordinary gtalign command, in order; a step that finished
   is skipped (``STEP.done``), a killed one runs again (`gtalign games train` resumes from its newest
   checkpoint), so rerunning the command continues. Per game and start (``base``, ``gtalign``):
   * ``eval-START-GAME-before``: ``gtalign games play`` of the starting model on whole episodes
     (``--episodes``, sampled at temperature 1 as GRPO samples, seeds 1000..);
   * ``train-START-GAME``: ``gtalign games train`` (``--steps`` steps of 2 decisions x 4
     completions of up to 48 tokens, LoRA r 8, learning rate 1e-4, seed 0);
   * ``eval-START-GAME-after``: the same whole-episode evaluation of the trained adapter.
   Reference rows without a model (``ref-GAME``): the equilibrium strategy and a uniformly random
   player on the learner's seat, 200 episodes each.
2. ``report [--write]`` writes ``benchmarks/RESULTS_games.md`` and ``benchmarks/figures/games_*.png``
   (reward per step, its spread, distance from equilibrium; `gtalign games report`'s analysis per
   game), with ``OUT/notes.md`` (what was observed) when present.

    .venv/bin/python benchmarks/bench_games.py run --adapter ~/curve/grpo/final    # hours; rerun to resume
    .venv/bin/python benchmarks/bench_games.py report --write
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _steps import ROOT, Step, portable, run_steps, steps_log  # noqa: E402 (benchmarks/_steps.py, beside this script)

from gtalign.cli._games import PlaySummary  # noqa: E402

GTALIGN = ROOT / ".venv" / "bin" / "gtalign"
OUT = ROOT / "benchmarks" / "out" / "games"
RESULTS = ROOT / "benchmarks" / "RESULTS_games.md"
FIGURES = ROOT / "benchmarks" / "figures"
STARTS = ("base", "gtalign")
EVAL_SEED = 1000
REFERENCE_EPISODES = 200
MAX_TOKENS = 48  # an answer is a move ('D', 'offer 0.5', 'beer'); the base model rambles past any budget


@dataclass(frozen=True, slots=True)
class GameSetup:
    """One game of the experiment: its parameters, the learner's seat and the fixed opponent."""

    name: str
    params: tuple[str, ...] = ()
    seat: int = 0
    opponent: str = "equilibrium"
    equilibrium: str = ""
    """What equilibrium play is for the learner, in words, for the report."""

    def args(self) -> list[str]:
        out = [self.name]
        for param in self.params:
            out += ["--param", param]
        return out + ["--seat", str(self.seat)]


GAMES = (
    GameSetup("prisoners-dilemma", ("rounds=5", "discount=1"),
              equilibrium="defect in every round (payoff 5 against the equilibrium opponent)"),
    GameSetup("bargaining", ("delta1=0.9", "delta2=0.9"),
              equilibrium="offer 0.50 at once, accepted (the subgame-perfect split on the game's 0.01 grid; "
              "Rubinstein's continuous split is 0.5263, and a grid of step g moves it by up to g / (1 - δ1 δ2))"),
    GameSetup("beer-quiche", equilibrium="beer, whichever the type (the pooling equilibrium the opponent plays "
              "against)"),
)


@dataclass(frozen=True, slots=True)
class Settings:
    out: Path
    adapter: Path | None
    threads: int
    steps: int
    episodes: int
    rows: int

    def start_model(self, start: str) -> str:
        return "embedded" if start == "base" else str(self.adapter)

    def start_backend(self, start: str) -> str:
        return "embedded:base" if start == "base" else f"embedded:{self.adapter}"


def play_command(s: Settings, game: GameSetup, backend: str, out: Path) -> tuple[str, ...]:
    """Whole episodes of a model against the game's fixed opponent, sampled as GRPO samples."""
    return (str(GTALIGN), "games", "play", *game.args(), "--opponent", game.opponent, "--backend", backend,
            "--temperature", "1", "--max-tokens", str(MAX_TOKENS), "--episodes", str(s.episodes), "--seed", str(EVAL_SEED),
            "--out", str(out), "-q")


def train_command(s: Settings, game: GameSetup, start: str) -> tuple[str, ...]:
    return (str(GTALIGN), "games", "train", *game.args(), "--opponent", game.opponent, "--episodes", str(s.rows),
            "--model", s.start_model(start), "--max-steps", str(s.steps), "--learning-rate", "1e-4",
            "--max-completion-length", str(MAX_TOKENS), "--trl", "save_steps=10", "--seed", "0", "--threads", str(s.threads),
            "--out", str(s.out / f"train-{start}-{game.name}"))


def reference_commands(s: Settings, game: GameSetup) -> tuple[tuple[str, ...], ...]:
    return tuple((str(GTALIGN), "games", "play", *game.args(), "--opponent", game.opponent, "--player", player,
                  "--episodes", str(REFERENCE_EPISODES), "--seed", str(EVAL_SEED),
                  "--out", str(s.out / f"ref-{game.name}-{player}.jsonl"), "-q")
                 for player in ("equilibrium", "random"))


def starts(s: Settings) -> tuple[str, ...]:
    return STARTS if s.adapter is not None else STARTS[:1]


def steps(s: Settings) -> list[Step]:
    out = [Step(f"ref-{game.name}", reference_commands(s, game)) for game in GAMES]
    for start in starts(s):
        for game in GAMES:
            run = s.out / f"train-{start}-{game.name}"
            out += [
                Step(f"eval-{start}-{game.name}-before",
                     (play_command(s, game, s.start_backend(start), s.out / f"eval-{start}-{game.name}-before.jsonl"),)),
                Step(f"train-{start}-{game.name}", (train_command(s, game, start),)),
                Step(f"eval-{start}-{game.name}-after",
                     (play_command(s, game, f"embedded:{run / 'final'}", s.out / f"eval-{start}-{game.name}-after.jsonl"),)),
            ]
    return out


# -- whole-episode evaluation ------------------------------------------------------------------------


def summarise_episodes(path: Path) -> PlaySummary:
    """The `gtalign games play` summary of an ``--out`` file: per seat, payoff and distance from
    equilibrium (mean ± standard error over episodes), answers the game refused (each refusal counts,
    re-asks included), forfeits and failed model calls."""
    return PlaySummary.read(path)


# -- the report ----------------------------------------------------------------------------------------


def _episode_table(s: Settings) -> list[str]:
    lines = ["| game | player | episodes | learner payoff | distance from equilibrium | invalid answers | forfeits |",
             "|---|---|---|---|---|---|---|"]
    for game in GAMES:
        rows = [("equilibrium strategy", s.out / f"ref-{game.name}-equilibrium.jsonl"),
                ("uniformly random", s.out / f"ref-{game.name}-random.jsonl")]
        for start in starts(s):
            rows += [(f"{start} model, before", s.out / f"eval-{start}-{game.name}-before.jsonl"),
                     (f"{start} model, after GRPO", s.out / f"eval-{start}-{game.name}-after.jsonl")]
        for label, path in rows:
            if not path.exists():
                continue
            if path.name.startswith("eval-") and not path.with_suffix(".done").exists():
                label += " (unfinished)"
            e = summarise_episodes(path)
            seat = e.learner
            answers, refused = e.answers[seat], e.invalid[seat]
            invalid = f"{refused}/{answers} ({refused / answers:.0%})" if answers else "0/0"
            failed = f", {e.failed_by_seat[seat]} failed calls" if e.failed_by_seat[seat] else ""
            d = e.distance(seat)
            distance = f"{d} (n={d.n})" if d.n < e.episodes else str(d)
            lines.append(f"| {game.name} | {label} | {e.episodes} | {e.payoff(seat)} | {distance} | {invalid}{failed} | "
                         f"{e.forfeits[seat]} |")
    return lines


def _train_sections(s: Settings, write_figures: bool) -> list[str]:
    """`gtalign games report`'s analysis of the training runs, one section (and set of plots) per game."""
    from gtalign.cli._games_report import draw_plots, markdown, read_run

    lines: list[str] = []
    for game in GAMES:
        folders = [s.out / f"train-{start}-{game.name}" for start in starts(s)]
        folders = [f for f in folders if (f / "train_log.jsonl").exists()]
        if not folders:
            continue
        runs = [read_run(folder) for folder in folders]
        plots: list[str] = []
        if write_figures:
            target = FIGURES / f"games_{game.name}"
            target.mkdir(parents=True, exist_ok=True)
            plots = [f"figures/games_{game.name}/{name}" for name in draw_plots(runs, target, title=game.name)]
        body = portable(markdown(runs, plots, title=game.name), {"OUT": s.out, "ADAPTER": s.adapter})
        lines += ["#" + body.replace("\n## ", "\n### ").strip(), ""]
    return lines


def _policy_text() -> str:
    """How each game treats refused answers, read from the games themselves."""
    import yaml

    from gtalign.cli._games import resolve_game

    policies: dict[tuple[int, float], list[str]] = {}
    for game in GAMES:
        params = {key: yaml.safe_load(value) for key, value in (param.split("=", 1) for param in game.params)}
        policy = resolve_game(game.name, params).invalid_moves
        policies.setdefault((policy.retries, policy.penalty), []).append(game.name)
    return "; ".join(f"{retries} times, then forfeited at a penalty of {penalty:g}"
                     + (f" ({', '.join(names)})" if len(policies) > 1 else "")
                     for (retries, penalty), names in policies.items())


def report(s: Settings, write_figures: bool = False) -> str:
    lines = ["# Classic games: RL directly on the payoff (the paper's Figure 3, small scale)", "",
             "SmolLM2-135M-Instruct on this CPU learns three classic games with GRPO against a fixed opponent "
             "(`gtalign games train`: each completion is one decision of the learner, scored by the payoff it earns "
             "when the episode is played out, the later moves by equilibrium play), " + (
                 "from the base model and from the GTAlign-trained adapter of issue 10." if s.adapter is not None else
                 "from the base model (the runs from the GTAlign-trained adapter of issue 10 are not in this folder: "
                 "they need `--adapter`).") + " The opponent is the game's own equilibrium strategy, so the "
             "best response is the equilibrium move: payoff and distance from equilibrium measure the same thing "
             "from two sides. Distance: 0 is the equilibrium move at every turn, 1 never (bargaining offers count "
             "by how far they are).", "",
             "Games: " + "; ".join(f"`{game.name}` ({', '.join(game.params) or 'defaults'}, learner seat {game.seat}, "
                                   f"opponent {game.opponent}; equilibrium play: {game.equilibrium})"
                                   for game in GAMES) + ".", "",
             "Reproduce: `.venv/bin/python benchmarks/bench_games.py run --adapter ADAPTER` (resumable), then "
             "`.venv/bin/python benchmarks/bench_games.py report --write`. The commands that ran to the end (every run is in the steps table; OUT is the run "
             "folder, ADAPTER the issue-10 adapter):", "", "```"]
    log = steps_log(s.out, r"--out (\S+)")
    lines += [portable(row["command"], {"OUT": s.out, "ADAPTER": s.adapter}) for row in log if row["exit"] == 0]
    names = [step.name for step in steps(s)]
    done = [name for name in names if (s.out / f"{name}.done").exists()]
    status = ("every step is done" if len(done) == len(names) else
              f"done: {', '.join(done) or 'nothing yet'}; not yet: {', '.join(n for n in names if n not in done)}")
    lines += ["```", "", f"Status: {status}.", "",
              "## Whole episodes, before and after training", "",
              f"`gtalign games play` against the same opponent: {s.episodes} episodes per model (seeds {EVAL_SEED} on, "
              f"sampled at temperature 1, {MAX_TOKENS} tokens an answer; a refused answer is asked again "
              f"{_policy_text()}), and {REFERENCE_EPISODES} episodes of two fixed strategies for scale. Payoff and "
              "distance: mean ± standard error over episodes; an episode forfeited before the learner's first valid "
              "move has no distance, so the distance's n is shown where it is smaller.", ""]
    lines += _episode_table(s)
    lines += ["", "## Training: reward per step, its spread, distance from equilibrium", ""]
    lines += _train_sections(s, write_figures)
    lines += ["## Steps: wall time, CPU and peak memory", "", "| step | wall | CPU | peak RSS | exit |", "|---|---|---|---|---|"]
    for row in log:
        lines.append(f"| {row['step']} | {row['wall_s'] / 60:.1f} min | {row['cpu_s'] / 60:.1f} min | "
                     f"{row['peak_rss_gb']:.1f} GB | {row['exit']} |")
    notes = s.out / "notes.md"
    if notes.exists():  # what the person running the experiment observed (OUT/notes.md), kept as written
        lines += ["", "## Notes", "", notes.read_text(encoding="utf-8").strip()]
    lines += ["", f"Settings (recorded in OUT/settings.json): {s.steps} GRPO steps per run, {s.rows} row episodes, "
                  f"{s.episodes} evaluation episodes; each command's threads are in its command line above."]
    return "\n".join(lines) + "\n"


DEFAULTS = {"steps": 30, "episodes": 12, "rows": 200}


class SettingsError(ValueError):
    """A flag that contradicts the run folder's recorded settings."""


def _settings(args: argparse.Namespace) -> Settings:
    """The run folder's settings (``OUT/settings.json``) win over the flags, so a rerun resumes the same
    experiment (a flag that differs is named and ignored); the first ``run`` records them. An adapter
    may be added to a base-only folder, never swapped for another: its runs would mix two models."""
    path = args.out / "settings.json"
    recorded: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    adapter = args.adapter.resolve() if args.adapter else None
    if recorded.get("adapter"):
        if adapter is not None and adapter != Path(recorded["adapter"]):
            raise SettingsError(f"--adapter {adapter}: the run folder {args.out} was started from the adapter "
                                f"{recorded['adapter']}; use another --out for another adapter")
        adapter = Path(recorded["adapter"])
    numbers = {}
    for key, default in DEFAULTS.items():
        given = getattr(args, key)
        numbers[key] = int(recorded.get(key, given if given is not None else default))
        if given is not None and given != numbers[key]:
            print(f"bench_games: --{key} {given} ignored: the run folder {args.out} records {numbers[key]}", file=sys.stderr)
    return Settings(args.out.resolve(), adapter, args.threads, numbers["steps"], numbers["episodes"], numbers["rows"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=("run", "report"))
    parser.add_argument("--out", type=Path, default=OUT, help="the run folder (default: benchmarks/out/games)")
    parser.add_argument("--adapter", type=Path,
                        help="the GTAlign-trained adapter to start the second set of runs from (issue 10's "
                        "OUT/grpo/final); without it only the base model's runs are done")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of each command (default: %(default)s)")
    parser.add_argument("--steps", type=int, help=f"GRPO steps per run (default: {DEFAULTS['steps']})")
    parser.add_argument("--episodes", type=int, help=f"whole episodes per evaluation (default: {DEFAULTS['episodes']})")
    parser.add_argument("--rows", type=int, help=f"episodes the training rows are drawn from (default: {DEFAULTS['rows']})")
    parser.add_argument("--until", metavar="STEP", help="run: stop after this step")
    parser.add_argument("--only", metavar="STEP", action="append", help="run: only this step (repeatable)")
    parser.add_argument("--write", action="store_true", help="report: write benchmarks/RESULTS_games.md and the figures")
    args = parser.parse_args(argv)
    if args.adapter is not None and not (args.adapter / "adapter_config.json").exists():
        parser.error(f"--adapter {args.adapter}: not a LoRA adapter folder (no adapter_config.json)")
    try:
        s = _settings(args)
    except SettingsError as exc:
        parser.error(str(exc))
    names = [step.name for step in steps(s)]
    for name in [args.until] * (args.until is not None) + (args.only or []):
        if name not in names:
            parser.error(f"no step named {name!r}; the steps: {', '.join(names)}")
    if args.phase == "run":
        s.out.mkdir(parents=True, exist_ok=True)
        (s.out / "settings.json").write_text(json.dumps(
            {"adapter": str(s.adapter) if s.adapter else None, "steps": s.steps, "episodes": s.episodes,
             "rows": s.rows}) + "\n")
        return run_steps(s.out, steps(s), s.threads, args.until, args.only or ())
    try:
        text = report(s, write_figures=args.write)
    except ValueError as exc:
        print(f"bench_games: {exc}", file=sys.stderr)
        return 1
    print(text)
    if args.write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
