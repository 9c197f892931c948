"""The ``gtalign`` command: argument parsing and dispatch.

Every option maps onto one field of a typed options object (`ScoreOptions`, `InspectOptions`),
so the command line and the Python API configure the same thing once. Command modules are
imported only when their command runs, which keeps ``gtalign --help`` and ``--version`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from gtalign import __version__
from gtalign._registry import REGISTRY
from gtalign.cli._args import non_negative_int, positive_float, positive_int

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "CommandFailed", "UsageError", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command that cannot run as given (exit code 2); the message says what to change."""


class CommandFailed(Exception):
    """A command that started but could not finish (exit code 1); the message says why."""


_DESCRIPTION = """\
Game-theoretic alignment of LLM assistants (GTAlign, arXiv 2510.08872): score rollouts with the
welfare reward and inspect four-block answers.

Try:  gtalign score --example
"""

_SCORE_DESCRIPTION = """\
Score rollouts with a welfare-reward preset and write one output row per input row, in order.

INPUT is a .jsonl/.ndjson or .parquet file, a dataset folder, or a dataset hub id (the last two
need the `datasets` package). Each row needs `data_source`, `completion` (or `solution_str`) and
`ground_truth` (or `reward_model.ground_truth`); `extra_info` and `judge_verdict` (a number on the
judge's scale, or {value, status, reason}) are optional. A row with a `judge_verdict` is never sent
to the judge.

Each output row is the input row plus score, user_reward, llm_reward, answer_reward,
format_reward, utility, reward_gap, status (scored / unscored / error), reason and the preset's
other components; `error` says why a row could not be read or mapped (its fields are still copied).

Resuming: output is appended and flushed batch by batch. If OUT already exists, its complete
lines are kept (a torn last line is cut), that many input rows are skipped, and scoring continues
after them, so an interrupted run is finished by running the same command again without judging
finished rows twice (a URL judge's verdict cache also saves calls for rows judged before the
interruption). A resumed run first scores again, in place, the rows a rerun can change: rows the
judge failed on (judge_status "failed" with no judge_verdict in the input: unreachable, timed out,
errored after retries), whether unscored or scored as verdict 0 by --unscored-as-zero; error rows
(read again from the input: a row still broken there errors again); and rows whose scoring raised
(reason or error "scoring failed: ...", which a fixed preset may score). Rows without a score for
another reason (an unknown data_source, a verdict the judge gave but that is unusable, a
judge_verdict in the input that cannot be used, no judge given) are kept as they are: the same
command would give them the same result. Every row records the settings that produced it
(gtalign_run: output schema, gtalign version, preset and its parameters, judge,
--unscored-as-zero), and a resume with other settings is refused, naming the one that differs.
--no-resume starts over and overwrites OUT. While a run writes OUT it holds OUT.lock (next to the
file OUT resolves to, so a symbolic link and its target share it), and a second run on the same
OUT is refused; where file locking is missing (no fcntl, e.g. Windows) there is no lock, and a
warning says so. `-o -` writes the rows to standard output (never resumed); the summary always
goes to stderr.

Progress goes to stderr: a bar on a terminal, otherwise a line every 30 s; a warning is printed as
soon as the judge fails on a row (also with --unscored-as-zero).

Exit codes: 0 every row scored; 1 some row errored, is unscored, or was scored as verdict 0 by
--unscored-as-zero because the judge failed on it (see the summary on stderr, which says how many);
2 usage error; 130 interrupted (run the same command again to resume).
"""

_INSPECT_DESCRIPTION = """\
Show one completion as a person wants to see it: its four blocks, the payoff table with each
cell's welfare under --rule, the Pareto frontier, the key the model chose and the key the rule
chooses (disagreement flagged), every problem found (code, position, message), and the paper
preset's parse verdict (format valid? payoff parses?).

FILE is a raw completion text file, '-' for stdin (the default), or a JSONL file of rows (its
`completion` or `solution_str`; pick the row with --row). When the row carries data_source,
ground truth and a judge_verdict, its reward under --preset is shown too.
"""


def _add_score(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "score",
        help="score rollouts (JSONL, parquet, dataset) with a welfare-reward preset",
        description=_SCORE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", nargs="?", metavar="INPUT", help="rows to score: .jsonl, .parquet, a dataset folder or hub id")
    parser.add_argument(
        "-o", "--output", metavar="OUT",
        help="output JSONL, '-' for standard output (default: a file INPUT with a .scored.jsonl suffix; for a dataset "
        "NAME[.SPLIT].scored.jsonl in the current directory; with --example ./gtalign-example.scored.jsonl)",
    )
    parser.add_argument("--example", action="store_true", help="score the example rollouts shipped with gtalign (no INPUT)")
    parser.add_argument(
        "--preset", default="paper", metavar="NAME",
        help=f"reward preset: {', '.join(REGISTRY.names('preset'))}, or module:attr (default: paper)",
    )
    judge = parser.add_argument_group("judge (rows without a judge_verdict are judged; with no judge they are unscored)")
    judge.add_argument(
        "--judge", metavar="JUDGE",
        help="'rule' (deterministic, offline), an http(s):// URL of an OpenAI-compatible server, "
        f"a registered judge ({', '.join(REGISTRY.names('judge'))}) or module:attr",
    )
    judge.add_argument("--judge-model", metavar="NAME", help="model name served at the --judge URL")
    judge.add_argument("--judge-api-key-env", metavar="VAR", help="environment variable holding the API key for the --judge URL")
    judge.add_argument("--judge-concurrency", type=positive_int, metavar="N", help="judge requests in flight at once (URL judges)")
    cache = judge.add_mutually_exclusive_group()
    cache.add_argument("--judge-cache", metavar="PATH", help="verdict cache file for URL judges (default: gtalign's cache dir)")
    cache.add_argument("--no-judge-cache", action="store_true", help="do not read or write the verdict cache")
    judge.add_argument(
        "--judge-timeout", type=positive_float, metavar="SECONDS",
        help="seconds one judge call may take, retries and their waits included (URL judges; default: the HTTP client's, ClientConfig.total_timeout)",
    )
    judge.add_argument(
        "--judge-retries", type=non_negative_int, metavar="N",
        help="HTTP retries after a judge call's first attempt (URL judges; default: the HTTP client's, ClientConfig.max_retries)",
    )
    parser.add_argument("--split", metavar="NAME", help="dataset split (datasets with several splits)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=256, metavar="N",
        help="rows per scoring batch; memory stays constant in the number of rows. Presets that "
        "normalise per batch (paper-ablation) normalise within these batches (default: 256)",
    )
    parser.add_argument(
        "--unscored-as-zero", action="store_true",
        help="score a missing or failed judge verdict as 0, as the research code did (default: the row is unscored). "
        "A judge failure scored 0 still warns, counts in the summary, exits 1 and is judged again by a rerun: its 0 is not a verdict",
    )
    parser.add_argument("--no-resume", action="store_true", help="start over: overwrite OUT instead of resuming after its rows")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes; the summary only when something failed")
    parser.set_defaults(handler=_run_score)


def _add_inspect(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "inspect",
        help="show one completion: blocks, payoff table, frontier, choice, problems",
        description=_INSPECT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", nargs="?", default="-", metavar="FILE", help="completion text, JSONL rows, or '-' for stdin (default)")
    parser.add_argument("--row", type=positive_int, metavar="N", help="row number in a JSONL file, from 1 (default: 1)")
    parser.add_argument(
        "--rule", default="sum", metavar="RULE",
        help=f"welfare rule for the table and the choice: {', '.join(REGISTRY.names('welfare'))} "
        "or module:attr (default: sum, the prompt's LLM + user rule)",
    )
    parser.add_argument("--preset", default="paper", metavar="NAME", help="preset for the row's reward, when it can be scored (default: paper)")
    parser.add_argument("--json", action="store_true", help="print the same information as one JSON object")
    parser.add_argument(
        "--max-chars", type=non_negative_int, default=600, metavar="N",
        help="show at most N characters of each block (0: all; --json is never cut) (default: 600)",
    )
    parser.set_defaults(handler=_run_inspect)


# Commands defined in modules of their own: each has ``configure(commands) -> ArgumentParser``
# (light imports only, so --help stays fast) and ``run(args) -> int``.
_COMMAND_MODULES = ("gtalign.cli._chat", "gtalign.cli._serve", "gtalign.cli._metrics", "gtalign.cli._eval",
                    "gtalign.cli._report", "gtalign.cli._data", "gtalign.cli._train", "gtalign.cli._games")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gtalign",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gtalign {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _add_score(commands)
    _add_inspect(commands)
    for module_name in _COMMAND_MODULES:
        module = importlib.import_module(module_name)
        parser_for = module.configure(commands)
        parser_for.set_defaults(handler=module.run)
    return parser


def _run_score(args: argparse.Namespace) -> int:
    from gtalign.cli._judges import JudgeOptions
    from gtalign.cli._score import ScoreOptions, run_score

    judge = JudgeOptions(
        spec=args.judge,
        model=args.judge_model,
        api_key_env=args.judge_api_key_env,
        concurrency=args.judge_concurrency,
        cache=args.judge_cache,
        use_cache=not args.no_judge_cache,
        timeout=args.judge_timeout,
        retries=args.judge_retries,
    )
    options = ScoreOptions(
        input=args.input,
        output=args.output,
        example=args.example,
        preset=args.preset,
        judge=judge,
        split=args.split,
        batch_size=args.batch_size,
        unscored_as_zero=args.unscored_as_zero,
        resume=not args.no_resume,
        quiet=args.quiet,
    )
    return run_score(options)


def _run_inspect(args: argparse.Namespace) -> int:
    from gtalign.cli._inspect import InspectOptions, run_inspect

    options = InspectOptions(
        file=args.file,
        row=args.row,
        rule=args.rule,
        preset=args.preset,
        json=args.json,
        max_chars=args.max_chars,
    )
    return run_inspect(options)


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gtalign`` with ``argv`` (default: the process arguments); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's usage errors
        return _exit_code(exc.code)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except UsageError as exc:
        print(f"gtalign {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `gtalign inspect ... | head`: the reader has gone, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CommandFailed, OSError) as exc:
        print(f"gtalign {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"gtalign {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
