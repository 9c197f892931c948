"""RuleJudge's math path made cheaper without changing a verdict: workers started in the
background (`warm_up`), a lean worker start-up, the workers' gold-parse cache, the judge's cache
of finished checks, and identical rows checked once per batch."""

from __future__ import annotations

import asyncio
import logging
import pickle
import random
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from math_verify import parse, verify

from gtalign.judges import _mathverify_worker as wire
from gtalign.judges._rules import MathCheck, RuleJudge, _Reply, _WorkerPool, check_math, worker_command
from gtalign.reward._types import JudgeRequest
from tests.judges._checks import hang_or_compare

logging.getLogger("math_verify").setLevel(logging.ERROR)


def math(response: str, reference: str) -> JudgeRequest:
    return JudgeRequest("math", response, reference)


@pytest.fixture
def submits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every row a `RuleJudge` sends to its workers, in order."""
    sent: list[tuple[str, str]] = []
    real = _WorkerPool.submit

    def counting(self: _WorkerPool, response: str, reference: str, timeout: float) -> Future[_Reply]:
        sent.append((response, reference))
        return real(self, response, reference, timeout)

    monkeypatch.setattr(_WorkerPool, "submit", counting)
    return sent


@pytest.fixture(scope="module")
def judge() -> Iterator[RuleJudge]:
    with RuleJudge(math_timeout=60) as rule_judge:
        yield rule_judge


# --- the same verdicts as math-verify itself -----------------------------------------------------


def reference_check(response: str, reference: str) -> tuple[bool | None, str]:
    """What the rule judge computed before any of this: math-verify called directly, no cache."""
    text = reference.strip()
    wrapped = [f"\\boxed{{{text}}}", f"${text}$", text]
    gold: list[Any] = []
    for candidate in [text, *wrapped] if "\\boxed" in text else wrapped:
        gold = parse(candidate, parsing_timeout=None)
        if gold:
            break
    if not gold:
        return None, f"math-verify could not parse the reference {reference[:80]!r}"
    answer = parse(response, parsing_timeout=None)
    if not answer:
        return False, "no final answer found in the response"
    return bool(verify(gold, answer, timeout_seconds=None)), f"gold={str(gold[-1])[:80]} answer={str(answer[-1])[:80]}"


# Golds and answers chosen where a shortcut would go wrong: thousands separators, leading zeros,
# signed zero, exponents, percentages, decimals against fractions, text, sets, intervals, units.
TRICKY = ["42", "1000", "1,000", "1{,}000", "01", "0", "-0", "+5", "-5", "1e3", "10^3", "50\\%", "50", "0.5",
          "\\frac{1}{2}", "1/2", ".5", "0.50", "3.14", "\\pi", "5\\sqrt{2}", "\\sqrt{50}", "2x+1", "1+2x",
          "x=3", "3", "(1,2)", "[1,2)", "\\{1,2\\}", "\\text{Paris}", "Paris", "\\$1.65", "1.65", "12 \\text{ cm}",
          "\\infty", "-\\infty", "1.000", "100\\%", "1", "007", "7", "2^{10}", "1024", "\\dfrac{3}{4}", "0.75"]
TEMPLATES = ["The answer is \\boxed{{{}}}.", "So $\\boxed{{{}}}$", "Final answer: {}", "We get ${}$ in the end.",
             "{}", "I think it is {} but \\boxed{{{}}}"]


def generated_rows(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        gold, said = rng.choice(TRICKY), rng.choice(TRICKY)
        template = rng.choice(TEMPLATES)
        rows.append((template.format(said, said), gold))
    return rows


async def test_verdicts_match_math_verify_on_many_tricky_rows(judge: RuleJudge) -> None:
    rows = generated_rows(300, seed=8)
    rows += [(f"\\boxed{{{g}}}", g) for g in TRICKY] + [(f"\\boxed{{{a}}}", b) for a in TRICKY[:12] for b in TRICKY[:12]]
    rows += [("\\boxed{1}", "\\text{}"), ("no answer here", "1")]  # a reference that does not parse; no answer
    rows += rows[:40]  # repeats inside the batch: checked once, each row still gets its verdict
    expected = [reference_check(response, reference) for response, reference in rows]
    first = await judge.judge([math(r, g) for r, g in rows])
    again = await judge.judge([math(r, g) for r, g in reversed(rows)])  # all kept now: no worker involved
    for verdicts, order in ((first, expected), (list(reversed(again)), expected)):
        got = [(v.status, v.value, v.raw if v.ok else v.reason) for v in verdicts]
        want = [("invalid", None, detail) if correct is None else ("ok", 1.0 if correct else 0.0, detail)
                for correct, detail in order]
        assert got == want
    assert {e[0] for e in expected} == {True, False, None}  # the cases cover all three outcomes


def test_check_math_is_the_workers_check() -> None:
    for response, reference in generated_rows(60, seed=3):
        correct, detail = reference_check(response, reference)
        assert check_math(response, reference) == MathCheck(correct, detail)


def test_the_gold_cache_parses_each_reference_once_and_hands_out_fresh_lists() -> None:
    wire._parse_gold_text.cache_clear()
    first = wire.parse_gold(" \\frac{16}{3} ")
    second = wire.parse_gold("\\frac{16}{3}")
    assert first == second and first is not second
    first.clear()  # a caller that mutates its list does not touch the cache
    assert wire.parse_gold("\\frac{16}{3}") == second
    info = wire._parse_gold_text.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_the_warm_up_rows_all_parse_and_leave_the_gold_cache_empty() -> None:
    for response, reference in wire.WARM_UP_ROWS:
        correct, detail = wire.check(response, reference)
        assert correct is not None, detail
    wire._warm_up()
    assert wire._parse_gold_text.cache_info().currsize == 0


# --- the judge's cache of finished checks --------------------------------------------------------


async def test_a_row_already_checked_is_not_sent_again(submits: list[tuple[str, str]]) -> None:
    with RuleJudge() as fresh:
        rows = [math("\\boxed{7}", "7"), math("\\boxed{8}", "7"), math("\\boxed{7}", "7"), math("\\boxed{7}", "7")]
        first = await fresh.judge(rows)
        assert submits == [("\\boxed{7}", "7"), ("\\boxed{8}", "7")]  # identical rows of a batch: once
        second = await fresh.judge(rows[::-1])
        assert len(submits) == 2  # every row kept from the first batch
    assert [v.value for v in first] == [1.0, 0.0, 1.0, 1.0] and second == first[::-1]


async def test_a_row_that_did_not_finish_is_checked_again(submits: list[tuple[str, str]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = _WorkerPool._check
    outcomes = iter(["died", "timeout", "error"])

    def flaky(self: _WorkerPool, response: str, reference: str, timeout: float) -> _Reply:
        kind = next(outcomes, None)
        return _Reply(kind, "boom") if kind else real(self, response, reference, timeout)

    monkeypatch.setattr(_WorkerPool, "_check", flaky)
    with RuleJudge() as fresh:
        statuses = [(await fresh.judge([math("\\boxed{7}", "7")]))[0] for _ in range(4)]
    assert [v.status for v in statuses] == ["failed", "failed", "failed", "ok"] and statuses[-1].value == 1.0
    assert len(submits) == 4


async def test_a_custom_check_runs_on_every_row(submits: list[tuple[str, str]]) -> None:
    with RuleJudge(math_check=hang_or_compare) as custom:
        for _ in range(2):
            verdicts = await custom.judge([math("\\boxed{3}", "3"), math("\\boxed{3}", "3")])
            assert [v.value for v in verdicts] == [1.0, 1.0]
    assert len(submits) == 4


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gtalign.judges._rules.VERDICT_CACHE_SIZE", 3)
    fresh = RuleJudge()
    for n in range(5):
        fresh._keep(math(f"\\boxed{{{n}}}", "1"), _Reply("ok", (n == 1, f"row {n}")))
    fresh._keep(math("x" * 20_001, "1"), _Reply("ok", (False, "long")))  # too long to keep
    assert list(fresh._checked) == [(f"\\boxed{{{n}}}", "1") for n in (2, 3, 4)]
    assert fresh._kept(math("\\boxed{3}", "1")) == MathCheck(False, "row 3")
    assert fresh._kept(math("\\boxed{0}", "1")) is None


def test_the_cache_is_not_pickled(judge: RuleJudge) -> None:
    asyncio.run(judge.judge([math("\\boxed{2}", "2")]))
    copy = pickle.loads(pickle.dumps(judge))
    assert len(judge._checked) >= 1 and len(copy._checked) == 0 and copy._builtin


# --- workers started in the background -----------------------------------------------------------


async def test_warm_up_starts_every_worker_and_rows_then_start_none() -> None:
    with RuleJudge(workers=2) as fresh:
        started = fresh.warm_up()
        assert await asyncio.wrap_future(started) == 2
        pool = fresh._pool
        assert pool is not None and pool.started == 2
        assert fresh.warm_up().result() == 2  # nothing missing: nothing started
        verdicts = await fresh.judge([math(f"\\boxed{{{n}}}", str(n)) for n in range(6)])
        assert [v.value for v in verdicts] == [1.0] * 6
        assert pool.started == 2 and fresh._pool is pool


async def test_the_first_math_rows_start_the_other_workers_too() -> None:
    with RuleJudge(workers=2) as fresh:
        await fresh.judge([math("\\boxed{1}", "1")])  # one row: one worker needed now
        pool = fresh._pool
        assert pool is not None
        assert await asyncio.wrap_future(fresh.warm_up()) == 2 and pool.started == 2


async def test_warm_up_never_starts_more_workers_than_asked() -> None:
    with RuleJudge(workers=2) as fresh:
        futures = [fresh.warm_up() for _ in range(3)]
        verdicts = await fresh.judge([math(f"\\boxed{{{n}}}", "3") for n in range(4)])
        for future in futures:
            await asyncio.wrap_future(future)
        assert [v.value for v in verdicts] == [0.0, 0.0, 0.0, 1.0]
        assert fresh._pool is not None and fresh._pool.started == 2


def test_a_warm_up_that_cannot_start_fails_no_row_by_itself() -> None:
    import types

    module = types.ModuleType("gtalign_test_parent_only_warm")

    def check(response: str, reference: str) -> MathCheck:
        return MathCheck(True, "never runs")

    check.__module__ = module.__name__
    check.__qualname__ = check.__name__ = "check"
    module.check = check  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        with RuleJudge(math_check=check) as broken:
            with pytest.raises(RuntimeError, match="gtalign_test_parent_only_warm"):
                broken.warm_up().result()
            assert broken._pool is not None and broken._pool.start_error is None  # rows will try again
    finally:
        del sys.modules[module.__name__]


def test_close_after_warm_up_stops_the_workers() -> None:
    fresh = RuleJudge(workers=1)
    assert fresh.warm_up().result() == 1
    pool = fresh._pool
    assert pool is not None
    (worker,) = pool._live
    fresh.close()
    assert worker.process.poll() is not None


# --- the lean worker -----------------------------------------------------------------------------


def test_the_worker_starts_without_importing_the_judges_package() -> None:
    from tests.judges._lean_checks import gtalign_modules

    command = worker_command()
    assert command[1] == "-P" and command[2].endswith("_mathverify_worker.py")
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process:  # closes the pipes
        try:
            assert process.stdin is not None and process.stdout is not None
            wire.write_frame(process.stdin, (list(sys.path), pickle.dumps(gtalign_modules)))
            assert pickle.loads(wire.read_frame(process.stdout) or b"")[0] == "ready"
            wire.write_frame(process.stdin, ("\\boxed{1}", "1"))
            kind, (ok, modules) = pickle.loads(wire.read_frame(process.stdout) or b"")
            assert kind == "ok" and ok
            assert modules == ""  # not even the gtalign package: only math-verify and the standard library
        finally:
            process.kill()
