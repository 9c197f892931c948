"""What a run left in its log, counted per data source: the summary printed at the end of
``gtalign eval`` and returned by `run_eval`. It describes the whole log (records kept from an
earlier run included), so the exit code says whether the run as a whole is complete."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from gtalign.eval._log import SampleRecord
from gtalign.eval._progress import judge_failed

__all__ = ["FAILURE_KINDS", "EvalSummary", "FailureKind", "SourceSummary", "failure_kind"]

FailureKind = Literal["generation_failed", "judge_failed", "unscored", "error", "unparsable"]
FAILURE_KINDS: tuple[FailureKind, ...] = ("generation_failed", "judge_failed", "unscored", "error", "unparsable")
"""``generation_failed``: the model call failed; ``judge_failed``: the judge could not be asked
(both retried by a rerun); ``unscored``: the judge answered without a usable verdict, or no judge
was given; ``error``: the row itself could not be run; ``unparsable``: the answer breaks the
four-block protocol (it is still scored, as the reward scores such answers: the research code
dropped them, which inflated its averages)."""
_WORDS: Mapping[FailureKind, str] = MappingProxyType({
    "generation_failed": "generation failed", "judge_failed": "judge failed", "unscored": "unscored",
    "error": "errors", "unparsable": "unparsable answers",
})


def failure_kind(record: SampleRecord) -> FailureKind | None:
    """Why ``record`` has no score from a usable verdict, or None when it has one (an unparsable
    answer that was scored counts as ``unparsable``)."""
    if record.status in ("generation_failed", "error"):
        return record.status
    if judge_failed(record):
        return "judge_failed"
    if record.status == "unscored":
        return "unscored"
    return None if record.parse.format_ok else "unparsable"


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """One data source: samples with a record, scored, failures by kind, mean welfare of the scored."""

    data_source: str
    samples: int
    scored: int
    failures: Mapping[FailureKind, int] = field(default_factory=lambda: MappingProxyType({}))
    welfare_sum: float = 0.0
    welfare_n: int = 0

    @property
    def mean_welfare(self) -> float | None:
        """Mean ``sqrt(U*L)`` over scored samples (None when none has one)."""
        return self.welfare_sum / self.welfare_n if self.welfare_n else None

    def line(self) -> str:
        mean = "n/a" if self.mean_welfare is None else f"{self.mean_welfare:.4f} (n={self.welfare_n})"
        parts = [f"{self.data_source}: {self.samples} samples, {self.scored} scored, mean welfare {mean}"]
        parts += [f"{self.failures[kind]} {_WORDS[kind]}" for kind in FAILURE_KINDS if self.failures.get(kind)]
        return "; ".join(parts)


def _welfare(record: SampleRecord) -> float | None:
    """``sqrt(U*L)``: the reward's ``utility``, or from U and L when a preset left it out (the
    robust preset's format failures score U = L = 0 with no utility; dropping them would inflate
    the mean, as the research code's dropped rows did)."""
    if record.welfare is not None:
        return record.welfare
    user, llm = record.user_reward, record.llm_reward
    if user is None or llm is None:
        return None
    return math.sqrt(max(user, 0.0) * max(llm, 0.0))


def summarize_sources(records: Iterable[SampleRecord]) -> tuple[SourceSummary, ...]:
    """Per-source counts of ``records``, sources in name order."""
    counts: dict[str, dict[str, float]] = {}
    failures: dict[str, dict[FailureKind, int]] = {}
    for record in records:
        source = counts.setdefault(record.data_source, {"samples": 0, "scored": 0, "sum": 0.0, "n": 0})
        source["samples"] += 1
        if record.scored:
            source["scored"] += 1
            welfare = _welfare(record)
            if welfare is not None:
                source["sum"] += welfare
                source["n"] += 1
        kind = failure_kind(record)
        if kind is not None:
            by_kind = failures.setdefault(record.data_source, {})
            by_kind[kind] = by_kind.get(kind, 0) + 1
    return tuple(
        SourceSummary(name, int(c["samples"]), int(c["scored"]), MappingProxyType(failures.get(name, {})), c["sum"], int(c["n"]))
        for name, c in sorted(counts.items())
    )


@dataclass(frozen=True, slots=True)
class EvalSummary:
    """What a run left in its log.

    samples: prompts x epochs planned; written: records with a status for them in the log now
        (kept + run this time, the interrupted remainder excluded); kept: final records an earlier
        run wrote, not run again; ran: samples run this time; interrupted: Ctrl-C stopped the run.
    notes: what the run said about the log before it started (resume, a torn line cut, a new folder).
    """

    run_dir: Path
    log: Path
    prompts: int
    epochs: int
    kept: int
    ran: int
    sources: tuple[SourceSummary, ...]
    interrupted: bool = False
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def samples(self) -> int:
        return self.prompts * self.epochs

    @property
    def written(self) -> int:
        return sum(source.samples for source in self.sources)

    @property
    def scored(self) -> int:
        return sum(source.scored for source in self.sources)

    def failures(self, kind: FailureKind) -> int:
        return sum(source.failures.get(kind, 0) for source in self.sources)

    @property
    def missing(self) -> int:
        """Samples with no record yet (an interrupted run)."""
        return self.samples - self.written

    @property
    def retryable(self) -> int:
        """Samples a rerun of the same command runs again."""
        return self.failures("generation_failed") + self.failures("judge_failed") + self.missing

    @property
    def ok(self) -> bool:
        """Every sample has a score from a usable verdict (unparsable answers are scored)."""
        return not self.interrupted and self.scored == self.samples and not self.failures("judge_failed")

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        """The summary for a person, one item a line."""
        epochs = f" x {self.epochs} epochs" if self.epochs > 1 else ""
        head = (f"gtalign eval: {self.samples} samples ({self.prompts} prompts{epochs}) in {self.log}: {self.scored} scored; "
                f"{self.ran} run now, {self.kept} kept from an earlier run, in {_seconds(self.seconds)}")
        out = [head]
        out += [f"  {source.line()}" for source in self.sources]
        if self.interrupted:
            out.append(f"  interrupted: {self.missing} samples not run yet; run the same command again to resume")
        elif self.retryable:
            out.append(f"  {self.retryable} samples failed in the model or the judge: run the same command again to retry "
                       "only those")
        if self.failures("error"):
            out.append("  error rows could not be run (see their `error` in the log); a rerun tries them again")
        out.append(f"next: gtalign report {self.run_dir}")
        return out


def _seconds(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}m{secs:04.1f}s" if minutes else f"{secs:.1f}s"
