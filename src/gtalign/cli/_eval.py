"""``gtalign eval``: run a model over benchmarks into a resumable run log, with progress and a summary.

Only argparse and the --on-ignored vocabulary are imported at module level; the runner, the
backend (torch for the embedded model), the judge and rich are imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gtalign.cli._args import integer, key_value, names, non_negative_float, positive_int, yaml_params
from gtalign.steering import _modes

if TYPE_CHECKING:
    from gtalign.eval import EvalConfig

__all__ = ["config_from_args", "configure", "run"]

_DESCRIPTION = """\
Run a model over benchmarks and score every answer with a welfare-reward preset and a judge,
into RUN_DIR/run.jsonl: a header (gtalign version, the full config and its hash, the backend and
judge) and one record per prompt and epoch (the prompt, the raw answer, its four blocks and payoff
matrix, the chosen and the welfare-best key, what the response does, the steering record, every
reward component, the judge's reply, tokens and seconds). `gtalign report RUN_DIR` turns it into
tables and plots.

Without --steer the model answers in one pass (the paper's setting for a trained model); with
--steer it answers through the pricing-policy steering of `gtalign chat`. --epochs K samples K
answers per prompt, epoch e with seed S+e (temperature 0.7 unless --temperature is given), so
results carry a spread and a rerun repeats them.

--answers-from RUN_DIR scores RUN_DIR's answers (joined on id and epoch) with this --preset and --judge,
never calling the model; the answer settings (--benchmark ... --steer) are RUN_DIR's.

Resuming: records are appended (flushed and synced to disk) as rows finish, in finishing order. Run
the same command again on the same --out and it continues: finished rows are never generated or
judged again; rows whose model call failed, or whose judge failed, run again (their new record
replaces the old one); a line torn by a kill is cut and its row runs again. A command whose
settings differ from the run's is refused, naming the first setting that differs (--concurrency
and --name may change); --new starts a new run in RUN_DIR-2, RUN_DIR-3, ... instead (it says
which). While a run writes RUN_DIR it holds RUN_DIR/run.jsonl.lock; a second run is refused.

Progress goes to stderr: a bar with rate and ETA on a terminal, otherwise a line every 30 s; at
the end a summary per data source: samples, scored, failures by kind (generation failed, judge
failed, unscored, errors, unparsable answers: these are scored, never dropped), mean welfare.

Examples:
  gtalign eval --benchmark sample --backend embedded --preset paper --judge rule --out runs/base
  gtalign eval --benchmark sample --backend embedded --preset paper --judge rule --steer \\
      --pricing api-pay-per-token --out runs/steered
  gtalign eval --answers-from runs/base --preset robust --judge rule --out runs/base-robust
  gtalign eval --benchmark math-hard,ambig_qa --limit 50 --seed 1 --backend http://127.0.0.1:8000/v1 \\
      --model qwen --preset robust --judge http://127.0.0.1:8001/v1 --judge-model judge --epochs 3 --out runs/qwen

Settings merge in layers: defaults < --config FILE (YAML/JSON, EvalConfig field names, e.g.
"benchmarks: [math-hard, ambig_qa]", "preset_params: {unscored_as_zero: true}") < flags.

Exit codes: 0 every sample scored; 1 some sample failed (generation, judge, unscored or error: see
the summary; rerun to retry the failed ones); 2 usage error (also a refused resume); 130
interrupted (run the same command again to resume).
"""


def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``eval`` subcommand to ``commands`` and return its parser."""
    parser = commands.add_parser(
        "eval",
        help="run a model over benchmarks into a resumable run log (welfare, U, L, every reward component)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE",
                        help="settings file (YAML, or JSON by its .json suffix) with EvalConfig field names as keys "
                        "(benchmarks, backend, model, preset, preset_params, judge, steer, pricing, epochs, ...); "
                        "flags given on the command line override it")
    data = parser.add_argument_group("benchmarks")
    data.add_argument("--benchmark", type=names, metavar="NAME[,NAME]",
                      help="benchmark names (sample, math-hard, medium, ambig_qa, wildguard, minerva, abg-coqa, advbench) "
                      "or data files, comma-separated")
    data.add_argument("--data", metavar="PATH", help="where the paper's data lives (default: ../shared/data/gtalign when present)")
    data.add_argument("--limit", type=positive_int, metavar="N", help="at most N prompts per benchmark")
    data.add_argument("--seed", type=integer, metavar="S", help="seed of the --limit sample and of generation (epoch e uses S+e; default 0)")
    data.add_argument("--source", type=names, metavar="SRC[,SRC]", help="keep only rows of these data sources")
    data.add_argument("--prompt", choices=("stored", "builder"),
                      help="each row's prompt as stored (it carries the paper's instruction) or rebuilt by gtalign's "
                      "prompt builder (default: stored)")
    data.add_argument("--split", metavar="NAME", help="dataset split, for benchmarks read from a hub id or a folder with several")
    model = parser.add_argument_group("model")
    model.add_argument("--backend", metavar="embedded|URL|module:attr",
                       help="'embedded' (SmolLM2-135M-Instruct on the CPU, offline), 'embedded:PATH', the http(s):// "
                       "base URL of an OpenAI-compatible server, or module:attr of a ChatBackend (or its factory)")
    model.add_argument("--model", metavar="NAME", help="model name at the --backend URL; with the embedded backend, a local model")
    model.add_argument("--max-tokens", type=positive_int, metavar="N",
                       help="token budget of one answer (steered: all its stages together) (default: 512)")
    model.add_argument("--temperature", type=non_negative_float, metavar="T",
                       help="sampling temperature (default: 0, greedy, for one epoch; 0.7 with --epochs above 1)")
    model.add_argument("--epochs", type=positive_int, metavar="K", help="answers per prompt (default: 1)")
    model.add_argument("--constrain", choices=_modes.CONSTRAIN_MODES, metavar="MODE",
                       help="protocol-constrained decoding (%(choices)s) of the one-pass answer or of each steering stage: "
                       "auto where the backend can enforce the grammar (each record says whether it did), on to fail "
                       "rows it cannot (default: off)")
    model.add_argument("--answers-from", metavar="RUN_DIR",
                       help="score the answers of the run in RUN_DIR instead of generating (the model is not called); "
                       "its settings are taken, so give only --preset, --judge and --out")
    model.add_argument("--concurrency", type=positive_int, metavar="N",
                       help="prompts in flight at once, and with a URL --backend its client's limit of requests "
                       "in flight (default: the backend's own limit: the embedded batch size, the HTTP client's "
                       "concurrency, 32; the run's first line says which)")
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--preset", metavar="NAME", help="reward preset: paper, robust, ... or module:attr (required, here or in --config)")
    scoring.add_argument("--preset-param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                         help="a preset parameter, e.g. unscored_as_zero=true (repeatable; VALUE is read as YAML)")
    scoring.add_argument("--judge", metavar="rule|URL",
                         help="'rule' (deterministic, offline), the http(s):// URL of an OpenAI-compatible judge server, "
                         "a registered judge or module:attr (required, here or in --config)")
    scoring.add_argument("--judge-model", metavar="NAME", help="model name served at the --judge URL")
    steering = parser.add_argument_group("steering")
    steering.add_argument("--steer", action="store_true", default=None,
                          help="answer through pricing-policy steering (see gtalign chat --help)")
    steering.add_argument("--pricing", metavar="NAME|FILE", help="pricing policy with --steer (default: none)")
    steering.add_argument("--pricing-param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                          help="override a policy key, e.g. s=2 (repeatable; VALUE is read as YAML)")
    steering.add_argument("--rule", metavar="RULE",
                          help="welfare rule: the steering decision, and the welfare-best key each answer's own matrix "
                          "is checked against (default: sum, the prompt's LLM + user rule)")
    steering.add_argument("--on-ignored", choices=_modes.IGNORED_PROTOCOL, metavar="MODE",
                          help="with --steer, when the model ignores the four-block protocol (%(choices)s) "
                          f"(default: {_modes.DEFAULT_ON_IGNORED})")
    output = parser.add_argument_group("output")
    output.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder; an existing run there is resumed")
    output.add_argument("--new", action="store_true", help="if RUN_DIR holds a run, start a new one in RUN_DIR-2, RUN_DIR-3, ...")
    output.add_argument("--name", metavar="NAME", help="the run's label in reports (default: the folder's name)")
    output.add_argument("-q", "--quiet", action="store_true", help="no progress or notes; the summary only")
    return parser


_ANSWER_FLAGS = {
    "benchmarks": "--benchmark", "data": "--data", "limit": "--limit", "seed": "--seed", "sources": "--source",
    "prompt": "--prompt", "split": "--split", "backend": "--backend", "model": "--model", "max_tokens": "--max-tokens",
    "temperature": "--temperature", "epochs": "--epochs", "steer": "--steer", "pricing": "--pricing",
    "pricing_params": "--pricing-param", "rule": "--rule", "on_ignored": "--on-ignored", "constrain": "--constrain",
}
"""The flag of each answer setting (`gtalign.eval.ANSWER_SETTINGS`): those a --answers-from run takes from its source."""


def _answer_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The answer settings given on the command line (flags left out are absent: EvalConfig's
    defaults apply, or with --answers-from the source run's values)."""
    values = {
        "benchmarks": None if args.benchmark is None else tuple(args.benchmark), "data": args.data, "limit": args.limit,
        "seed": args.seed, "sources": None if args.source is None else tuple(args.source), "prompt": args.prompt,
        "split": args.split, "backend": args.backend, "model": args.model, "max_tokens": args.max_tokens,
        "temperature": args.temperature, "epochs": args.epochs, "steer": args.steer, "pricing": args.pricing,
        "pricing_params": yaml_params(args.pricing_param) if args.pricing_param else None, "rule": args.rule,
        "on_ignored": args.on_ignored, "constrain": args.constrain,
    }
    return {key: value for key, value in values.items() if value is not None}


def _file_settings(path: str | None) -> dict[str, Any]:
    """The --config file's settings (none without one); a bad file is a usage error naming it."""
    if path is None:
        return {}
    from gtalign.cli._main import UsageError
    from gtalign.eval import EvalSetupError
    from gtalign.eval._config import read_eval_settings

    try:
        return read_eval_settings(path)
    except EvalSetupError as exc:
        raise UsageError(str(exc)) from None


def _overlay(base: Any, top: dict[str, Any]) -> Any:
    """--preset-param/--pricing-param KEY=VALUE over the file's mapping: each flag replaces one key."""
    return {**base, **top} if isinstance(base, Mapping) else top


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The `EvalConfig` the command line describes (a `UsageError` names a setting that cannot be
    used). With --answers-from it reads that run's header: its answer settings are the run's."""
    from gtalign.cli._main import UsageError
    from gtalign.eval import EvalConfig, EvalSetupError

    file = _file_settings(args.config)
    cli_answers = _answer_settings(args)
    given = {k: v for k, v in file.items() if k in _ANSWER_FLAGS} | cli_answers
    if "pricing_params" in cli_answers:
        given["pricing_params"] = _overlay(file.get("pricing_params"), cli_answers["pricing_params"])
    scoring = {k: v for k, v in file.items() if k not in _ANSWER_FLAGS and k != "answers_from"}
    scoring |= {k: v for k, v in {"preset": args.preset, "judge": args.judge, "judge_model": args.judge_model,
                                  "concurrency": args.concurrency, "name": args.name}.items() if v is not None}
    if args.preset_param:
        scoring["preset_params"] = _overlay(file.get("preset_params"), yaml_params(args.preset_param))
    answers_from = args.answers_from if args.answers_from is not None else file.get("answers_from")
    missing = [flag for flag, key in (("--preset", "preset"), ("--judge", "judge")) if key not in scoring]
    if missing:
        raise UsageError(f"the following arguments are required: {', '.join(missing)} (on the command line or in --config)")
    judge, judge_model = scoring["judge"], scoring.get("judge_model")
    if judge_model is not None and not (isinstance(judge, str) and judge.startswith(("http://", "https://"))):
        raise UsageError(f"--judge-model only applies with --judge URL, not --judge {judge}")
    try:
        if answers_from is not None:
            from gtalign.eval._answers import read_answer_source, resolve_answers_from

            source = read_answer_source(answers_from)
            return resolve_answers_from(EvalConfig(answers_from=answers_from, **scoring), source, given, _ANSWER_FLAGS)
        missing = [flag for flag, key in (("--benchmark", "benchmarks"), ("--backend", "backend")) if key not in given]
        if missing:
            raise UsageError(f"the following arguments are required: {', '.join(missing)} (or --answers-from RUN_DIR)")
        if not given.get("steer"):
            steering_only = [flag for flag, set_ in (("--pricing", given.get("pricing", "none") != "none"),
                                                     ("--pricing-param", "pricing_params" in given),
                                                     ("--on-ignored", given.get("on_ignored", _modes.DEFAULT_ON_IGNORED)
                                                      != _modes.DEFAULT_ON_IGNORED)) if set_]
            if steering_only:
                raise UsageError(f"{', '.join(steering_only)} only apply with --steer")
        return EvalConfig(**given, **scoring)
    except EvalSetupError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Run ``gtalign eval`` for parsed ``args``; returns the exit code."""
    from rich.console import Console

    from gtalign.cli._main import UsageError
    from gtalign.eval import EvalProgress, EvalSetupError, ResumeRefused, run_eval

    config = config_from_args(args)
    console = Console(file=sys.stderr, highlight=False)
    progress = EvalProgress(console, enabled=not args.quiet)
    try:
        summary = run_eval(config, args.out, new=args.new, progress=progress)
    except (EvalSetupError, ResumeRefused) as exc:
        raise UsageError(str(exc)) from None
    if not args.quiet or not summary.ok:
        for line in summary.lines():
            console.print(line, markup=False, soft_wrap=True, highlight=False)
    return summary.exit_code
