"""The output rows of ``gtalign score``, read back: the settings each row records, why a row has
no score from a usable verdict, and which rows a rerun scores again.

Every output row carries the settings that produced it under `RUN_KEY` (`RunSettings`: the output
schema, the gtalign version, the preset with its parameters, the judge, ``--unscored-as-zero``),
so a resume with other settings is refused, naming the setting, instead of silently mixing rows.

`row_cause` is the one place that reads an output row's status, ``judge_status``, ``reason`` and
``error`` to say why it has no score from a usable verdict; the counts, the progress warning, the
summary's hints and the choice of rows to score again all go through it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gtalign import __version__
from gtalign.reward import RewardPreset

__all__ = [
    "OUTPUT_SCHEMA",
    "RERUN",
    "RUN_KEY",
    "SCORING_FAILED",
    "Cause",
    "RunSettings",
    "SettingsError",
    "judge_failed",
    "refusal",
    "row_cause",
    "to_rerun",
]

RUN_KEY = "gtalign_run"
"""The output row key holding the settings that produced the row (`RunSettings.to_json`)."""
OUTPUT_SCHEMA = 1
"""Version of the output row format; a resume refuses rows of another version."""
SCORING_FAILED = "scoring failed:"
"""How the reason (unscored rows) or the error (error rows) of a row whose scoring raised begins
(after ``row N: `` in an error)."""

Cause = Literal["judge failed", "no judge", "input verdict", "unusable verdict", "unknown data_source", "scoring failed", "bad row", "other"]
"""Why an output row has no score from a usable verdict (`row_cause`):

- ``judge failed``: a judge was given and failed on the row (unreachable, timed out, errored after
  retries): unscored, or scored as verdict 0 with ``--unscored-as-zero``;
- ``no judge``: the row needed a verdict and no judge was given (unscored, or verdict 0);
- ``input verdict``: the row's own ``judge_verdict`` cannot be used (outside the task's scale, or
  not ok);
- ``unusable verdict``: the judge answered, but unusably (unparsable, invalid, refused, outside the
  scale);
- ``unknown data_source``: no task is registered for the row's data_source;
- ``scoring failed``: the preset raised on the row (unscored, or an error row);
- ``bad row``: an error row that could not be read, mapped onto a sample or written back;
- ``other``: unscored for a reason not listed here (a preset of one's own)."""

RERUN: frozenset[Cause] = frozenset({"judge failed", "scoring failed", "bad row"})
"""The causes a rerun of the same command scores again, in place: a failed judge may be back, and a
row that errored may succeed now; a row that errors again costs nothing. The other causes give the
same result however often the same command runs."""

_AGAIN = "pass --no-resume to start over, or choose another --output"


class SettingsError(ValueError):
    """A row's `RUN_KEY` record that cannot be read as `RunSettings`; the message completes a
    sentence whose subject is the row (``row 3 has no ...``)."""


def _setting(value: Any) -> Any:
    """A preset parameter as stable JSON: scalars as they are, objects by name or type."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(key): _setting(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_setting(item) for item in value]
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else f"{type(value).__module__}:{type(value).__qualname__}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _on(flag: bool) -> str:
    return "on" if flag else "off"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What decides an output row besides its input, recorded in every row under `RUN_KEY`; a
    resume must match it exactly.

    schema: the output row format (`OUTPUT_SCHEMA`).
    version: the gtalign version.
    preset, params: the preset's name and its parameters (as JSON).
    judge: what decides the verdicts (`JudgeOptions.identity`; None: no judge).
    unscored_as_zero: ``--unscored-as-zero``.
    batch_size: ``--batch-size``, only for presets that normalise per batch (else None, and not
        written).
    """

    schema: int
    version: str
    preset: str
    params: Mapping[str, Any]
    judge: str | None
    unscored_as_zero: bool
    batch_size: int | None = None

    @classmethod
    def of(cls, preset: RewardPreset, *, judge: str | None, unscored_as_zero: bool, batch_size: int) -> RunSettings:
        """The settings of a run of ``preset``; parameters that are objects are recorded by name."""
        if dataclasses.is_dataclass(preset):
            skip = {"name", "unscored_as_zero"}
            params = {f.name: _setting(getattr(preset, f.name)) for f in dataclasses.fields(preset) if f.compare and f.name not in skip}
        else:
            params = {"type": f"{type(preset).__module__}:{type(preset).__qualname__}"}
        normalises = getattr(preset, "normalize", "none") != "none"
        return cls(
            OUTPUT_SCHEMA, __version__, preset.name, json.loads(json.dumps(params)), judge, unscored_as_zero,
            batch_size if normalises else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The record written in every row (schema 1: these keys in this order; ``batch_size`` only
        when set)."""
        out: dict[str, Any] = {
            "schema": self.schema,
            "version": self.version,
            "preset": self.preset,
            "params": json.loads(json.dumps(self.params)),
            "judge": self.judge,
            "unscored_as_zero": self.unscored_as_zero,
        }
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
        return out

    @classmethod
    def from_json(cls, value: Any) -> RunSettings:
        """The settings a row recorded; `SettingsError` says what is wrong with a malformed record
        (missing, not an object, another schema, a key missing, unknown or of the wrong type)."""
        if value is None:
            raise SettingsError(f"has no `{RUN_KEY}` settings (written by an older gtalign, or not by gtalign score)")
        if not isinstance(value, Mapping):
            raise SettingsError(f"has a malformed `{RUN_KEY}`: {_json_type(value)}, not an object")
        schema = value.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise SettingsError(f"has a malformed `{RUN_KEY}`: 'schema' must be an integer, got {_json_type(schema)}")
        if schema != OUTPUT_SCHEMA:
            raise SettingsError(f"has rows of output schema {schema}; this gtalign writes schema {OUTPUT_SCHEMA}")
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(key) for key in value if key not in fields)
        if unknown:
            raise SettingsError(f"has a malformed `{RUN_KEY}`: unknown setting {', '.join(map(repr, unknown))}")
        missing = [name for name in fields if name != "batch_size" and name not in value]
        if missing:
            raise SettingsError(f"has a malformed `{RUN_KEY}`: no {', '.join(map(repr, missing))}")
        checks: tuple[tuple[str, str, Any], ...] = (
            ("version", "a string", lambda v: isinstance(v, str)),
            ("preset", "a string", lambda v: isinstance(v, str)),
            ("params", "an object", lambda v: isinstance(v, Mapping)),
            ("judge", "a string or null", lambda v: v is None or isinstance(v, str)),
            ("unscored_as_zero", "true or false", lambda v: isinstance(v, bool)),
            ("batch_size", "a positive integer", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0)),
        )
        for name, wanted, ok in checks:
            if not ok(value.get(name)):
                raise SettingsError(f"has a malformed `{RUN_KEY}`: {name!r} must be {wanted}, got {_json_type(value.get(name))}")
        return cls(
            schema, value["version"], value["preset"], dict(value["params"]), value["judge"], value["unscored_as_zero"],
            value.get("batch_size"),
        )

    def differing(self, other: RunSettings) -> str | None:
        """The name of the first setting in which ``other`` differs from these (None: the same)."""
        for f in dataclasses.fields(self):
            if getattr(self, f.name) != getattr(other, f.name):
                return f.name
        return None

    def diff(self, other: RunSettings) -> str | None:
        """How ``other`` (this run's settings) differs from these (an output's), naming the first
        setting that differs; None when they are the same."""
        name = self.differing(other)
        if name is None:
            return None
        if name == "schema":
            return f"output schema {self.schema} (this gtalign writes schema {other.schema})"
        if name == "version":
            return f"gtalign {self.version} (this is gtalign {other.version})"
        if name == "preset":
            return f"preset {self.preset} (this run: {other.preset})"
        if name == "params":
            before, now = self.params, other.params
            changed = ", ".join(
                f"{key}={before.get(key)!r} (this run: {now.get(key)!r})" for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)
            )
            return f"parameters of preset {self.preset}: {changed}"
        if name == "judge":
            return f"judge {self.judge or 'none'} (this run: {other.judge or 'none'})"
        if name == "unscored_as_zero":
            return f"--unscored-as-zero {_on(self.unscored_as_zero)} (this run: {_on(other.unscored_as_zero)})"
        return f"--batch-size {self.batch_size} (this run: {other.batch_size}; preset {self.preset} normalises per batch)"


def refusal(output: Path, number: int, found: Any, wanted: RunSettings) -> str:
    """Why the settings ``found`` in row ``number`` of ``output`` refuse a resume with ``wanted``,
    and what to pass instead."""
    try:
        recorded = RunSettings.from_json(found)
    except SettingsError as exc:
        return f"{output} row {number} {exc}, so it cannot be resumed safely: {_AGAIN}"
    name = recorded.differing(wanted)
    if name is None:
        return f"{output} row {number} has settings that do not match this run's: {_AGAIN}"
    advice = {
        "preset": f"resume with --preset {recorded.preset}, or ",
        "judge": "resume with the same --judge (and --judge-model), or ",
        "unscored_as_zero": f"resume {'with' if recorded.unscored_as_zero else 'without'} --unscored-as-zero, or ",
        "batch_size": f"resume with --batch-size {recorded.batch_size}, or ",
    }.get(name, "")
    return f"{output} was scored with other settings: {recorded.diff(wanted)}: {advice}{_AGAIN}"


def _judge_given(out: Mapping[str, Any]) -> bool:
    run = out.get(RUN_KEY)
    return isinstance(run, Mapping) and run.get("judge") is not None


def row_cause(out: Mapping[str, Any]) -> Cause | None:
    """Why output row ``out`` has no score from a usable verdict (`Cause`), whatever its status
    (with ``--unscored-as-zero`` a row without a usable verdict is scored as verdict 0); None for a
    row scored from a verdict (or scored without needing one)."""
    status = out.get("status")
    if status == "error":
        error = out.get("error")
        return "scoring failed" if isinstance(error, str) and f": {SCORING_FAILED} " in error else "bad row"
    reason = out.get("reason")
    reason = reason if isinstance(reason, str) else ""
    unscored = status == "unscored"
    if unscored and reason.startswith(SCORING_FAILED):
        return "scoring failed"
    if unscored and reason.startswith("unknown data_source:"):
        return "unknown data_source"
    judge_status = out.get("judge_status")
    if judge_status is None or (judge_status == "ok" and not unscored):
        return "other" if unscored else None
    if out.get("judge_verdict") is not None:  # the verdict came with the input row: no judge was asked
        return "input verdict"
    if judge_status == "failed":
        return "judge failed" if _judge_given(out) else "no judge"
    return "unusable verdict"


def judge_failed(out: Mapping[str, Any]) -> bool:
    """Whether the judge failed on output row ``out`` (could not be reached, timed out, errored
    after retries), whether the row was left unscored or, with ``--unscored-as-zero``, scored as
    verdict 0: a verdict the judge never gave. Not: a verdict the judge gave that is unusable, a
    ``judge_verdict`` given in the input, a row that had no judge at all."""
    return row_cause(out) == "judge failed"


def to_rerun(out: Mapping[str, Any]) -> bool:
    """Whether a rerun of the same command scores output row ``out`` again (its cause is in `RERUN`)."""
    return row_cause(out) in RERUN
