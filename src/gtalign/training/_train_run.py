"""One training run from start to finish, around TRL's trainer: the checks before the model loads,
checkpoints and resume, the run record, the final model and its held-out evaluation.

What a run leaves in ``output_dir``:

- ``gtalign_train.json``: the run record (format version, gtalign/TRL/transformers/peft/torch
  versions, the full config, the model folder, the rows read, one entry per start: from which
  checkpoint, to which step, finished or not). A later run on the folder must agree with its
  `IDENTITY_SETTINGS` (model, data, LoRA, reward, ...), else it is refused naming the first
  difference; TRL settings may change (a larger ``max_steps`` continues a finished run).
- ``checkpoint-N/``: TRL's checkpoints (model or adapter, optimizer, scheduler, RNG, trainer state).
- ``train_log.jsonl``: every logged step (`gtalign.training._train_progress.MetricsLog`).
- ``final/``: the trained model (a LoRA run: the adapter, with ``gtalign_base.json`` naming its base
  model so the embedded backend finds it on another machine), with its tokenizer.
- ``final-merged/`` (a LoRA run with an evaluation): the adapter merged into the base model.
- ``eval-step-N/``: the held-out evaluation of the model of step N (`gtalign eval`'s run log;
  ``gtalign report OUTPUT_DIR/eval-step-N``). A run that continues to a later step evaluates
  its new model into a new folder; a rerun at the same step resumes that evaluation.

Resuming: a run on a folder that holds a checkpoint continues from the newest complete one (its
``trainer_state.json`` is written last and must parse), unless ``resume="never"``, which refuses
such a folder. A checkpoint a kill left half-written is removed first, with a note. While a run
writes the folder it holds ``gtalign_train.json.lock``; a second run on it is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gtalign.training._config import (
    IDENTITY_SETTINGS,
    TrainConfig,
    TrainSetupError,
    build_lora_config,
    build_trl_args,
)
from gtalign.training._train_data import TrainRows, fit_to_length, load_rows

__all__ = [
    "EVAL_PREFIX",
    "FINAL_DIR",
    "MERGED_DIR",
    "METRICS_LOG",
    "RECORD_FORMAT",
    "RECORD_NAME",
    "ResumeRefused",
    "TrainPlan",
    "TrainResult",
    "checkpoints",
    "complete_checkpoint",
    "latest_checkpoint",
    "plan_training",
    "read_record",
    "run_training",
]

RECORD_NAME = "gtalign_train.json"
RECORD_FORMAT = 1
METRICS_LOG = "train_log.jsonl"
FINAL_DIR = "final"
MERGED_DIR = "final-merged"
EVAL_PREFIX = "eval-step-"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

Say = Callable[[str], None]


class ResumeRefused(TrainSetupError):
    """The output folder holds another run (or checkpoints that ``resume="never"`` forbids)."""


def _quiet(message: str) -> None:
    return None


def _is_main_process() -> bool:
    """Global rank 0 (torchrun/accelerate set RANK; a plain run is rank 0)."""
    return os.environ.get("RANK", "0") == "0"


# --- checkpoints ------------------------------------------------------------------------------


def checkpoints(output_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir``, oldest step first."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in output_dir.iterdir() if (m := _CHECKPOINT.match(path.name)) and path.is_dir()]
    return [path for _, path in sorted(found)]


def complete_checkpoint(path: Path) -> bool:
    """Whether a checkpoint was written to the end: transformers writes ``trainer_state.json``
    last (after the model, optimizer, scheduler and RNG state), so it must parse and name the
    checkpoint's own step."""
    match = _CHECKPOINT.match(path.name)
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(match) and isinstance(state, dict) and state.get("global_step") == int(match.group(1))


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    complete = [path for path in checkpoints(output_dir) if complete_checkpoint(path)]
    return complete[-1] if complete else None


# --- the run record -----------------------------------------------------------------------------


def read_record(output_dir: Path) -> dict[str, Any] | None:
    """The run record of ``output_dir``, or None when there is none; an unreadable one is refused."""
    path = output_dir / RECORD_NAME
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResumeRefused(f"{path} cannot be read ({exc}); move it away to start a new run in {output_dir}") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ResumeRefused(f"{path} is not a gtalign training record; choose another output_dir")
    if int(record.get("format", 0)) > RECORD_FORMAT:
        raise ResumeRefused(f"{path} was written by a newer gtalign (record format {record['format']}); upgrade gtalign")
    return record


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (a kill leaves the old file or the new one)."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(staging, path)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("gtalign", "trl", "transformers", "peft", "accelerate", "torch", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


# --- plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainPlan:
    """Everything checked before the model loads: the TRL and LoRA configs as TRL and peft built
    them, the rows, the reward functions, the model folder and where the run starts."""

    config: TrainConfig
    trl_args: Any
    lora: Any
    rows: TrainRows
    reward_funcs: tuple[Any, ...]
    model_path: Path
    model_name: str
    resume_from: Path | None
    incomplete: tuple[Path, ...]
    record: Mapping[str, Any] | None
    adapter: Path | None = None
    """A LoRA adapter given as the model (an earlier LoRA run's ``final``) on its base model
    (``model_path``): a LoRA run keeps training that adapter (its settings win over ``lora``), so
    the final adapter loads on the plain base; a full fine-tune merges it into the base first."""

    @property
    def output_dir(self) -> Path:
        return Path(self.config.output_dir)

    def lines(self) -> list[str]:
        """The plan for a person (``--dry-run`` prints it)."""
        config, args = self.config, self.trl_args
        lora = "full fine-tune" if self.lora is None else f"LoRA r={self.lora.r} alpha={self.lora.lora_alpha}"
        if self.lora is not None and self.adapter is not None:
            lora = "LoRA (the adapter's settings)"
        start = ""
        if self.adapter is not None:
            merged = self.lora is None
            start = f" with the adapter {self.adapter} merged in" if merged else f", continuing the adapter {self.adapter}"
        out = [
            f"model: {self.model_name} ({self.model_path}){start}, {lora}",
            f"data: {self.rows.summary()}",
            f"trl.{type(args).__name__}: max_steps {args.max_steps}, per-device batch {args.per_device_train_batch_size}, "
            f"learning rate {args.learning_rate}, checkpoint every {args.save_steps} steps, "
            f"device {'cpu' if args.use_cpu else 'accelerator'}, bf16 {args.bf16}",
        ]
        if config.kind == "grpo" and config.reward is not None:
            names = ", ".join(getattr(f, "__name__", "?") for f in self.reward_funcs)
            reward = config.reward
            if reward.mode == "game":
                how = (f"the game's payoff of each answer, played out{', scaled to [0, 1]' if reward.normalise else ''}"
                       f"{f', {reward.samples} samples where chance is sampled' if reward.samples else ''}")
            else:
                how = f"preset {reward.preset}, judge {reward.judge}"
            out.append(f"reward: {how}, mode {reward.mode} "
                       f"({names}); {args.num_generations} generations of up to {args.max_completion_length} tokens")
        out.extend(f"note: {note}" for note in self.rows.notes)
        out.extend(f"note: {path.name} is incomplete (a kill while it was written); it will be removed" for path in self.incomplete)
        start = f"resume from {self.resume_from.name}" if self.resume_from else "start from the model"
        out.append(f"output: {self.output_dir} ({start})")
        if config.eval is not None:
            out.append(f"then: gtalign eval of the final model on {', '.join(config.eval['benchmarks'])} into "
                       f"{self.output_dir / EVAL_PREFIX}<step>")
        return out


def _resume_point(output_dir: Path, resume: str | os.PathLike[str]) -> tuple[Path | None, tuple[Path, ...]]:
    found = checkpoints(output_dir)
    incomplete = tuple(path for path in found if not complete_checkpoint(path))
    latest = latest_checkpoint(output_dir)
    if resume == "never":
        if found:
            raise ResumeRefused(f"{output_dir} holds checkpoints ({', '.join(p.name for p in found[-3:])}); "
                                "resume from them (leave out --no-resume), or choose another output_dir")
        return None, ()
    if resume == "auto":
        return latest, incomplete
    if resume == "always":
        if latest is None:
            raise ResumeRefused(f"--resume: {output_dir} holds no complete checkpoint to resume from")
        return latest, incomplete
    path = Path(resume)
    if not complete_checkpoint(path):
        raise ResumeRefused(f"--resume {path}: not a complete checkpoint (a checkpoint-N folder with its trainer_state.json)")
    return path, incomplete


def plan_training(config: TrainConfig, *, resume: str | os.PathLike[str] = "auto", say: Say = _quiet) -> TrainPlan:
    """Check everything a run needs before loading the model: TRL's and peft's configs (their own
    validation), the output folder's record and checkpoints, the reward (preset and judge built),
    the data, and the model folder (a GGUF file is converted once). Raises `TrainSetupError`."""
    output_dir = Path(config.output_dir)
    trl_args = build_trl_args(config)
    lora = build_lora_config(config)
    record = read_record(output_dir)
    if record is not None:
        difference = config.diff(record["config"])
        if difference is not None:
            raise ResumeRefused(f"{output_dir} holds another training run ({difference}); choose another output_dir, "
                                f"or give the same {', '.join(IDENTITY_SETTINGS)}")
    elif resume == "auto" and checkpoints(output_dir):
        raise ResumeRefused(f"{output_dir} holds checkpoints but no {RECORD_NAME}, so not of a gtalign train run; "
                            "choose another output_dir, or --resume to continue from them anyway")
    resume_from, incomplete = _resume_point(output_dir, resume)
    reward_funcs: tuple[Any, ...] = ()
    if config.kind == "grpo" and config.reward is not None:
        from gtalign.training._grpo import reward_functions

        reward_funcs = tuple(reward_functions(config.reward))
    rows = load_rows(config)
    model_path, model_name, adapter = _start_model(config, say)
    rows = _fit_rows(config, trl_args, rows, adapter or model_path)
    recorded = ((record or {}).get("rows") or {}).get("fingerprint")
    if recorded is not None and recorded != rows_fingerprint(rows):
        raise ResumeRefused(f"{output_dir} holds a run trained on other rows (the same settings, but the data's content "
                            f"changed since it began); choose another output_dir, or restore the data")
    return TrainPlan(config, trl_args, lora, rows, reward_funcs, model_path, model_name, resume_from, incomplete, record,
                     adapter)


def rows_fingerprint(rows: TrainRows) -> str:
    """A hash of the training rows as the trainer gets them: a resumed run must see the same data,
    not only the same file names and settings."""
    digest = hashlib.sha256()
    for row in rows.rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def _fit_rows(config: TrainConfig, trl_args: Any, rows: TrainRows, tokenizer_dir: Path) -> TrainRows:
    """``rows`` counted in the start model's tokens: SFT rows longer than TRL's ``max_length`` are
    dropped (TRL would cut their answers before the tags close); GRPO notes its prompts' lengths."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    def count(messages: Any, **options: Any) -> int:
        encoded = tokenizer.apply_chat_template(list(messages), tokenize=True, **options)
        return len(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)

    if config.kind == "sft":
        fitted = fit_to_length(rows, lambda row: count([*row["prompt"], *row["completion"]]),
                               getattr(trl_args, "max_length", None), "sft")
        if not fitted.rows:
            raise TrainSetupError(f"no training row fits max_length={trl_args.max_length} tokens; "
                                  f"{fitted.notes[-1] if fitted.notes else ''}")
        return fitted
    return fit_to_length(rows, lambda row: count(row["prompt"], add_generation_prompt=True), None, "grpo")


def _start_model(config: TrainConfig, say: Say) -> tuple[Path, str, Path | None]:
    """The folder of the model to start from, its name, and the LoRA adapter on it when
    ``config.model`` is an adapter folder (``adapter_config.json``, e.g. an SFT run's final); its
    base is found as the embedded backend finds it (`gtalign.backends._model_store.read_adapter`).
    A LoRA run keeps training that adapter: ``lora`` settings that differ from the adapter's are
    named through ``say`` (the adapter's win)."""
    from gtalign.backends._model_store import ModelStoreError, is_adapter, read_adapter, resolve_model

    spec, adapter = config.model_spec, None
    if spec is not None and is_adapter(spec):
        try:
            adapter = read_adapter(spec)
        except ModelStoreError as exc:
            raise TrainSetupError(f"model {config.model}: a LoRA adapter whose base model cannot be read: {exc}") from None
        spec = adapter.base
        differences = _lora_differences(build_lora_config(config), adapter.settings) if config.lora is not None else []
        if differences:
            say(f"model {config.model}: a LoRA adapter, trained on with its own settings, not lora's: {', '.join(differences)}")
    try:
        source = resolve_model(spec, announce=say)
    except ModelStoreError as exc:
        where = f" (the base model of the adapter {adapter.path})" if adapter else ""
        raise TrainSetupError(f"model{where}: {exc}") from None
    if adapter is None:
        return source.path, source.name, None
    return source.path, adapter.base_name, adapter.path


def _lora_differences(lora: Any, adapter: Mapping[str, Any]) -> list[str]:
    """``lora``'s settings that the adapter does not share, as ``name V (lora: W)``; ``all-linear``
    targets are left alone (peft saves them expanded to the module names)."""
    out = []
    for key in ("r", "lora_alpha", "lora_dropout", "target_modules"):
        wanted, has = getattr(lora, key, None), adapter.get(key)
        if key == "target_modules":
            if "all-linear" in (wanted, has) or wanted is None:
                continue
            wanted, has = _names(wanted), _names(has)
        if wanted != has:
            out.append(f"{key} {has} (lora: {wanted})")
    return out


def _names(modules: Any) -> list[str]:
    return sorted([modules] if isinstance(modules, str) else modules or [])


def _load_base(plan: TrainPlan) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(plan.model_path)


def _load_start_model(plan: TrainPlan) -> tuple[Any, Any]:
    """The model to start from and its tokenizer: (path, None) without an adapter (TRL then loads
    both from the path); with ``plan.adapter``, the base with the adapter as a trainable
    `peft.PeftModel` (a LoRA run trains it on) or merged into it (a full fine-tune)."""
    if plan.adapter is None:
        return str(plan.model_path), None
    from peft import PeftModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(plan.adapter)
    if plan.lora is None:
        return PeftModel.from_pretrained(_load_base(plan), plan.adapter).merge_and_unload(), tokenizer
    return PeftModel.from_pretrained(_load_base(plan), plan.adapter, is_trainable=True), tokenizer


def _record_base(plan: TrainPlan, folder: Path) -> None:
    """Next to a saved adapter, the base model it applies to (`ADAPTER_BASE_RECORD`)."""
    from gtalign.backends._model_store import is_adapter, write_adapter_base

    if is_adapter(folder):
        write_adapter_base(folder, plan.model_path, plan.model_name)


# --- run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What a run did: the step it reached, the final model, the logged steps and the evaluation."""

    output_dir: Path
    global_step: int
    max_steps: int
    resumed_from: str | None
    final_dir: Path | None
    history: tuple[Mapping[str, Any], ...]
    eval_summary: Any = None
    seconds: float = 0.0

    @property
    def losses(self) -> list[float]:
        return [float(row["loss"]) for row in self.history if "loss" in row]

    @property
    def exit_code(self) -> int:
        """0 when the run finished and its evaluation (if any) scored every sample, else the
        evaluation's code (1 some sample failed, 130 interrupted)."""
        return 0 if self.eval_summary is None else int(self.eval_summary.exit_code)


def _record_start(plan: TrainPlan, run: int) -> dict[str, Any]:
    record = dict(plan.record or {})
    starts = list(record.get("runs", []))
    starts.append({"run": run, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "resumed_from": plan.resume_from.name if plan.resume_from else None, "finished": False})
    return {
        "format": RECORD_FORMAT,
        "kind": plan.config.kind,
        "versions": _versions(),
        "config": plan.config.to_json(),
        "model_path": str(plan.model_path),
        "rows": {"used": len(plan.rows.rows), "skipped": len(plan.rows.skipped), "per_source": dict(plan.rows.per_source),
                 "dropped_eval": dict(plan.rows.dropped_eval), "prompt_mode": plan.rows.prompt_mode,
                 "fingerprint": rows_fingerprint(plan.rows)},
        "runs": starts,
    }


def _remove_incomplete(plan: TrainPlan, say: Say) -> None:
    for path in plan.incomplete:
        shutil.rmtree(path, ignore_errors=True)
        say(f"removed {path}: a checkpoint left incomplete by an earlier run that was killed while writing it")


def _drop_default_printers(trainer: Any) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


def _merge_adapter(plan: TrainPlan, adapter: Path, target: Path, say: Say) -> Path:
    """The trained LoRA adapter merged into the plain base model (``plan.model_path``: a run that
    started from an adapter trained that adapter on, so the base is never the merged start), saved
    as a full model folder (what the embedded backend of `gtalign eval` loads)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    say(f"merging the adapter into the base model for the evaluation: {target}")
    merged = PeftModel.from_pretrained(_load_base(plan), adapter).merge_and_unload()
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging)
    AutoTokenizer.from_pretrained(adapter).save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def _evaluate(plan: TrainPlan, final_dir: Path, step: int, say: Say, quiet: bool) -> Any:
    """`gtalign eval` of the final model (of ``step``) into ``OUTPUT_DIR/eval-step-N`` (resumed
    like any eval run)."""
    from rich.console import Console

    from gtalign.eval import EvalProgress, EvalSetupError, ResumeRefused as EvalResumeRefused, run_eval

    model_dir = final_dir
    if plan.lora is not None:
        model_dir = _merge_adapter(plan, final_dir, plan.output_dir / MERGED_DIR, say)
    eval_config = plan.config.eval_config(model=str(model_dir), default_prompt=plan.rows.prompt_mode)
    run_dir = plan.output_dir / f"{EVAL_PREFIX}{step}"
    say(f"evaluating {model_dir} (step {step}) on {', '.join(eval_config.benchmarks)} into {run_dir}")
    progress = EvalProgress(Console(file=sys.stderr, highlight=False), enabled=not quiet)
    try:
        return run_eval(eval_config, run_dir, progress=progress)
    except (EvalSetupError, EvalResumeRefused) as exc:
        raise TrainSetupError(f"eval: {exc}") from None


def run_training(
    config: TrainConfig,
    *,
    resume: str | os.PathLike[str] = "auto",
    say: Say = _quiet,
    quiet: bool = False,
    plan: TrainPlan | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train ``config`` (SFT or GRPO) to its last step, save the final model, evaluate it when
    ``config.eval`` asks; resumes from the output folder's newest complete checkpoint (``resume``:
    ``auto``, ``always``, ``never`` or a checkpoint folder). ``say`` receives progress lines.
    Raises `TrainSetupError` (and `ResumeRefused`) before anything is trained for a setting that
    cannot be used; Ctrl-C propagates as KeyboardInterrupt after the last checkpoint was kept."""
    started = time.monotonic()
    plan = plan or plan_training(config, resume=resume, say=say)
    output_dir = plan.output_dir
    main = _is_main_process()
    output_dir.mkdir(parents=True, exist_ok=True)
    if main:
        from gtalign.data import OutputLocked, output_lock

        try:
            with output_lock(output_dir / RECORD_NAME):
                return _train_locked(plan, main, say, quiet, callbacks, started)
        except OutputLocked as exc:
            raise ResumeRefused(str(exc)) from None
    return _train_locked(plan, main, say, quiet, callbacks, started)


def _train_locked(plan: TrainPlan, main: bool, say: Say, quiet: bool, callbacks: Sequence[Any], started: float) -> TrainResult:
    from gtalign.training._train_progress import MetricsLog, TrainProgress

    config, output_dir = plan.config, plan.output_dir
    command = f"gtalign train {config.kind}"

    def note(message: str) -> None:
        say(f"{command}: {message}")

    record = _record_start(plan, run=len((plan.record or {}).get("runs", [])) + 1)
    if main:
        _remove_incomplete(plan, note)
        _write_json(output_dir / RECORD_NAME, record)
    if config.threads is not None:
        import torch

        torch.set_num_threads(config.threads)
    own = [MetricsLog(output_dir / METRICS_LOG, run=record["runs"][-1]["run"])]
    if not quiet:
        own.append(TrainProgress(say, command))
    model, tokenizer = _load_start_model(plan)
    if config.kind == "sft":
        from gtalign.training._sft import build_sft_trainer

        trainer = build_sft_trainer(config, plan.trl_args, model, plan.rows.rows, peft_config=plan.lora,
                                    callbacks=[*own, *callbacks], processing_class=tokenizer)
    else:
        from gtalign.training._grpo import build_grpo_trainer

        trainer = build_grpo_trainer(config, plan.trl_args, model, plan.rows.rows, plan.reward_funcs,
                                     peft_config=plan.lora, callbacks=[*own, *callbacks], processing_class=tokenizer)
    _drop_default_printers(trainer)
    if plan.resume_from is not None:
        note(f"resuming from {plan.resume_from}")
    trainer.train(resume_from_checkpoint=str(plan.resume_from) if plan.resume_from else None)
    final_dir = output_dir / FINAL_DIR
    trainer.save_model(str(final_dir))
    if main:
        _record_base(plan, final_dir)
    state = trainer.state
    if main:
        record["runs"][-1].update(finished=True, global_step=state.global_step,
                                  ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        _write_json(output_dir / RECORD_NAME, record)
        note(f"step {state.global_step}/{state.max_steps}; final model in {final_dir}")
    summary = _evaluate(plan, final_dir, state.global_step, note, quiet) if main and config.eval is not None else None
    return TrainResult(output_dir, state.global_step, state.max_steps,
                       plan.resume_from.name if plan.resume_from else None, final_dir,
                       tuple(dict(row) for row in state.log_history), summary, time.monotonic() - started)
