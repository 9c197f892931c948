"""``gtalign games report``: what `gtalign games train` runs logged, as markdown and PNG plots.

A run folder holds ``gtalign_train.json`` (the run record: the config, each start of the run),
``game_rows.jsonl`` (the decision rows: game, parameters, seat, opponent, ...) and
``train_log.jsonl`` (one JSON line per logged step; a resumed run logs its steps again, and the
newest line of a step wins). `read_run` reads one folder into a `GameRun` (a `UsageError` names a
folder that is not such a run, or a log without ``games/`` metrics); `summarise` computes the
table's numbers and `convergence` the plain-language statement from them; `markdown` writes the
report and `draw_plots` the PNGs (matplotlib, Agg, imported when called; the ``eval`` extra).

The convergence test is declared, not tuned: the mean payoff of the last 20% of logged steps is
compared with the first 20%'s; a difference of more than `Z` combined standard errors (each window's
standard deviation of step means over the square root of its steps) is a change; the step-to-step
standard deviation "fell" when the last window's is at most `SETTLED_RATIO` of the first's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "METRICS",
    "ROLLING",
    "SETTLED_RATIO",
    "WINDOW_SHARE",
    "Z",
    "Comparison",
    "GameRun",
    "RunSummary",
    "convergence",
    "draw_plots",
    "markdown",
    "read_run",
    "rolling_sd",
    "summarise",
    "train_command",
]

RECORD = "gtalign_train.json"
ROWS = "game_rows.jsonl"
LOG = "train_log.jsonl"
PREFIX = "games/"
METRICS = ("payoff_mean", "payoff_var", "group_std_mean", "payoff_norm_mean", "opponent_payoff_mean", "invalid_frac",
           "distance_mean", "regret_mean", "equilibrium_frac", "unscored_frac")
WINDOW_SHARE = 0.2
"""The first and last windows: this share of the logged steps each (at least one step)."""
Z = 2.0
"""A first-vs-last difference is a change when it exceeds this many combined standard errors."""
SETTLED_RATIO = 0.5
"""The step-to-step spread "fell" when the last window's sd is at most this share of the first's."""
ROLLING = 10
"""The rolling window (steps) of the step-to-step spread in the plots."""


def _usage(message: str) -> Exception:
    from gtalign.cli._main import UsageError

    return UsageError(message)


def _float(value: Any) -> float:
    """A logged number; None, NaN written as text, or anything else that is not a number is NaN."""
    if isinstance(value, bool) or value is None:
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


@dataclass(frozen=True)
class GameRun:
    """One run folder as read: its steps (ascending, the newest line of each) and their metrics."""

    folder: Path
    game: str
    params: Mapping[str, Any]
    seats: tuple[int, ...]
    opponents: tuple[str, ...]
    behaviours: tuple[str, ...]
    continuations: tuple[str, ...]
    samples: tuple[int, ...]
    episodes: int
    record: Mapping[str, Any]
    steps: tuple[int, ...]
    series: Mapping[str, tuple[float, ...]]
    repeated: int = 0
    """Log lines superseded by a newer line of the same step (a resumed run's repeats)."""
    skipped_lines: int = 0
    """Unreadable log lines (e.g. a line cut off by a crash), left out."""
    max_steps: int | None = None
    finished: bool = False

    @property
    def label(self) -> str:
        """The game (its title when its parameters give one: a Beer-Quiche run is a `signaling`
        game, and says Beer-Quiche), the learner's seat and the opponent."""
        seat = "/".join(map(str, self.seats))
        title = self.params.get("title") if isinstance(self.params, Mapping) else None
        name = title if isinstance(title, str) and title.strip() else self.game
        return f"{name}, seat {seat} vs {'/'.join(self.opponents)}"

    def values(self, metric: str) -> tuple[float, ...]:
        return self.series.get(metric, tuple(math.nan for _ in self.steps))

    @property
    def status(self) -> str:
        last = self.steps[-1]
        if self.finished:
            return f"finished at step {last}"
        of = f" of {self.max_steps}" if self.max_steps else ""
        return (f"NOT FINISHED: reported as far as it got, step {last}{of} (still running, or stopped; "
                "running the same command again resumes it)")


def _read_json_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def read_run(folder: str | Path) -> GameRun:
    """The run in ``folder``; a `UsageError` says why a folder is not a `gtalign games train` run
    or has nothing to report yet."""
    folder = Path(folder)
    what = "is not a `gtalign games train` run folder"
    if not folder.is_dir():
        raise _usage(f"{folder}: no such folder")
    record_path, rows_path, log_path = folder / RECORD, folder / ROWS, folder / LOG
    if not record_path.is_file():
        raise _usage(f"{folder} {what}: it has no {RECORD} (the run record gtalign train writes when it starts)")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _usage(f"{record_path} is not readable JSON: {exc}") from None
    config = record.get("config") if isinstance(record, dict) else None
    if not isinstance(config, dict):
        raise _usage(f"{folder} {what}: {RECORD} is not a gtalign training record")
    mode = (config.get("reward") or {}).get("mode") if isinstance(config.get("reward"), dict) else None
    if record.get("kind") != "grpo" or mode != "game":
        raise _usage(f"{folder} {what}: its record is a gtalign train {record.get('kind')} run with reward mode "
                     f"{mode or 'none'}, not reward mode game")
    if not rows_path.is_file():
        raise _usage(f"{folder} {what}: it has no {ROWS}")
    rows, _ = _read_json_lines(rows_path)
    infos = [row.get("extra_info") for row in rows]
    infos = [json.loads(i) if isinstance(i, str) else i for i in infos]
    infos = [i for i in infos if isinstance(i, dict) and "game" in i]
    if not infos:
        raise _usage(f"{folder} {what}: {ROWS} has no game rows")
    if not log_path.is_file():
        raise _usage(f"{folder}: no {LOG} yet: the run has logged no step")
    lines, bad = _read_json_lines(log_path)
    newest: dict[int, dict[str, Any]] = {}
    repeated = 0
    for row in lines:
        if not any(key.startswith(PREFIX) for key in row) or not isinstance(row.get("step"), int):
            continue  # TRL's end-of-training summary (train_runtime, ...) and non-game lines
        if row["step"] in newest:
            repeated += 1
        newest[row["step"]] = row  # the file is appended to: a later line of a step is newer
    if not newest:
        raise _usage(f"{log_path} has no games/ metrics ({len(lines)} logged lines): "
                     "not a run trained on a game's payoff, or no step logged yet")
    steps = tuple(sorted(newest))
    series = {name: tuple(_float(newest[s].get(PREFIX + name)) for s in steps) for name in METRICS}
    series["frac_reward_zero_std"] = tuple(_float(newest[s].get("frac_reward_zero_std")) for s in steps)
    starts = record.get("runs") or []
    trl = config.get("trl") or {}
    max_steps = trl.get("max_steps") if isinstance(trl.get("max_steps"), int) else None
    finished = bool(starts) and bool(starts[-1].get("finished"))

    def distinct(key: str) -> tuple[Any, ...]:
        return tuple(sorted({i.get(key) for i in infos if i.get(key) is not None}, key=str))

    return GameRun(folder=folder, game="/".join(distinct("game")), params=infos[0].get("params") or {},
                   seats=distinct("seat"), opponents=distinct("opponent"), behaviours=distinct("behaviour"),
                   continuations=distinct("continuation"), samples=distinct("samples"),
                   episodes=len({i.get("episode_seed") for i in infos}), record=record, steps=steps, series=series,
                   repeated=repeated, skipped_lines=bad, max_steps=max_steps, finished=finished)


# -- the numbers -------------------------------------------------------------------------------------


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def _mean(values: Sequence[float]) -> float:
    kept = _finite(values)
    return math.fsum(kept) / len(kept) if kept else math.nan


def _sd(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); NaN under two values."""
    kept = _finite(values)
    if len(kept) < 2:
        return math.nan
    mean = math.fsum(kept) / len(kept)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in kept) / (len(kept) - 1))


@dataclass(frozen=True)
class Comparison:
    """A metric in the first and the last window: means, step-to-step sds and standard errors."""

    first: float
    last: float
    first_sd: float
    last_sd: float
    first_n: int
    last_n: int

    @property
    def difference(self) -> float:
        return self.last - self.first

    @property
    def se(self) -> float:
        """The combined standard error of the difference (NaN when a window has fewer than two values)."""
        if self.first_n < 2 or self.last_n < 2:
            return math.nan
        return math.sqrt(self.first_sd ** 2 / self.first_n + self.last_sd ** 2 / self.last_n)


@dataclass(frozen=True)
class RunSummary:
    run: GameRun
    window: int
    first_steps: tuple[int, int]
    last_steps: tuple[int, int]
    metrics: Mapping[str, Comparison] = field(default_factory=dict)
    within_sd: Comparison | None = None
    """Mean within-step sd of the payoff (the square root of payoff_var), per window."""
    overall_sd: float = math.nan
    """Step-to-step sd of the payoff mean over every logged step."""


def _compare(values: Sequence[float], window: int) -> Comparison:
    first, last = list(values[:window]), list(values[-window:])
    return Comparison(_mean(first), _mean(last), _sd(first), _sd(last), len(_finite(first)), len(_finite(last)))


def summarise(run: GameRun) -> RunSummary:
    """The first and last `WINDOW_SHARE` of ``run``'s logged steps, compared metric by metric."""
    n = len(run.steps)
    window = max(1, math.floor(WINDOW_SHARE * n))
    metrics = {name: _compare(run.values(name), window) for name in METRICS}
    within = _compare([math.sqrt(v) if v >= 0 else math.nan for v in run.values("payoff_var")], window)
    return RunSummary(run, window, (run.steps[0], run.steps[window - 1]), (run.steps[-window], run.steps[-1]),
                      metrics, within, _sd(run.values("payoff_mean")))


def convergence(summary: RunSummary) -> str:
    """What the payoff means say about convergence, in words, from `summarise`'s numbers."""
    run, payoff = summary.run, summary.metrics["payoff_mean"]
    so_far = "" if run.finished else " (so far: the run is not finished)"
    n = len(run.steps)
    if math.isnan(payoff.se):
        return (f"Too few logged steps ({n}) to judge convergence{so_far}: each 20% window needs at least two steps "
                "with a payoff, i.e. at least 10 logged steps.")
    diff, se = payoff.difference, payoff.se
    if abs(diff) > Z * se:
        direction = "rose" if diff > 0 else "fell"
        change = (f"The mean payoff {direction} from {payoff.first:.4g} (first 20%, steps {summary.first_steps[0]}–"
                  f"{summary.first_steps[1]}) to {payoff.last:.4g} (last 20%, steps {summary.last_steps[0]}–"
                  f"{summary.last_steps[1]}): a difference of {diff:+.4g}, "
                  + (f"{abs(diff) / se:.1f} combined standard errors ({se:.3g}), more than the {Z:g} taken as a change."
                     if se > 0 else "with no step-to-step noise in either window (every step alike), so a change."))
        moved = True
    else:
        ratio = f"{abs(diff) / se:.1f}" if se > 0 else "0"
        change = (f"The mean payoff of the last 20% ({payoff.last:.4g}, steps {summary.last_steps[0]}–"
                  f"{summary.last_steps[1]}) is within {Z:g} combined standard errors of the first 20%'s "
                  f"({payoff.first:.4g}, steps {summary.first_steps[0]}–{summary.first_steps[1]}): a difference of "
                  f"{diff:+.4g} is {ratio} standard errors ({se:.3g}), no change the step-to-step noise can tell apart.")
        moved = False
    # a spread can only fall from something: two noiseless windows have not "settled", they never moved
    settled = payoff.first_sd > 0 and payoff.last_sd <= SETTLED_RATIO * payoff.first_sd
    if payoff.first_sd == 0:
        spread = (f"The step-to-step standard deviation of the payoff mean was 0 in the first 20% (every step alike) "
                  f"and {payoff.last_sd:.3g} in the last, so there was no spread to fall.")
    else:
        spread = (f"The step-to-step standard deviation of the payoff mean went from {payoff.first_sd:.3g} to "
                  f"{payoff.last_sd:.3g} ({'at most' if settled else 'more than'} {SETTLED_RATIO:.0%} of the first).")
    if moved and settled:
        verdict = "Converging in this test's sense: the mean moved and the step-to-step spread fell"
    elif moved:
        verdict = "Not settled: the mean moved, but the step-to-step spread did not fall"
    elif settled:
        verdict = "The mean did not move, but the step-to-step spread fell"
    else:
        verdict = "No sign of convergence: the mean did not move beyond the noise and the step-to-step spread did not fall"
    return f"{verdict}{so_far}. {change} {spread}"


def rolling_sd(values: Sequence[float], window: int = ROLLING) -> list[float]:
    """The sd of the last ``window`` values at each step (NaN until two finite values are in it)."""
    return [_sd(values[max(0, i + 1 - window):i + 1]) for i in range(len(values))]


# -- the command that made a run ---------------------------------------------------------------------


def _arg(value: Any) -> str:
    import shlex

    text = value if isinstance(value, str) else json.dumps(value)
    return shlex.quote(text)


def train_command(run: GameRun) -> str:
    """The `gtalign games train` command that makes ``run``'s rows and settings, rebuilt from its
    record and rows (the record keeps the settings, not the command line)."""
    from gtalign.cli._games import GAME_TRL_DEFAULTS

    config = run.record.get("config") or {}
    parts = ["gtalign games train", _arg(run.game)]
    parts += [f"--param {_arg(f'{k}={json.dumps(v)}')}" for k, v in sorted(run.params.items())]
    parts += [f"--seat {run.seats[0]}" if run.seats else ""]
    for flag, values in (("--opponent", run.opponents), ("--behaviour", run.behaviours),
                         ("--continuation", run.continuations), ("--samples", run.samples)):
        if values:
            parts.append(f"{flag} {_arg(values[0])}")
    parts.append(f"--episodes {run.episodes}")
    reward = config.get("reward") or {}
    if reward.get("normalise"):
        parts.append("--normalise")
    trl = dict(config.get("trl") or {})
    if "seed" in trl:
        parts.append(f"--seed {trl.pop('seed')}")
    if trl.get("per_device_train_batch_size") == 2 * trl.get("num_generations", -1):
        trl.pop("per_device_train_batch_size")
    for key, value in sorted(trl.items()):
        if GAME_TRL_DEFAULTS.get(key, object()) != value:
            parts.append(f"--trl {_arg(f'{key}={json.dumps(value)}')}")
    if config.get("model") not in (None, "embedded"):
        parts.append(f"--model {_arg(config['model'])}")
    if config.get("lora") is None:
        parts.append("--no-lora")
    if config.get("threads") is not None:
        parts.append(f"--threads {config['threads']}")
    parts.append(f"--out {_arg(config.get('output_dir', str(run.folder)))}")
    return " ".join(p for p in parts if p)


# -- markdown ----------------------------------------------------------------------------------------


def _num(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}g}"


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def _with_se(mean: float, sd: float, n: int) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.4g} ± {sd / math.sqrt(n):.2g}" if n >= 2 else f"{mean:.4g}"


def _table(summary: RunSummary) -> list[str]:
    m = summary.metrics
    first = f"first 20% (steps {summary.first_steps[0]}–{summary.first_steps[1]})"
    last = f"last 20% (steps {summary.last_steps[0]}–{summary.last_steps[1]})"
    lines = [f"| metric | {first} | {last} | last − first |", "|---|---|---|---|"]
    p = m["payoff_mean"]
    diff = "n/a" if math.isnan(p.difference) else (f"{p.difference:+.4g} ± {p.se:.2g}" if not math.isnan(p.se)
                                                   else f"{p.difference:+.4g}")
    lines.append(f"| mean payoff (± standard error) | {_with_se(p.first, p.first_sd, p.first_n)} | "
                 f"{_with_se(p.last, p.last_sd, p.last_n)} | {diff} |")
    lines.append(f"| step-to-step sd of the payoff mean | {_num(p.first_sd, 3)} | {_num(p.last_sd, 3)} | |")
    w = summary.within_sd
    assert w is not None
    lines.append(f"| within-step sd of the payoff (√payoff_var) | {_num(w.first, 3)} | {_num(w.last, 3)} | |")
    rows = (("payoff on [0, 1] (payoff_norm_mean)", "payoff_norm_mean", _num),
            ("opponent's payoff", "opponent_payoff_mean", _num),
            ("invalid answers", "invalid_frac", _pct),
            ("distance from equilibrium (valid answers)", "distance_mean", _num),
            ("regret (best move's payoff − the answer's; a forfeit's at its penalty)", "regret_mean", _num),
            ("equilibrium moves", "equilibrium_frac", _pct))
    for label, name, fmt in rows:
        c = m[name]
        delta = "n/a" if math.isnan(c.difference) else (
            f"{c.difference * 100:+.1f} points" if fmt is _pct else f"{c.difference:+.4g}")
        lines.append(f"| {label} | {fmt(c.first)} | {fmt(c.last)} | {delta} |")
    return lines


def markdown(runs: Sequence[GameRun], plots: Sequence[str], *, title: str | None = None) -> str:
    """The report: per run its status, table, convergence statement and command; then the plots."""
    summaries = [summarise(run) for run in runs]
    labels = run_labels(runs)
    lines = [f"# {title or 'Classic games: GRPO on the payoff'}", "",
             "Each logged GRPO step scores a batch of completions (decisions of the learner) by the payoff they earn "
             "when the rest of the episode is played out (`gtalign games train`). A step's numbers are means over "
             "its completions; where a run was resumed, the newest log line of a step is used. The first and last "
             f"windows are the first and last {WINDOW_SHARE:.0%} of the logged steps; a difference counts as a "
             f"change when it exceeds {Z:g} combined standard errors (each window's sd of step means / √steps); the "
             f"step-to-step spread \"fell\" when the last window's sd is at most {SETTLED_RATIO:.0%} of the first's.",
             ""]
    for summary, label in zip(summaries, labels):
        run = summary.run
        lines += [f"## {label}", "", f"Folder `{run.folder}`: {len(run.steps)} logged steps, {run.status}."]
        notes = []
        if run.repeated:
            notes.append(f"{run.repeated} log lines of steps logged again after a resume were superseded by newer ones")
        if run.skipped_lines:
            notes.append(f"{run.skipped_lines} unreadable log lines were left out")
        starts = run.record.get("runs") or []
        if len(starts) > 1:
            notes.append(f"trained in {len(starts)} starts (" + "; ".join(
                f"{s.get('started', '?')}" + (f" from {s['resumed_from']}" if s.get("resumed_from") else "")
                for s in starts) + ")")
        if notes:
            lines.append("Note: " + "; ".join(notes) + ".")
        lines += ["", *_table(summary), "", f"**Convergence.** {convergence(summary)}", "",
                  "Command (rebuilt from the run record and the rows):", "", "```", train_command(run), "```", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    return "\n".join(lines)


def run_labels(runs: Sequence[GameRun]) -> list[str]:
    """Each run's game/seat/opponent label; the folder name is added where labels repeat."""
    labels = [run.label for run in runs]
    return [f"{label} ({run.folder.name})" if labels.count(label) > 1 else label for label, run in zip(labels, runs)]


# -- plots -------------------------------------------------------------------------------------------


def draw_plots(runs: Sequence[GameRun], out: Path, *, title: str | None = None) -> list[str]:
    """Write the PNGs into ``out``; returns their file names."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    written: list[str] = []
    for name, fig in build_figures(runs, title=title).items():
        FigureCanvasAgg(fig)
        fig.savefig(out / name, dpi=120)
        written.append(name)
    return written


def build_figures(runs: Sequence[GameRun], *, title: str | None = None) -> dict[str, Any]:
    """The report's matplotlib figures by file name, drawn but not saved (so tests can read their axes)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    colours = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
    style = {"font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold", "legend.fontsize": 8,
             "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3}
    labels = run_labels(runs)
    figures: dict[str, Any] = {}
    prefix = f"{title}: " if title else ""

    steps = [step for run in runs for step in run.steps]

    def save(fig: Any, name: str) -> None:
        # GRPO steps are whole numbers: every panel spans all logged steps (a rolling sd starts late),
        # with ticks on whole steps only, even for a two-step run
        for ax in fig.axes:
            if steps:
                pad = max(0.5, 0.03 * (max(steps) - min(steps)))
                ax.set_xlim(min(steps) - pad, max(steps) + pad)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        figures[name] = fig

    def legend(fig: Any, axes: Any) -> None:
        handles, names = axes.get_legend_handles_labels()
        if handles:
            fig.legend(handles, names, loc="lower center", ncol=min(len(names), 2), frameon=False)

    with rc_context(style):
        # 1. the payoff: raw with the within-step band; on [0, 1] with a rolling mean, un-zoomed
        fig = Figure(figsize=(11, 4.6), layout="constrained")
        raw, norm = fig.subplots(1, 2)
        for run, label, colour in zip(runs, labels, colours * 4):
            x = list(run.steps)
            mean = run.values("payoff_mean")
            sd = [math.sqrt(v) if v >= 0 else math.nan for v in run.values("payoff_var")]
            raw.plot(x, mean, color=colour, marker=".", lw=1, label=label)
            raw.fill_between(x, [m - s for m, s in zip(mean, sd)], [m + s for m, s in zip(mean, sd)], color=colour,
                             alpha=0.15, lw=0)
            values = run.values("payoff_norm_mean")
            if _finite(values):
                norm.plot(x, values, color=colour, marker=".", lw=0.8, alpha=0.6)
                rolling = [_mean(values[max(0, i + 1 - ROLLING):i + 1]) for i in range(len(values))]
                norm.plot(x, rolling, color=colour, lw=2.2)
        raw.set(xlabel="GRPO step", ylabel="payoff (mean over the step's completions)",
                title=f"{prefix}payoff per step (band: ± within-step sd)")
        norm.set(xlabel="GRPO step", ylabel="payoff scaled to [0, 1] by the game's range", ylim=(-0.02, 1.02),
                 title=f"payoff on [0, 1] (thin: per step; thick: {ROLLING}-step mean)")
        legend(fig, raw)
        fig.get_layout_engine().set(rect=(0, 0.1, 1, 0.9))
        save(fig, "payoff.png")

        # 2. the step-to-step spread over a rolling window
        fig = Figure(figsize=(11, 4.4), layout="constrained")
        left, right = fig.subplots(1, 2)
        has_norm = False
        for run, label, colour in zip(runs, labels, colours * 4):
            x = list(run.steps)
            left.plot(x, rolling_sd(run.values("payoff_mean")), color=colour, marker=".", lw=1.6, label=label)
            values = run.values("payoff_norm_mean")
            if _finite(values):
                has_norm = True
                right.plot(x, rolling_sd(values), color=colour, marker=".", lw=1.6)
        left.set(xlabel="GRPO step", ylabel=f"sd of the last {ROLLING} step means (payoff units)",
                 title=f"{prefix}step-to-step spread of the payoff")
        left.set_ylim(bottom=0)
        right.set(xlabel="GRPO step", ylabel=f"sd of the last {ROLLING} step means", ylim=(0, 0.5),
                  title="the same on [0, 1] (axis up to 0.5, the largest possible sd)")
        if not has_norm:
            right.text(0.5, 0.5, "no payoff_norm_mean logged", ha="center", transform=right.transAxes)
        legend(fig, left)
        fig.get_layout_engine().set(rect=(0, 0.1, 1, 0.9))
        save(fig, "spread.png")

        # 3. invalid answers, distance from equilibrium, regret, equilibrium moves
        fig = Figure(figsize=(11, 7.5), layout="constrained")
        axes = fig.subplots(2, 2)
        panels = (("invalid_frac", "share of invalid answers", "share of the step's answers", (-0.02, 1.02)),
                  ("distance_mean", "distance from the equilibrium move (valid answers)",
                   "0: the equilibrium move, 1: farthest", (-0.02, 1.02)),
                  ("regret_mean", "regret: best move's payoff − the answer's (forfeits included)", "payoff units", None),
                  ("equilibrium_frac", "share of equilibrium moves", "share of the step's answers", (-0.02, 1.02)))
        for ax, (name, what, unit, limits) in zip(axes.flat, panels):
            for run, label, colour in zip(runs, labels, colours * 4):
                ax.plot(list(run.steps), run.values(name), color=colour, marker=".", lw=1, label=label)
            ax.set(xlabel="GRPO step", ylabel=unit, title=what if name != "invalid_frac" else f"{prefix}{what}")
            if limits:
                ax.set_ylim(*limits)
            else:
                ax.set_ylim(bottom=0)
        legend(fig, axes.flat[0])
        fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
        save(fig, "equilibrium.png")
    return figures


def report(folders: Sequence[str], out: str | None, title: str | None) -> tuple[Path, list[str], list[GameRun]]:
    """Read ``folders``, write ``out``/report.md and the PNGs; returns the report's path, the PNG
    names and the runs."""
    runs = [read_run(folder) for folder in folders]
    target = Path(out) if out else (runs[0].folder / "report" if len(runs) == 1 else Path("games-report"))
    target.mkdir(parents=True, exist_ok=True)
    plots = draw_plots(runs, target, title=title)
    path = target / "report.md"
    path.write_text(markdown(runs, plots, title=title), encoding="utf-8")
    return path, plots, runs
