"""What an evaluation run is: one frozen `EvalConfig`, which the command line fills field by field
and which the run log's header records, so a resume can tell whether it is the same run.

`EvalConfig.to_json` holds exactly the settings that can change a record (what the model is asked,
how it decodes, how it is scored); it is what `config_hash` hashes. Settings that cannot change a
record are left out: ``concurrency`` (how many rows are in flight) and ``name`` (the run's label
in reports, stored in the header beside the hashed settings by `EvalConfig.header_json`), and the
output folder, which is not part of the config at all.

A run that scores another run's answers (``answers_from``) takes every setting that made those
answers (`ANSWER_SETTINGS`) from that run's header (`take_answer_settings`) and hashes the source's
``config_hash`` (``answers_hash``), so a resume notices a changed source.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal

from gtalign.eval._log import config_hash
from gtalign.steering._modes import CONSTRAIN_MODES, DEFAULT_ON_IGNORED, IGNORED_PROTOCOL

__all__ = [
    "ANSWER_SETTINGS", "CONFIG_LABELS", "EvalConfig", "EvalSetupError", "SAMPLED_TEMPERATURE", "read_eval_settings",
    "take_answer_settings",
]

PromptMode = Literal["stored", "builder"]
_PROMPTS: tuple[str, ...] = ("stored", "builder")
SAMPLED_TEMPERATURE = 0.7
"""The temperature of a run with several epochs when none is given: K greedy answers would be K
copies of one answer, which gives no spread."""
CONFIG_LABELS = ("name", "answers_from")
"""Keys of the header's config that label the run without changing a record (not hashed)."""
ANSWER_SETTINGS = ("benchmarks", "data", "limit", "seed", "sources", "prompt", "split", "backend", "model", "max_tokens",
                   "temperature", "epochs", "steer", "pricing", "pricing_params", "rule", "on_ignored", "constrain")
"""The settings that determine a run's answers: a run with ``answers_from`` takes them from its source."""
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class EvalSetupError(ValueError):
    """A setting of the run that cannot be used; the message names the setting and what to pass."""


def _frozen_params(name: str, value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise EvalSetupError(f"{name} must be a mapping of parameter names to values, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str):
            raise EvalSetupError(f"{name}: parameter names must be strings, got {key!r}")
        try:
            json.dumps(item, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EvalSetupError(f"{name}[{key!r}] is not a JSON value ({exc}): give a number, string, list or mapping") from None
    return MappingProxyType(dict(value))


def _names(name: str, value: Sequence[str] | str | None, *, empty_ok: bool) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise EvalSetupError(f"{name} must be non-empty names, got {list(items)!r}")
    items = tuple(dict.fromkeys(item.strip() for item in items))
    if not items and not empty_ok:
        raise EvalSetupError(f"{name} needs at least one name")
    return items


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """One evaluation run: which prompts, which model, how it answers, how it is scored.

    benchmarks: benchmark names or paths (`gtalign.benchmarks.load_benchmark`), in run order.
    data, limit, seed, sources, prompt, split: passed to the benchmark loader. ``seed`` also seeds
        generation: epoch ``e`` decodes with seed ``seed + e`` (``0 + e`` without one), so epochs
        differ from each other and a rerun repeats them.
    backend: ``embedded``, ``embedded:PATH``, an ``http(s)://`` URL, or ``module:attr`` (a
        `ChatBackend`, or a factory called with no arguments, or with ``model=`` when ``model`` is
        set); model: the model name at a URL, or a local model for the embedded backend.
    preset, preset_params: the reward preset (`gtalign.reward.get_preset`).
    judge, judge_model: ``rule``, an ``http(s)://`` URL (with its served model), a registered judge
        or ``module:attr``; None scores without a judge (rows that need a verdict are unscored).
    steer: answer through `SteeringEngine` with ``pricing`` (+ ``pricing_params``), the welfare
        ``rule`` and ``on_ignored``; without it the model answers in one pass. ``constrain``
        (``off``, ``auto``, ``on``) decodes under the protocol's grammar (`gtalign.protocol.ProtocolGrammar`),
        the whole answer in one pass or each steering stage. ``rule`` also names
        the welfare choice each record's parse is checked against (`AnswerParse.welfare_key`).
    epochs: answers per prompt. temperature: None means 0 (greedy) for one epoch and
        `SAMPLED_TEMPERATURE` for several (`effective_temperature`).
    concurrency: rows in flight at once, and an HTTP backend's client limit (None: the backend's own
        limit, `choose_concurrency`: the embedded batch size, the HTTP client's limit). Not hashed.
    name: the run's label in reports (default: the output folder's name). Not hashed.
    answers_from: another run's folder whose answers this run scores instead of generating, joined
        on ``(id, epoch)``; `ANSWER_SETTINGS` are then that run's (``benchmarks`` may be left empty
        until `take_answer_settings` fills them). The folder is a label, not hashed.
    answers_hash: the source run's ``config_hash`` (set by `take_answer_settings`); hashed.

    >>> EvalConfig(("sample",), epochs=3).effective_temperature
    0.7
    >>> EvalConfig(("sample",), preset="robust").diff(EvalConfig(("sample",), concurrency=2))
    "preset: 'robust' vs 'paper'"
    """

    benchmarks: tuple[str, ...] = ()
    backend: str = "embedded"
    model: str | None = None
    preset: str = "paper"
    preset_params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    judge: str | None = "rule"
    judge_model: str | None = None
    data: str | None = None
    limit: int | None = None
    seed: int | None = None
    sources: tuple[str, ...] | None = None
    prompt: PromptMode = "stored"
    split: str | None = None
    steer: bool = False
    pricing: str = "none"
    pricing_params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    rule: str = "sum"
    on_ignored: str = DEFAULT_ON_IGNORED
    constrain: str = "off"
    epochs: int = 1
    temperature: float | None = None
    max_tokens: int = 512
    concurrency: int | None = None
    name: str | None = None
    answers_from: str | None = None
    answers_hash: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.answers_from is not None:
            if not isinstance(self.answers_from, str) or not self.answers_from.strip():
                raise EvalSetupError(f"answers_from must be a run folder, got {self.answers_from!r}")
        elif self.answers_hash is not None:
            raise EvalSetupError("answers_hash only applies with answers_from (--answers-from RUN_DIR)")
        set_(self, "benchmarks", _names("benchmarks", self.benchmarks, empty_ok=self.answers_from is not None))
        set_(self, "sources", _names("sources", self.sources, empty_ok=False))
        set_(self, "preset_params", _frozen_params("preset_params", self.preset_params))
        set_(self, "pricing_params", _frozen_params("pricing_params", self.pricing_params))
        for name in ("backend", "preset", "rule", "pricing"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise EvalSetupError(f"{name} must be a non-empty string, got {value!r}")
        for name in ("limit", "epochs", "max_tokens", "concurrency"):
            value = getattr(self, name)
            if value is None and name in ("limit", "concurrency"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EvalSetupError(f"{name} must be an integer >= 1, got {value!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise EvalSetupError(f"seed must be an integer, got {self.seed!r}")
        if self.temperature is not None and (
            isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature) or self.temperature < 0
        ):
            raise EvalSetupError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if self.prompt not in _PROMPTS:
            raise EvalSetupError(f"prompt must be one of {', '.join(_PROMPTS)}, got {self.prompt!r}")
        if self.constrain not in CONSTRAIN_MODES:
            raise EvalSetupError(f"constrain must be one of {', '.join(CONSTRAIN_MODES)}, got {self.constrain!r}")
        if self.on_ignored not in IGNORED_PROTOCOL:
            raise EvalSetupError(f"on_ignored must be one of {', '.join(IGNORED_PROTOCOL)}, got {self.on_ignored!r}")
        if not self.steer:
            steering_only = [name for name, given in (
                ("pricing", self.pricing != "none"), ("pricing_params", bool(self.pricing_params)),
                ("on_ignored", self.on_ignored != DEFAULT_ON_IGNORED),
            ) if given]
            if steering_only:
                raise EvalSetupError(f"{', '.join(steering_only)} only apply with steer=True (--steer)")
        if self.judge_model is not None and not (self.judge or "").startswith(("http://", "https://")):
            raise EvalSetupError(f"judge_model only applies to a URL judge, not judge={self.judge!r}")

    @property
    def effective_temperature(self) -> float:
        """The temperature every answer is decoded with."""
        if self.temperature is not None:
            return float(self.temperature)
        return 0.0 if self.epochs == 1 else SAMPLED_TEMPERATURE

    @property
    def base_seed(self) -> int:
        return self.seed if self.seed is not None else 0

    def seed_for(self, epoch: int) -> int:
        """The decoding seed of ``epoch`` (0-based)."""
        return self.base_seed + epoch

    def to_json(self) -> dict[str, Any]:
        """The settings that can change a record, JSON-ready: what `config_hash` hashes.

        The temperature is the effective one, so an explicit 0.7 with several epochs is the same run
        as the default; steering settings are null without ``steer``."""
        return {
            "benchmarks": list(self.benchmarks),
            "data": self.data,
            "limit": self.limit,
            "seed": self.seed,
            "sources": None if self.sources is None else list(self.sources),
            "prompt": self.prompt,
            "split": self.split,
            "backend": self.backend,
            "model": self.model,
            "preset": self.preset,
            "preset_params": dict(self.preset_params),
            "judge": self.judge.rstrip("/") if self.judge and self.judge.startswith(("http://", "https://")) else self.judge,
            "judge_model": self.judge_model,
            "steer": self.steer,
            "pricing": self.pricing if self.steer else None,
            "pricing_params": dict(self.pricing_params) if self.steer else None,
            "rule": self.rule,
            "on_ignored": self.on_ignored if self.steer else None,
            "epochs": self.epochs,
            "temperature": self.effective_temperature,
            "max_tokens": self.max_tokens,
            # Only when set: the hash of every ordinary run stays what it was.
            **({"constrain": self.constrain} if self.constrain != "off" else {}),
            **({"answers_hash": self.answers_hash} if self.answers_from is not None else {}),
        }

    def header_json(self) -> dict[str, Any]:
        """What the run header's ``config`` holds: `to_json` and the run's labels (`CONFIG_LABELS`)."""
        labels = {"answers_from": self.answers_from} if self.answers_from is not None else {}
        return {**self.to_json(), "name": self.name, **labels}

    @property
    def hash(self) -> str:
        return config_hash(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalConfig:
        """The config a run header recorded (`header_json` or `to_json`); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EvalSetupError(f"unknown config keys {unknown}; this gtalign knows {sorted(known)}")
        values = dict(data)
        if not values.get("steer"):
            for key, default in (("pricing", "none"), ("pricing_params", None), ("on_ignored", DEFAULT_ON_IGNORED)):
                if values.get(key) is None:
                    values[key] = default
        return cls(**values)

    def diff(self, other: EvalConfig | Mapping[str, Any]) -> str | None:
        """The first setting (in `to_json` order) whose value differs from ``other`` (a config or a
        recorded ``to_json``), as ``"name: mine vs theirs"``; None when every hashed setting agrees.
        Labels (`CONFIG_LABELS`) are not compared."""
        mine = self.to_json()
        theirs = dict(other.to_json() if isinstance(other, EvalConfig) else other)
        for key in CONFIG_LABELS:
            theirs.pop(key, None)
        for key in [*mine, *sorted(set(theirs) - set(mine))]:
            if key not in theirs:
                return f"{key}: {mine[key]!r} vs (not set)"
            if key not in mine:
                return f"{key}: (not set) vs {theirs[key]!r}"
            if json.dumps(mine[key], sort_keys=True) != json.dumps(theirs[key], sort_keys=True):
                return f"{key}: {mine[key]!r} vs {theirs[key]!r}"
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def take_answer_settings(
    config: EvalConfig,
    source: Mapping[str, Any],
    source_hash: str,
    given: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> EvalConfig:
    """``config`` (which has ``answers_from``) with the `ANSWER_SETTINGS` of its source run, whose
    header recorded ``source`` (its config) and ``source_hash``. ``given``: the answer settings the
    caller set on purpose (default: those of ``config`` that differ from `EvalConfig`'s defaults);
    each must equal the source's, else `EvalSetupError` names it (as ``flags`` spells it).

    >>> source = EvalConfig(("sample",), backend="http://h/v1", max_tokens=64)
    >>> run = take_answer_settings(EvalConfig(answers_from="runs/a", preset="robust"), source.header_json(), source.hash)
    >>> (run.backend, run.max_tokens, run.preset, run.answers_hash == source.hash)
    ('http://h/v1', 64, 'robust', True)
    >>> take_answer_settings(EvalConfig(answers_from="runs/a", max_tokens=128), source.header_json(), source.hash)
    Traceback (most recent call last):
    ...
    gtalign.eval._config.EvalSetupError: max_tokens is 128 here but 64 in runs/a, whose answers are scored: leave it out to take that run's
    """
    if config.answers_from is None:
        raise EvalSetupError("take_answer_settings needs a config with answers_from")
    recorded = {key: value for key, value in source.items() if key not in (*CONFIG_LABELS, "answers_hash")}
    try:
        theirs = EvalConfig.from_json(recorded)
    except (EvalSetupError, TypeError) as exc:
        raise EvalSetupError(f"answers_from {config.answers_from}: its header's config cannot be read: {exc}") from None
    if given is None:
        defaults = EvalConfig(answers_from=config.answers_from)
        given = {key: getattr(config, key) for key in ANSWER_SETTINGS
                 if _plain(getattr(config, key)) != _plain(getattr(defaults, key))}
    if config.answers_hash is not None:
        given = {**given, "answers_hash": config.answers_hash}
    values = {key: getattr(theirs, key) for key in ANSWER_SETTINGS}
    values["answers_hash"] = source_hash
    for key, mine in given.items():
        if key not in values:
            raise EvalSetupError(f"{key} is not an answer setting; these are {', '.join(ANSWER_SETTINGS)}")
        if key == "answers_hash" and mine != source_hash:
            raise EvalSetupError(f"{config.answers_from}, whose answers are scored, holds another run now (config hash "
                                 f"{source_hash}, not {mine}): its answers changed")
        if _plain(mine) != _plain(values[key]):
            name = (flags or {}).get(key, key)
            raise EvalSetupError(f"{name} is {_plain(mine)!r} here but {_plain(values[key])!r} in {config.answers_from}, whose "
                                 "answers are scored: leave it out to take that run's")
    return replace(config, **values)


def read_eval_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings of a ``--config`` file (YAML, or JSON by suffix) with `EvalConfig` field names
    as keys; the command line overrides them. An unknown key is an `EvalSetupError` naming it and
    listing the valid ones (``answers_hash`` is set by the run, never by a file)."""
    from gtalign._settings_file import read_settings_file

    values = read_settings_file(path, EvalSetupError)
    valid = [f.name for f in fields(EvalConfig) if f.name != "answers_hash"]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise EvalSetupError(f"{path}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return values
