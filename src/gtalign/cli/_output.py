"""The output rows of ``gtalign score``, read back: the settings each row records, and which rows
a resumed run judges again.

Every output row carries the settings that produced it under `RUN_KEY` (the output schema, the
gtalign version, the preset with its parameters, the judge, ``--unscored-as-zero``), so a resume
with other settings is refused, naming the setting, instead of silently mixing rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gtalign import __version__
from gtalign.reward import RewardPreset

__all__ = ["OUTPUT_SCHEMA", "RUN_KEY", "judge_failed", "run_settings", "settings_differ", "unjudged"]

RUN_KEY = "gtalign_run"
"""The output row key holding the settings that produced the row (`run_settings`)."""
OUTPUT_SCHEMA = 1
"""Version of the output row format; a resume refuses rows of another version."""


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


def run_settings(preset: RewardPreset, *, judge: str | None, unscored_as_zero: bool, batch_size: int) -> dict[str, Any]:
    """What decides an output row besides its input: the output schema, the gtalign version, the
    preset with its parameters, the judge (`JudgeOptions.identity`), ``--unscored-as-zero`` and, for
    presets that normalise per batch, the batch size. A resume must match it exactly."""
    if dataclasses.is_dataclass(preset):
        skip = {"name", "unscored_as_zero"}
        params = {f.name: _setting(getattr(preset, f.name)) for f in dataclasses.fields(preset) if f.compare and f.name not in skip}
    else:
        params = {"type": f"{type(preset).__module__}:{type(preset).__qualname__}"}
    settings: dict[str, Any] = {
        "schema": OUTPUT_SCHEMA,
        "version": __version__,
        "preset": preset.name,
        "params": params,
        "judge": judge,
        "unscored_as_zero": unscored_as_zero,
    }
    if getattr(preset, "normalize", "none") != "none":
        settings["batch_size"] = batch_size
    return json.loads(json.dumps(settings))  # as a resumed run reads it back


def settings_differ(output: Path, number: int, found: Any, wanted: Mapping[str, Any]) -> str:
    """Why the settings ``found`` in row ``number`` of ``output`` refuse a resume with ``wanted``."""
    again = "pass --no-resume to start over, or choose another --output"
    if not isinstance(found, Mapping):
        return (
            f"{output} row {number} has no `{RUN_KEY}` settings (written by an older gtalign, or not by gtalign score), "
            f"so it cannot be resumed safely: {again}"
        )
    for key in ("schema", "version", "preset", "params", "judge", "unscored_as_zero", "batch_size"):
        old, new = found.get(key), wanted.get(key)
        if old == new:
            continue
        if key == "schema":
            return f"{output} has rows of output schema {old}; this gtalign writes schema {new}: {again}"
        if key == "version":
            return f"{output} was scored by gtalign {old}, this is gtalign {new}: {again}"
        if key == "preset":
            return f"{output} holds rows scored with preset {old}, not {new}: resume with --preset {old}, or {again}"
        if key == "params":
            before, now = old or {}, new or {}
            diff = ", ".join(f"{name}={before.get(name)!r} (now {now.get(name)!r})" for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name))
            return f"{output} was scored with other parameters of preset {wanted.get('preset')}: {diff}: {again}"
        if key == "judge":
            return (
                f"{output} was judged by {old or 'no judge'}, this run by {new or 'no judge'}: "
                f"resume with the same --judge (and --judge-model), or {again}"
            )
        if key == "unscored_as_zero":
            was = "with" if old else "without"
            return f"{output} was scored {was} --unscored-as-zero: resume {was} it, or {again}"
        return (
            f"{output} was scored with --batch-size {old} (preset {wanted.get('preset')} normalises per batch): "
            f"resume with --batch-size {old}, or {again}"
        )
    unknown = sorted(set(found) ^ set(wanted))
    return f"{output} row {number} has other settings ({', '.join(map(str, unknown)) or 'unknown'}): {again}"


def judge_failed(out: Mapping[str, Any]) -> bool:
    """An output row left unscored because its judge failed (could not be reached, timed out,
    errored after retries): the rows a resumed run judges again. Not: a verdict the judge gave but
    that is unusable (unparsable, invalid, refused), a ``judge_verdict`` given in the input, a row
    that had no judge at all, an unknown data_source."""
    if out.get("status") != "unscored" or out.get("judge_status") != "failed" or out.get("judge_verdict") is not None:
        return False
    run = out.get(RUN_KEY)
    return isinstance(run, Mapping) and run.get("judge") is not None


def unjudged(out: Mapping[str, Any]) -> bool:
    """An output row left unscored because it needed a verdict and no judge was given."""
    if out.get("status") != "unscored" or out.get("judge_status") != "failed" or out.get("judge_verdict") is not None:
        return False
    run = out.get(RUN_KEY)
    return isinstance(run, Mapping) and run.get("judge") is None
