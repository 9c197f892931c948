"""Progress on stderr, on a terminal or not, for ``gtalign score`` (`ScoreProgress`) and ``gtalign
eval`` (`gtalign.eval.EvalProgress`), both built on `ConsoleProgress`.

A rich bar with rate and ETA on a terminal; elsewhere (a log file, CI, ``2>log``) a plain line
every ``every`` seconds, also while a batch is still out, so a slow run is never silent. And one
warning as soon as something fails on a row (each command says what), since a judge or model
server that is down can cost minutes before the summary says so. The clock is injected, so tests
see the lines without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console

from gtalign.cli._output import judge_failed

__all__ = ["ConsoleProgress", "ScoreProgress", "duration"]


def duration(seconds: float) -> str:
    """A time left for a person: ``42s``, ``3m05s``, ``2h07m`` (whole seconds, never negative)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ConsoleProgress:
    """Counts the items a command finishes, of ``total`` (None: unknown).

    command: what starts each line (``gtalign eval``); unit: what is counted (``samples``); task:
    the bar's label. ``enabled=False`` prints nothing (notes and warnings included). A subclass
    counts its failures and says them in `failures`.
    """

    def __init__(self, console: Console, *, command: str, unit: str, task: str, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, every: float = 30.0, total: int | None = None) -> None:
        self.console = console
        self.command = command
        self.unit = unit
        self.task = task
        self.enabled = enabled
        self.clock = clock
        self.every = every
        self.total = total
        self.done = 0
        self._start = self._last = clock()
        self._bar: Any = None
        self._task: Any = None

    @property
    def poll(self) -> float:
        """Seconds between checks for a due line while work is still out (a quarter period, so a
        line is at most that late)."""
        return self.every / 4

    def note(self, text: str) -> None:
        """A line the user should see now (resume notes, where the run writes)."""
        self._print(text)

    def warn(self, text: str) -> None:
        self._print(f"{self.command}: warning: {text}")

    def start(self, total: int | None = None) -> None:
        """Counting starts now, of ``total`` items (None: the one given when made)."""
        if total is not None:
            self.total = total
        self._start = self._last = self.clock()
        if self.enabled and self.console.is_terminal and self.total != 0:
            self._bar = _bar(self.console, self.unit)
            self._task = self._bar.add_task(self.task, total=self.total)
            self._bar.start()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> ConsoleProgress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count(self, items: int) -> None:
        """``items`` more are done (after the subclass has counted their failures)."""
        self.done += items
        if self._bar is not None:
            failures = self.failures()
            self._bar.update(self._task, advance=items, description=f"{self.task} ({failures})" if failures else self.task)
        self.tick()

    def tick(self) -> None:
        """Print a plain line if one is due (the bar keeps its own time)."""
        if self._bar is not None or not self.enabled:
            return
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            self._print(self.line(now))

    def line(self, now: float) -> str:
        """Done of the total, rate, ETA (once something is done), failures so far."""
        if self.total:
            parts = [f"{self.command}: {self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f}%)"]
        else:
            parts = [f"{self.command}: {self.done} {self.unit}"]
        elapsed = now - self._start
        if elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:.2f} {self.unit}/s")
            if rate > 0 and self.total:
                parts.append(f"ETA {duration(max(0, self.total - self.done) / rate)}")
        failures = self.failures()
        if failures:
            parts.append(failures)
        return ", ".join(parts)

    def failures(self) -> str:
        """The failures counted so far, for the line and the bar ("" when none)."""
        return ""

    def _print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, markup=False, soft_wrap=True, highlight=False)


class ScoreProgress(ConsoleProgress):
    """``gtalign score``'s rows; one warning when the judge first fails (`judge_failed`: also a row
    scored as verdict 0 with ``--unscored-as-zero``)."""

    def __init__(self, console: Console, *, enabled: bool, total: int | None, clock: Callable[[], float], every: float) -> None:
        super().__init__(console, command="gtalign score", unit="rows", task="scoring", enabled=enabled, clock=clock,
                         every=every, total=total)
        self.judge_failures = 0

    def advance(self, scored: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Count ``(row number, output row)`` pairs this run has just written."""
        failed = [(number, out) for number, out in scored if judge_failed(out)]
        if failed and not self.judge_failures:
            number, out = failed[0]
            left = "scored as verdict 0 (--unscored-as-zero), which is not a verdict" if out.get("status") == "scored" else "left unscored"
            self.warn(f"the judge failed on {len(failed)} of the last {len(scored)} rows; first, row {number}: "
                      f"{out.get('reason')}. These rows are {left}; run the same command again to re-judge them")
        self.judge_failures += len(failed)
        self.count(len(scored))

    def failures(self) -> str:
        return f"{self.judge_failures} judge failures" if self.judge_failures else ""


def _bar(console: Console, unit: str) -> Any:
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
        """Items per second over rich's recent window."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"-- {unit}/s" if speed is None else f"{speed:.2f} {unit}/s", style="progress.data.speed")

    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), Rate(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=True)
