"""``gtalign metrics``: recompute every metric of one or more runs (run logs or verl validation
dumps) and compare the first run with each other one.

Only argparse is imported at module level; numpy, moocore, rich and the metrics are imported when
the command runs, so ``gtalign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from gtalign.cli._args import non_negative_float, non_negative_int

if TYPE_CHECKING:
    from rich.console import Console

    from gtalign.metrics import Comparison, RunMetrics
    from gtalign.metrics._readers import LoadedRun

__all__ = ["BOOTSTRAP_CHOICES", "add_interval_and_label_options", "configure", "run"]

BOOTSTRAP_CHOICES: tuple[str, ...] = ("two-level", "cluster")
"""`gtalign.metrics.BOOTSTRAPS`, spelled out so that ``--help`` does not import numpy (a test keeps
the two equal)."""

_DESCRIPTION = """\
Recompute the evaluation metrics (SPEC section 5, corrected where the research code is wrong) of
one or more runs. Each RUN_OR_DUMP is a gtalign run folder, its run.jsonl, or a verl validation
dump (JSONL rows with input, output, score, user_reward, llm_reward, answer_reward, format_reward,
source; rows are matched by line number, so dumps of the same validation set compare row by row).
A dump without ground truth gets its labels from --labels: the benchmark it was asked from (a name,
read from --labels-data or the default data folder, or a .jsonl/.parquet file), joined on the
prompt text; unmatched and ambiguous rows are counted on stderr.

Per run, per data source and overall: row counts and every failure (generation failures, judge
failures by status, errors, unparsable answers, which stay in the means with the reward they got),
mean welfare sqrt(U*L), U, L, answer quality, format validity, consistency, lengths, answer quality
per 1,000 output tokens, each with a bootstrap 95% interval over prompts (and, by default, over
the epochs of each prompt: --bootstrap) and, with several epochs, "sd" the standard deviation of
the per-epoch means; the action mix by label; ambiguity and harm classification accuracy and F1.

With several runs, the first is compared with each other one on their shared (prompt, epoch)
rows: epsilon-Pareto coverage, regret, hypervolume (moocore, beside the research code's one-box
value, which under-counts), and welfare wins/ties/losses with a paired bootstrap interval.

Examples:
  gtalign metrics runs/base runs/gtalign
  gtalign metrics val_dump_base.jsonl val_dump_trained.jsonl --epsilon 0.1 --json > metrics.json
  gtalign metrics val_dump.jsonl --labels wildguard --labels-data ../shared/data/gtalign

Exit codes: 0 computed (lines skipped in an input are reported on stderr); 1 an input cannot be
read; 2 usage error.
"""

_TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("welfare", "welfare sqrt(U*L)"),
    ("user", "U"),
    ("llm", "L"),
    ("answer_quality", "answer quality"),
    ("score", "preset score"),
    ("format_validity", "format valid"),
    ("chosen_is_welfare_choice", "chosen = welfare choice"),
    ("response_carries_out_choice", "response = chosen action"),
    ("output_tokens", "output tokens"),
    ("output_chars", "output chars"),
    ("reasoning_chars", "reasoning chars"),
    ("reasoning_tokens", "reasoning tokens"),
    ("response_share", "response / answer chars"),
    ("quality_per_1k_tokens", "quality per 1k tokens"),
    ("quality_per_1k_chars", "quality per 1k chars"),
)



def add_interval_and_label_options(parser: argparse.ArgumentParser) -> None:
    """--bootstrap, --labels and --labels-data: shared by ``gtalign metrics`` and ``gtalign report``."""
    parser.add_argument("--bootstrap", choices=BOOTSTRAP_CHOICES, default="two-level",
                        help="two-level: resample prompts, then the epochs of each drawn prompt (conservative); "
                             "cluster: resample prompts, keeping all their epochs (the standard one-level choice); "
                             "with one epoch per prompt both are the ordinary bootstrap (default: two-level)")
    parser.add_argument("--labels", metavar="BENCHMARK_OR_FILE",
                        help="label verl dumps without ground truth from this benchmark (a name or a .jsonl/.parquet "
                             "file), matching each dump row's input to the benchmark row whose last user message it "
                             "contains; run logs keep their own labels")
    parser.add_argument("--labels-data", metavar="PATH",
                        help="where the --labels benchmark's data is (as gtalign eval's --data; default: $GTALIGN_DATA "
                             "or ../shared/data/gtalign)")

def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``metrics`` subcommand to ``commands`` and return its parser."""
    parser = commands.add_parser(
        "metrics",
        help="recompute welfare, Pareto and classification metrics of run logs or verl dumps",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_OR_DUMP", help="a run folder, a run.jsonl, or a verl validation dump")
    parser.add_argument("--json", action="store_true", help="print every result as one JSON object instead of tables")
    parser.add_argument("--epsilon", type=non_negative_float, default=0.1, metavar="EPS",
                        help="epsilon of the Pareto coverage, as a share of each coordinate's range (default: 0.1)")
    parser.add_argument("--resamples", type=non_negative_int, default=1000, metavar="N",
                        help="bootstrap resamples for the intervals; 0 gives means without intervals (default: 1000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, metavar="S", help="bootstrap seed (default: 0)")
    add_interval_and_label_options(parser)
    return parser


def _names(runs: list[LoadedRun]) -> list[str]:
    """Run names for tables, made unique (a second ``base`` becomes ``base (2)``)."""
    seen: dict[str, int] = {}
    out = []
    for loaded in runs:
        seen[loaded.name] = seen.get(loaded.name, 0) + 1
        out.append(loaded.name if seen[loaded.name] == 1 else f"{loaded.name} ({seen[loaded.name]})")
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``gtalign metrics`` for parsed ``args``; returns the exit code."""
    from gtalign.cli._main import EXIT_OK, CommandFailed
    from gtalign.metrics import compare, load_run, summarize

    labels = None
    if args.labels is not None:
        from gtalign.benchmarks import load_benchmark

        try:
            labels = load_benchmark(args.labels, data=args.labels_data)
        except (OSError, ValueError) as exc:
            raise CommandFailed(f"--labels {args.labels}: {exc}") from None
    elif args.labels_data is not None:
        raise CommandFailed("--labels-data needs --labels (the benchmark to read from it)")
    runs = []
    for path in args.runs:
        try:
            runs.append(load_run(path, labels))
        except (OSError, ValueError) as exc:
            raise CommandFailed(str(exc)) from None
    names = _names(runs)
    for name, loaded in zip(names, runs, strict=True):
        if loaded.labels is not None:
            print(f"gtalign metrics: {name} ({loaded.path}): {loaded.labels.describe()}", file=sys.stderr)
        if loaded.problems:
            shown = "; ".join(str(p) for p in loaded.problems[:3])
            more = f" (and {len(loaded.problems) - 3} more)" if len(loaded.problems) > 3 else ""
            print(f"gtalign metrics: {name} ({loaded.path}): skipped {len(loaded.problems)} line(s): {shown}{more}", file=sys.stderr)
    try:
        metrics = [summarize(loaded.records, resamples=args.resamples, seed=args.seed, bootstrap=args.bootstrap)
                   for loaded in runs]
        comparisons = [
            (names[0], names[i], compare(runs[0].records, runs[i].records, epsilon=args.epsilon, resamples=args.resamples,
                                           seed=args.seed, bootstrap=args.bootstrap))
            for i in range(1, len(runs))
        ]
    except ImportError as exc:  # moocore, for the hypervolume of a comparison
        raise CommandFailed(f"comparing runs needs moocore ({exc}): pip install 'gtalign[eval]'") from None
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    if args.json:
        document = {
            "runs": [
                {"name": name, "path": str(loaded.path), "kind": loaded.kind,
                 "problems": [{"line": p.line, "reason": p.reason} for p in loaded.problems],
                 "labels": None if loaded.labels is None else loaded.labels.to_json(), "metrics": result.to_json()}
                for name, loaded, result in zip(names, runs, metrics, strict=True)
            ],
            "comparisons": [{"a": a, "b": b, **comparison.to_json()} for a, b, comparison in comparisons],
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
        return EXIT_OK
    from rich.console import Console

    console = Console(highlight=False)
    for name, loaded, result in zip(names, runs, metrics, strict=True):
        _render_run(console, name, loaded, result)
    if len(runs) > 1:
        _render_methods(console, names, metrics)
    for a, b, comparison in comparisons:
        _render_comparison(console, a, b, comparison)
    return EXIT_OK


def _columns(result: RunMetrics) -> list[str]:
    return [*result.source_names, "all"]


def _render_run(console: Console, name: str, loaded: LoadedRun, result: RunMetrics) -> None:
    from rich.table import Table

    columns = _columns(result)
    table = Table(title=f"{name}  ({loaded.kind}: {loaded.path}; {result.bootstrap} bootstrap, mean [95% interval], "
                  "sd over epochs when K > 1)", title_justify="left")
    table.add_column("")
    for column in columns:
        table.add_column(column, justify="right")
    counts = [result[c].counts for c in columns]
    table.add_row("rows (prompts x epochs)", *[f"{c.rows} ({c.prompts} x {c.epochs})" for c in counts])
    table.add_row("scored", *[str(c.scored) for c in counts])
    table.add_row("unparsable (kept)", *[str(c.unparsable) for c in counts])
    table.add_row("judge failed / unusable", *[
        ", ".join(f"{k} {v}" for k, v in c.unscored_by_status.items()) or "0" for c in counts])
    table.add_row("generation failed", *[str(c.generation_failed) for c in counts])
    table.add_row("error", *[str(c.error) for c in counts], end_section=True)
    for key, label in _TABLE_ROWS:
        digits = 0 if key.endswith(("tokens", "chars")) else 3
        table.add_row(label, *[result[c][key].format(digits, spread=True) for c in columns])
    for kind in ("ambiguity", "harm"):
        views = [getattr(result[c], kind) for c in columns]
        if not any(views):
            continue
        table.add_row(f"{kind} accuracy", *["" if v is None else v.accuracy.format(3) for v in views])
        table.add_row(f"{kind} F1 per class", *["" if v is None else " / ".join(
            f"{s.label} {'n/a' if s.f1 is None else f'{s.f1:.3f}'}" for s in v.classes) for v in views])
    console.print(table)
    _render_mix(console, name, result)


def _render_mix(console: Console, name: str, result: RunMetrics) -> None:
    from rich.table import Table

    overall = result.overall
    chosen, done = overall.chosen_actions, overall.response_acts
    if not chosen.counts:
        return
    acts = list(next(iter(chosen.counts.values())))
    table = Table(title=f"{name}: action mix by label, chosen / carried out (all sources)", title_justify="left")
    table.add_column("label")
    table.add_column("answers", justify="right")
    for act in acts:
        table.add_column(act, justify="right")
    for label, row in chosen.counts.items():
        def pct(value: float | None) -> str:
            return "-" if value is None else f"{100 * value:.0f}%"
        table.add_row(label, str(sum(row.values())), *[f"{pct(chosen.share(label, a))} / {pct(done.share(label, a))}" for a in acts])
    console.print(table)


def _render_methods(console: Console, names: list[str], metrics: list[RunMetrics]) -> None:
    from rich.table import Table

    columns: list[str] = []
    for result in metrics:
        columns.extend(c for c in result.source_names if c not in columns)
    columns.append("all")
    for key, label in (("welfare", "welfare sqrt(U*L)"), ("answer_quality", "answer quality")):
        table = Table(title=f"{label}: runs by source (mean [95% interval])", title_justify="left")
        table.add_column("run")
        for column in columns:
            table.add_column(column, justify="right")
        for name, result in zip(names, metrics, strict=True):
            table.add_row(name, *[result[c][key].format(3) if c in result.sources else "" for c in columns])
        console.print(table)


def _render_comparison(console: Console, a: str, b: str, comparison: Comparison) -> None:
    from rich.table import Table

    columns = list(comparison.sources)
    table = Table(title=f"{b} vs {a}: {comparison.joined} rows joined on (id, epoch), {comparison.unpaired} not scored "
                  f"in both, {comparison.only_a} only in {a}, {comparison.only_b} only in {b}", title_justify="left")
    table.add_column("")
    for column in columns:
        table.add_column(column, justify="right")
    pairs: list[Any] = [comparison[c] for c in columns]
    table.add_row("paired points", *[str(p.n) for p in pairs])
    table.add_row(f"eps-coverage {a} (eps {comparison.epsilon:g})", *[f"{p.a.coverage:.3f}" for p in pairs])
    table.add_row(f"eps-coverage {b}", *[f"{p.b.coverage:.3f}" for p in pairs])
    table.add_row(f"regret {a}", *[f"{p.a.regret:.3f}" for p in pairs])
    table.add_row(f"regret {b}", *[f"{p.b.regret:.3f}" for p in pairs])
    table.add_row(f"hypervolume {a} (research formula)", *[f"{p.a.hypervolume:.4f} ({p.a.research_hypervolume:.4f})" for p in pairs])
    table.add_row(f"hypervolume {b} (research formula)", *[f"{p.b.hypervolume:.4f} ({p.b.research_hypervolume:.4f})" for p in pairs])
    table.add_row(f"welfare {b} win / tie / loss", *[f"{p.welfare.wins} / {p.welfare.ties} / {p.welfare.losses}" for p in pairs])
    table.add_row(f"welfare {b} - {a}", *[p.welfare.difference.format(3) for p in pairs])
    console.print(table)
    console.print("[dim]hypervolume: moocore's area above the reference point (min u, min l) of both runs; in parentheses "
                  "the research code's formula, which counts only one box and under-counts.[/dim]")
