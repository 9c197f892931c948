"""What a training run says while it runs, and what it leaves in its metrics log.

`TrainProgress` is a transformers `TrainerCallback`: a line per logged step on stderr (step of
total, loss, for GRPO the reward and its components, seconds per step and the time left), a line
per checkpoint written; transformers' own tqdm bar and dict printer are replaced by it.
`MetricsLog` appends every logged step to ``OUTPUT_DIR/train_log.jsonl`` (one JSON object a line,
the run's number, the step and TRL's metrics: loss, ``rewards/<name>/mean``, ``gtalign/...``), the
file the learning curves are drawn from; a resumed run appends to it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from gtalign.cli._progress import duration

__all__ = ["MetricsLog", "TrainProgress", "format_step"]

_GTALIGN_SHOWN = (("gtalign/score", "score"), ("gtalign/user_reward", "U"), ("gtalign/llm_reward", "L"),
                  ("gtalign/format", "format"), ("gtalign/consistency", "consistency"))


def _number(value: Any) -> str:
    """A metric for a person: 4 significant digits; ``n/a`` for a missing one (TRL logs None or NaN
    for a mean over no scored row)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def format_step(step: int, total: int, logs: Mapping[str, Any], seconds_per_step: float | None) -> str:
    """One progress line for a logged step."""
    parts = [f"step {step}/{total}"]
    for key, label in (("loss", "loss"), ("reward", "reward")):
        if key in logs:
            parts.append(f"{label} {_number(logs[key])}")
    for key, label in _GTALIGN_SHOWN:
        if key in logs:
            parts.append(f"{label} {_number(logs[key])}")
    for key, label in (("gtalign/unscored_frac", "unscored"), ("gtalign/judge_failed_frac", "judge failed")):
        if key in logs:
            parts.append(f"{label} {logs[key]:.0%}")
    if "mean_token_accuracy" in logs:
        parts.append(f"token accuracy {_number(logs['mean_token_accuracy'])}")
    if seconds_per_step is not None:
        parts.append(f"{seconds_per_step:.1f} s/step")
        if total > step:
            parts.append(f"{duration(seconds_per_step * (total - step))} left")
    return "  ".join(parts)


class TrainProgress(TrainerCallback):  # type: ignore[misc]
    """Progress lines through ``say`` (main process only); ``clock`` times the steps."""

    def __init__(self, say: Callable[[str], None], command: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.say = say
        self.command = command
        self.clock = clock
        self._start_step = 0
        self._start_time = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start_step = state.global_step
        self._start_time = self.clock()
        if state.is_world_process_zero:
            where = f" from step {state.global_step}" if state.global_step else ""
            self.say(f"{self.command}: training{where} to step {state.max_steps}")

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        done = state.global_step - self._start_step
        per_step = (self.clock() - self._start_time) / done if done > 0 else None
        self.say(f"{self.command}: {format_step(state.global_step, state.max_steps, logs, per_step)}")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.say(f"{self.command}: checkpoint-{state.global_step} written in {args.output_dir}")


class MetricsLog(TrainerCallback):  # type: ignore[misc]
    """Appends each logged step to ``path`` as one JSON line (main process only), flushed."""

    def __init__(self, path: Path, run: int) -> None:
        self.path = path
        self.run = run

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        row = {"run": self.run, "step": state.global_step, **{k: _json_number(v) for k, v in logs.items()}}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, allow_nan=False) + "\n")


def _json_number(value: Any) -> Any:
    """NaN and infinities as strings (JSON has no such numbers); anything else as is."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
