"""Progress of ``gtalign score`` on stderr, on a terminal or not.

A rich bar on a terminal; elsewhere (a log file, CI, ``2>log``) a plain line every ``every``
seconds, also while a batch is still with the judge, so a slow run is never silent. And one warning
as soon as the judge fails on a row (`judge_failed`: also a row scored as verdict 0 with
``--unscored-as-zero``), since a judge that is down can cost minutes before the summary says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console

from gtalign.cli._output import judge_failed

__all__ = ["ScoreProgress"]


class ScoreProgress:
    """Counts the rows a run scores; ``clock`` (seconds) is injected so tests need no waiting."""

    def __init__(self, console: Console, *, enabled: bool, total: int | None, clock: Callable[[], float], every: float) -> None:
        self.console = console
        self.enabled = enabled
        self.total = total
        self.clock = clock
        self.every = every
        self.done = 0
        self.failures = 0
        self._start = self._last = clock()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ScoreProgress:
        if self.enabled and self.console.is_terminal:
            self._bar = _rich_progress(self.console)
            self._task = self._bar.add_task("scoring", total=self.total)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, scored: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
        """Count ``(row number, output row)`` pairs this run has just written."""
        failed = [(number, out) for number, out in scored if judge_failed(out)]
        self.done += len(scored)
        if failed and not self.failures and self.enabled:
            number, out = failed[0]
            left = "scored as verdict 0 (--unscored-as-zero), which is not a verdict" if out.get("status") == "scored" else "left unscored"
            self.console.print(
                f"gtalign score: warning: the judge failed on {len(failed)} of the last {len(scored)} rows; "
                f"first, row {number}: {out.get('reason')}. These rows are {left}; "
                "run the same command again to re-judge them",
                markup=False, soft_wrap=True,
            )
        self.failures += len(failed)
        if self._bar is not None:
            description = f"scoring ({self.failures} judge failures)" if self.failures else "scoring"
            self._bar.update(self._task, advance=len(scored), description=description)
        self.tick()

    @property
    def poll(self) -> float:
        """Seconds between checks for a due line while a batch is still out (a quarter period,
        so a line is at most that late)."""
        return self.every / 4

    def tick(self) -> None:
        """Print a plain progress line if one is due (the rich bar keeps its own time)."""
        if self._bar is not None or not self.enabled:
            return
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            self.console.print(self.line(now), markup=False, soft_wrap=True)

    def line(self, now: float) -> str:
        """A plain progress line: rows done (of how many), rate, judge failures so far."""
        of = f"/{self.total} rows ({100 * self.done / self.total:.0f}%)" if self.total else " rows"
        elapsed = now - self._start
        rate = f", {self.done / elapsed:.1f} rows/s" if elapsed > 0 else ""
        failures = f", {self.failures} judge failures" if self.failures else ""
        return f"gtalign score: {self.done}{of}{rate}{failures}"


def _rich_progress(console: Console) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
