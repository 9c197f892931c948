"""Fixtures for the engine adapter tests."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable, Iterator

import pytest

import gtalign.integrations.openrlhf as openrlhf_adapter
import gtalign.integrations.verl as verl_adapter
from gtalign.integrations import _common
from tests.integrations._helpers import ADAPTER_ENV


@pytest.fixture(autouse=True)
def clean_adapter_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``GTALIGN_*`` adapter variable from the outside, and no scorer cached by an earlier test."""
    for var in ADAPTER_ENV:
        monkeypatch.delenv(var, raising=False)
    _common.scorer_for.cache_clear()


class QuietTime:
    """The clock and timer of the per-row adapters' `BurstReport`s, moved by hand.

    ``schedule`` keeps the reports' callbacks; `pass_quiet_time` advances the clock past the quiet
    period and runs them, as the real timer would.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[Callable[[], None]] = []
        self.reports: list[_common.BurstReport] = []

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self.pending.append(callback)

    def pass_quiet_time(self) -> None:
        self.now += 10.0
        callbacks, self.pending = self.pending, []
        for callback in callbacks:
            callback()

    def report(self, logger: logging.Logger, where: str) -> _common.BurstReport:
        """A `BurstReport` on this clock."""
        report = _common.BurstReport(logger, where, clock=self.clock, schedule=self.schedule)
        self.reports.append(report)
        return report


@pytest.fixture(autouse=True)
def quiet_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[QuietTime]:
    """Fresh per-row reports for every test, on a clock that moves only when a test says so."""
    time = QuietTime()
    for module, name in ((verl_adapter, "ROW_REPORT"), (openrlhf_adapter, "CALL_REPORT")):
        old = getattr(module, name)
        monkeypatch.setattr(module, name, time.report(old.logger, old.where))
    yield time
    for report in time.reports:
        atexit.unregister(report.flush)  # what a test left pending is not for the end of the session
