"""Progress of an evaluation run on a console: a rich bar with rate and ETA on a terminal, a plain
line every ``every`` seconds elsewhere (a log file, CI), and one warning the first time a model
call or a judge fails, since a server that is down can cost a long run before its summary says so.

The console mechanics are ``gtalign score``'s too (`gtalign.cli._progress.ConsoleProgress`); this
adds what an eval counts. The clock is injected, so tests see the lines without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from rich.console import Console

from gtalign.cli._progress import ConsoleProgress
from gtalign.eval._log import SampleRecord

__all__ = ["EvalProgress", "judge_failed"]


def judge_failed(record: SampleRecord) -> bool:
    """The judge failed on this row (asking again may give a verdict)."""
    return record.status in ("scored", "unscored") and record.reward.get("judge_status") == "failed"


class EvalProgress(ConsoleProgress):
    """Counts the samples a run writes. ``console`` is where it prints (stderr for the CLI);
    ``enabled=False`` prints nothing (notes and warnings included)."""

    def __init__(self, console: Console, *, enabled: bool = True, clock: Callable[[], float] = time.monotonic,
                 every: float = 30.0) -> None:
        super().__init__(console, command="gtalign eval", unit="samples", task="eval", enabled=enabled, clock=clock,
                         every=every, total=0)
        self.generation_failures = 0
        self.judge_failures = 0

    def advance(self, records: Sequence[SampleRecord]) -> None:
        """Count records just written; warn once at the first generation failure and judge failure."""
        for record in records:
            if record.status == "generation_failed":
                if not self.generation_failures:
                    self.warn(f"the model failed on {record.id} (epoch {record.epoch}): {record.error}. "
                              "Failed rows are counted and retried by a rerun of the same command")
                self.generation_failures += 1
            elif judge_failed(record):
                if not self.judge_failures:
                    self.warn(f"the judge failed on {record.id} (epoch {record.epoch}): {record.reward.get('reason')}. "
                              "These rows are unscored; a rerun of the same command judges them again")
                self.judge_failures += 1
        self.count(len(records))

    def failures(self) -> str:
        parts = []
        if self.generation_failures:
            parts.append(f"{self.generation_failures} generation failures")
        if self.judge_failures:
            parts.append(f"{self.judge_failures} judge failures")
        return ", ".join(parts)
