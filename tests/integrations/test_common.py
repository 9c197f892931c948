"""The adapters' shared configuration: layers, validation, and what reaches the judge."""

from __future__ import annotations

import warnings

import pytest

from gtalign.integrations._common import AdapterConfig, build_judge, option_names


def test_judge_client_options_come_from_the_environment_then_the_arguments() -> None:
    env = {"GTALIGN_JUDGE_MAX_RETRIES": "3", "GTALIGN_JUDGE_TOTAL_TIMEOUT": "20", "GTALIGN_JUDGE_ATTEMPT_TIMEOUT": "5"}
    config = AdapterConfig.resolve(env, judge_total_timeout=8)
    assert (config.judge_max_retries, config.judge_total_timeout, config.judge_attempt_timeout) == (3, 8.0, 5.0)
    assert config.client_options() == {"max_retries": 3, "total_timeout": 8.0, "attempt_timeout": 5.0}
    assert AdapterConfig.resolve({}).client_options() == {}
    assert {"judge_max_retries", "judge_total_timeout", "judge_attempt_timeout"} <= set(option_names())


@pytest.mark.parametrize(("option", "value", "variable"), [
    ("judge_max_retries", "-1", "GTALIGN_JUDGE_MAX_RETRIES"),
    ("judge_max_retries", "two", "GTALIGN_JUDGE_MAX_RETRIES"),
    ("judge_max_retries", 1.5, "GTALIGN_JUDGE_MAX_RETRIES"),
    ("judge_max_retries", True, "GTALIGN_JUDGE_MAX_RETRIES"),
    ("judge_total_timeout", "0", "GTALIGN_JUDGE_TOTAL_TIMEOUT"),
    ("judge_total_timeout", "inf", "GTALIGN_JUDGE_TOTAL_TIMEOUT"),
    ("judge_attempt_timeout", "soon", "GTALIGN_JUDGE_ATTEMPT_TIMEOUT"),
])
def test_bad_judge_client_options_name_their_variable(option: str, value: object, variable: str) -> None:
    with pytest.raises(ValueError, match=option):
        AdapterConfig.resolve({}, **{option: value})
    if isinstance(value, str):
        with pytest.raises(ValueError, match=variable):
            AdapterConfig.resolve({variable: value})


def test_whole_float_retries_are_accepted() -> None:
    assert AdapterConfig.resolve({}, judge_max_retries=2.0).judge_max_retries == 2


def test_client_options_for_a_judge_that_does_not_use_them_warn() -> None:
    with pytest.warns(UserWarning, match="judge_max_retries"):
        build_judge("rule", max_retries=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_judge("rule")
        assert build_judge("none", max_retries=1) is None


def test_unknown_option_lists_the_new_ones() -> None:
    with pytest.raises(TypeError, match="judge_total_timeout"):
        AdapterConfig.resolve({}, judge_timeout=3)


def test_a_burst_that_never_pauses_is_reported_after_max_delay(caplog: pytest.LogCaptureFixture) -> None:
    """verl's async reward loop keeps calls overlapping: the quiet-time timer never fires, yet the
    warning comes once the first problem is ``max_delay`` old, and then again for the next ones."""
    import atexit
    import logging

    from gtalign.integrations._common import BurstReport
    from gtalign.reward import RewardResult

    now = [0.0]
    scheduled: list[object] = []
    logger = logging.getLogger("gtalign.test.burst")
    report = BurstReport(logger, "test", quiet=1.0, max_delay=30.0, clock=lambda: now[0],
                         schedule=lambda delay, callback: scheduled.append(callback))
    unscored = RewardResult("paper", "math-hard", "unscored", None, judge_status="failed", reason="judge failed: down")
    caplog.set_level(logging.WARNING, logger="gtalign.test.burst")
    report.enter()  # one call always in flight: the engine never pauses
    for second in range(0, 66, 5):
        now[0] = float(second)
        report.enter()
        report.leave([unscored], "scored 0")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # at 30 s (problems since 0 s) and at 65 s (since 35 s), nothing between
    assert all(m.startswith("gtalign (test): 7 of 7 rows unscored, no usable judge verdict on 7") for m in messages)
    assert "first reason: judge failed: down" in messages[0]
    assert scheduled == []  # no call ever left the engine idle, so no quiet-time timer was set
    atexit.unregister(report.flush)
