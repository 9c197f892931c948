"""Progress of an evaluation run on a console: a rich bar with rate and ETA on a terminal, a plain
line every ``every`` seconds elsewhere (a log file, CI), and one warning the first time a model
call or a judge fails, since a server that is down can cost a long run before its summary says so.

The clock is injected, so tests see the lines without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from gtalign.eval._log import SampleRecord

__all__ = ["EvalProgress", "judge_failed"]


def judge_failed(record: SampleRecord) -> bool:
    """The judge failed on this row (asking again may give a verdict)."""
    return record.status in ("scored", "unscored") and record.reward.get("judge_status") == "failed"


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class EvalProgress:
    """Counts the samples a run writes. ``console`` is where it prints (stderr for the CLI);
    ``enabled=False`` prints nothing (notes and warnings included)."""

    def __init__(self, console: Console, *, enabled: bool = True, clock: Callable[[], float] = time.monotonic,
                 every: float = 30.0) -> None:
        self.console = console
        self.enabled = enabled
        self.clock = clock
        self.every = every
        self.total = 0
        self.done = 0
        self.generation_failures = 0
        self.judge_failures = 0
        self._start = self._last = clock()
        self._bar: Any = None
        self._task: Any = None

    @property
    def poll(self) -> float:
        """Seconds between checks for a due line (a quarter period, so a line is at most that late)."""
        return self.every / 4

    def note(self, text: str) -> None:
        """A line the user should see now (resume notes, where the run writes)."""
        if self.enabled:
            self.console.print(text, markup=False, soft_wrap=True, highlight=False)

    def start(self, total: int) -> None:
        """``total`` samples are to be run now (the records an earlier run finished are not counted)."""
        self.total = total
        self._start = self._last = self.clock()
        if self.enabled and self.console.is_terminal and total:
            self._bar = _bar(self.console)
            self._task = self._bar.add_task("eval", total=total)
            self._bar.start()

    def advance(self, records: Sequence[SampleRecord]) -> None:
        """Count records just written; warn once at the first generation failure and judge failure."""
        for record in records:
            if record.status == "generation_failed":
                if not self.generation_failures:
                    self._warn(f"the model failed on {record.id} (epoch {record.epoch}): {record.error}. "
                               "Failed rows are counted and retried by a rerun of the same command")
                self.generation_failures += 1
            elif judge_failed(record):
                if not self.judge_failures:
                    self._warn(f"the judge failed on {record.id} (epoch {record.epoch}): {record.reward.get('reason')}. "
                               "These rows are unscored; a rerun of the same command judges them again")
                self.judge_failures += 1
        self.done += len(records)
        if self._bar is not None:
            self._bar.update(self._task, advance=len(records), description=self._description())
        self.tick()

    def tick(self) -> None:
        """Print a plain line if one is due (the bar keeps its own time)."""
        if self._bar is not None or not self.enabled:
            return
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            self.console.print(self.line(now), markup=False, soft_wrap=True, highlight=False)

    def line(self, now: float) -> str:
        """Samples done of the total, rate, ETA, failures so far."""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        elapsed = now - self._start
        parts = [f"gtalign eval: {self.done}/{self.total} samples{share}"]
        if elapsed > 0 and self.done:
            rate = self.done / elapsed
            parts.append(f"{rate:.2f} samples/s")
            parts.append(f"ETA {_duration((self.total - self.done) / rate)}")
        failures = self._failures()
        if failures:
            parts.append(failures)
        return ", ".join(parts)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _failures(self) -> str:
        parts = []
        if self.generation_failures:
            parts.append(f"{self.generation_failures} generation failures")
        if self.judge_failures:
            parts.append(f"{self.judge_failures} judge failures")
        return ", ".join(parts)

    def _description(self) -> str:
        failures = self._failures()
        return f"eval ({failures})" if failures else "eval"

    def _warn(self, text: str) -> None:
        if self.enabled:
            self.console.print(f"gtalign eval: warning: {text}", markup=False, soft_wrap=True, highlight=False)


def _bar(console: Console) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        """Samples per second over rich's recent window."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-- samples/s" if speed is None else f"{speed:.2f} samples/s", style="progress.data.speed")

    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), Rate(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=True)
