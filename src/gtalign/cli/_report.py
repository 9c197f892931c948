"""``gtalign report``: tables, figures and a per-sample viewer for one or more evaluation runs.

Only argparse is imported at module level; the report (matplotlib, moocore, the metrics) is
imported when the command runs, so ``gtalign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from gtalign.cli._args import non_negative_float, non_negative_int
from gtalign.cli._metrics import add_interval_and_label_options

__all__ = ["configure", "run"]

_DESCRIPTION = """\
Write a report of evaluation runs (gtalign eval's run folders, run logs, or verl validation
dumps) into one folder:

  report.html  one self-contained file (no network): the tables, the figures and a per-sample
               viewer (filter by run, task, label, action, status or text; each sample shows its
               prompt, the four blocks, the payoff table before/after pricing with the chosen
               cell, every reward component, the judge's reply, and the same prompt in every run)
  report.md    the tables, laid out like the paper's (runs as rows, tasks as columns)
  report.json  every number behind them (the metrics' own JSON)
  *.png        welfare per task, (U, L) points with each run's Pareto frontier, the action mix by
               label, output lengths

The first run is the baseline: every other run is compared with it on the prompts they share
(epsilon-Pareto coverage, regret, hypervolume, paired welfare). Intervals are bootstrap 95%
intervals over prompts and, with several epochs, over epochs within a prompt (--bootstrap).
Corrupt or truncated lines in a run log are skipped and listed in the report's Problems section.

Examples:
  gtalign report runs/base runs/steered
  gtalign report runs/base runs/gtalign --out reports/2026-12 --seed 1
  gtalign report val_base.jsonl val_gtalign.jsonl --labels wildguard   (verl dumps, labels joined)
"""


def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``report`` subcommand to ``commands`` and return its parser."""
    parser = commands.add_parser(
        "report",
        help="write tables, figures and an HTML run viewer for evaluation runs",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (or run logs, or verl validation dumps); the first is the baseline")
    parser.add_argument("--out", metavar="DIR", help="folder to write into (default: report/ in the first run's folder)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the bootstrap intervals (default: 0)")
    parser.add_argument("--resamples", type=non_negative_int, default=1000, metavar="N",
                        help="bootstrap resamples per interval (0: no intervals) (default: 1000)")
    parser.add_argument("--epsilon", type=non_negative_float, default=0.1, metavar="E",
                        help="epsilon of the Pareto coverage, as a share of each reward's range (default: 0.1, the paper's)")
    add_interval_and_label_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report and say where it is; problems in the logs are warned about, not fatal."""
    from gtalign.cli._main import EXIT_OK, CommandFailed

    try:
        from gtalign.report import write_report
    except ImportError as exc:
        raise CommandFailed(f"the report needs matplotlib and moocore ({exc}): pip install 'gtalign[eval]'") from None
    try:
        files = write_report(args.runs, args.out, seed=args.seed, resamples=args.resamples, epsilon=args.epsilon,
                             bootstrap=args.bootstrap, labels=args.labels, labels_data=args.labels_data)
    except ImportError as exc:  # moocore is imported only when runs are compared
        raise CommandFailed(f"the report needs matplotlib and moocore ({exc}): pip install 'gtalign[eval]'") from None
    except ValueError as exc:
        raise CommandFailed(str(exc)) from None
    print(f"report written to {files.out_dir}")
    print(f"  {files.html}  (open it in a browser: tables, figures, per-sample viewer)")
    print(f"  {files.markdown}")
    print(f"  {files.json}")
    for plot in files.plots:
        print(f"  {plot}")
    if files.problems:
        print(f"warning: {len(files.problems)} problem(s) in the runs, listed in the report's Problems section:",
              file=sys.stderr)
        for problem in files.problems[:10]:
            print(f"  {problem}", file=sys.stderr)
        if len(files.problems) > 10:
            print(f"  ... and {len(files.problems) - 10} more", file=sys.stderr)
    return EXIT_OK
