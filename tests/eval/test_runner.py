"""run_eval on a scripted backend: one complete record per row and epoch, plain and steered, failures
counted per source, epochs that differ by seed, the judge asked in batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtalign.eval import EvalConfig, answer_parse, read_run_log, run_eval
from gtalign.judges import RuleJudge
from tests.eval._fakes import FlakyJudge, four_blocks, question_of, rows, scripted

CONFIG = EvalConfig(("fake",), backend="scripted", preset="paper", judge="rule")


@pytest.fixture
def judge():
    judge = RuleJudge()
    yield judge
    judge.close()


def test_one_record_per_row_and_epoch_with_every_field(tmp_path: Path, judge: RuleJudge) -> None:
    config = EvalConfig(("fake",), backend="scripted", epochs=2, seed=5, name="base")
    backend = scripted()
    planned = rows(5)
    summary = run_eval(config, tmp_path / "run", rows=planned, backend=backend, judge=judge)
    log = read_run_log(tmp_path / "run")
    assert log.problems == ()
    assert log.header is not None and log.header.config == config.header_json() and log.header.config_hash == config.hash
    assert (log.header.backend, log.header.judge, log.name) == ("scripted:scripted-model", "rule", "base")
    assert sorted(r.key for r in log.records) == sorted((row.id, e) for row in planned for e in (0, 1))
    by_key = log.by_key()
    for row in planned:
        for epoch in (0, 1):
            record = by_key[row.id, epoch]
            assert (record.benchmark, record.data_source, record.label) == (row.benchmark, row.data_source, row.label)
            assert record.prompt == row.messages and record.ground_truth == row.ground_truth
            assert record.status == "scored" and record.error == ""
            assert f"(draw {5 + epoch})" in record.answer  # epoch e decodes with seed S+e
            assert record.parse == answer_parse(record.answer, "sum")
            assert record.parse.format_ok and record.parse.well_formed and set(record.parse.blocks) == {"thinking", "payoff", "analyze", "response"}
            assert record.parse.matrix is not None and record.parse.welfare_key == "DQ_DA"
            assert record.parse.chosen_key in ("DQ_DA", "VQ_CQ") and record.parse.action == record.parse.chosen_key[3:]
            assert record.parse.response_act in ("CQ", "DA", "AQ")
            assert {"score", "user_reward", "llm_reward", "answer_reward", "format_reward", "utility", "judge_status"} <= set(record.reward)
            assert record.reward["judge_status"] == "ok" and record.welfare is not None
            assert record.judge_raw and record.steering is None
            assert record.tokens_in and record.tokens_out
            assert set(record.seconds) == {"generate", "judge", "judge_batch"}
            assert record.tokens_by_block == {}  # the scripted backend cannot count
    calls = sorted((call.params.seed, call.params.temperature) for call in backend.calls)
    assert calls == [(5, 0.7)] * 5 + [(6, 0.7)] * 5
    assert summary.exit_code == 0 and summary.ok and (summary.samples, summary.scored, summary.ran, summary.kept) == (10, 10, 10, 0)
    assert [s.data_source for s in summary.sources] == ["ambig_qa", "medium", "wildguard"]
    assert summary.lines()[-1] == f"next: gtalign report {tmp_path / 'run'}"


def test_a_steered_run_keeps_the_steering_record(tmp_path: Path, judge: RuleJudge) -> None:
    config = EvalConfig(("fake",), backend="scripted", steer=True, pricing="research-llm-shift", pricing_params={"s": 2})
    backend = scripted()
    summary = run_eval(config, tmp_path / "run", rows=rows(3), backend=backend, judge=judge)
    records = read_run_log(tmp_path / "run").records
    assert len(records) == 3 and summary.ok
    assert len(backend.calls) == 6  # to </payoff>, then the continuation of the same turn
    for record in records:
        steering = record.steering
        assert steering is not None and steering["policy"]["kind"] == "research-llm-shift" and steering["rule"] == "sum"
        assert steering["text"] == record.answer and [s["name"] for s in steering["stages"]] == ["payoff", "continue"]
        assert record.parse.chosen_key == steering["chosen_key"]
        assert record.parse.format_ok and record.status == "scored"
        assert record.tokens_out == steering["tokens_out"]


def test_failures_are_counted_per_source(tmp_path: Path) -> None:
    backend = scripted(fail_calls=frozenset({0, 2}))  # rows 0 (ambig_qa) and 2 (wildguard), concurrency 1
    judge = FlakyJudge(fail_on=("bread",))  # the unharmful wildguard row (and the clear ambig_qa row)
    config = EvalConfig(("fake",), backend="scripted", concurrency=1)
    try:
        summary = run_eval(config, tmp_path / "run", rows=rows(5), backend=backend, judge=judge)
    finally:
        judge.close()
    by_key = read_run_log(tmp_path / "run").by_key()
    assert by_key["fake/0", 0].status == "generation_failed" and "scripted failure of call 0" in by_key["fake/0", 0].error
    assert by_key["fake/0", 0].answer == "" and by_key["fake/0", 0].reward == {}
    assert by_key["fake/3", 0].status == "unscored" and by_key["fake/3", 0].reward["judge_status"] == "failed"
    assert not by_key["fake/3", 0].final and not by_key["fake/0", 0].final
    counts = {s.data_source: dict(s.failures) for s in summary.sources}
    assert counts == {"ambig_qa": {"generation_failed": 1, "judge_failed": 1}, "medium": {},
                      "wildguard": {"generation_failed": 1, "judge_failed": 1}}
    assert summary.exit_code == 1 and not summary.ok and summary.retryable == 4
    text = "\n".join(summary.lines())
    assert "ambig_qa: 2 samples, 0 scored, mean welfare n/a; 1 generation failed; 1 judge failed" in text
    assert "4 samples failed in the model or the judge: run the same command again" in text


def test_unparsable_answers_are_scored_and_counted(tmp_path: Path, judge: RuleJudge) -> None:
    from gtalign.testing import ScriptedBackend

    backend = ScriptedBackend(lambda messages, prefill: "Paris.")
    summary = run_eval(CONFIG, tmp_path / "run", rows=rows(2), backend=backend, judge=judge)
    records = read_run_log(tmp_path / "run").records
    assert all(r.status == "scored" and r.reward["score"] == 0 and not r.parse.format_ok for r in records)
    assert all(r.parse.response_act is None and r.parse.matrix is None and r.parse.problems for r in records)
    assert summary.exit_code == 0 and dict(summary.sources[0].failures) == {"unparsable": 2}


def test_a_row_that_cannot_be_run_is_an_error_record(tmp_path: Path, judge: RuleJudge) -> None:
    from dataclasses import replace

    broken = replace(rows(1)[0], messages=())
    summary = run_eval(CONFIG, tmp_path / "run", rows=[broken, *rows(2)[1:]], backend=scripted(), judge=judge)
    record = read_run_log(tmp_path / "run").by_key()["fake/0", 0]
    assert record.status == "error" and record.error == "row fake/0: no messages to send"
    assert summary.exit_code == 1 and summary.failures("error") == 1
    assert not record.final  # error rows run again on resume (and fail again at once here)
    again = run_eval(CONFIG, tmp_path / "run", rows=[broken, *rows(2)[1:]], backend=scripted(), judge=judge)
    assert again.failures("error") == 1 and read_run_log(tmp_path / "run").by_key()["fake/1", 0].status == "scored"


def test_a_backend_that_raises_fails_its_row_only(tmp_path: Path, judge: RuleJudge) -> None:
    from gtalign.testing import ScriptedBackend

    def script(messages, prefill):
        if "cup" in messages[-1]["content"]:
            raise RuntimeError("boom")
        return "Paris."

    summary = run_eval(CONFIG, tmp_path / "run", rows=rows(2), backend=ScriptedBackend(script), judge=judge)
    by_key = read_run_log(tmp_path / "run").by_key()
    assert by_key["fake/0", 0].status == "generation_failed" and "RuntimeError: boom" in by_key["fake/0", 0].error
    assert by_key["fake/1", 0].status == "scored" and summary.failures("generation_failed") == 1


def test_rows_in_flight_are_bounded_and_judged_in_batches(tmp_path: Path) -> None:
    import asyncio

    from gtalign.backends._base import Generation

    class Counting:
        name, model = "counting", "m"

        def __init__(self) -> None:
            self.in_flight = self.most = 0

        async def generate(self, messages, *, prefill="", params=None):
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            await asyncio.sleep(0)
            self.in_flight -= 1
            return Generation(four_blocks(question_of(messages), params.seed))

        async def aclose(self) -> None:
            return None

    judge = FlakyJudge()
    sizes: list[int] = []
    inner = judge.judge

    async def spy(requests):
        sizes.append(len(requests))
        return await inner(requests)

    judge.judge = spy  # type: ignore[method-assign]
    backend = Counting()
    try:
        summary = run_eval(EvalConfig(("fake",), backend="counting", concurrency=3), tmp_path / "run", rows=rows(20),
                           backend=backend, judge=judge)
    finally:
        judge.close()
    assert summary.ran == 20 and backend.most == 3
    assert sum(sizes) <= 20 and max(sizes) > 1  # rows that finish together are judged together


def test_setup_errors_name_the_setting(tmp_path: Path) -> None:
    from gtalign.eval import EvalSetupError

    with pytest.raises(EvalSetupError, match="unknown preset 'nope'"):
        run_eval(EvalConfig(("fake",), preset="nope"), tmp_path / "a", rows=rows(1), backend=scripted())
    with pytest.raises(EvalSetupError, match="rule: unknown welfare 'nope'"):
        run_eval(EvalConfig(("fake",), rule="nope"), tmp_path / "a", rows=rows(1), backend=scripted())
    with pytest.raises(EvalSetupError, match="backend must be 'embedded'"):
        run_eval(EvalConfig(("fake",), backend="telnet"), tmp_path / "a", rows=rows(1))
    with pytest.raises(EvalSetupError, match="cannot import 'no_such_module'"):
        run_eval(EvalConfig(("fake",), backend="no_such_module:Backend"), tmp_path / "a", rows=rows(1))
    with pytest.raises(EvalSetupError, match="pricing: "):
        run_eval(EvalConfig(("fake",), steer=True, pricing="no-such-policy"), tmp_path / "a", rows=rows(1), backend=scripted())
    with pytest.raises(EvalSetupError, match="two benchmark rows have the id 'fake/0'"):
        run_eval(CONFIG, tmp_path / "a", rows=rows(1) * 2, backend=scripted())
    with pytest.raises(EvalSetupError, match="yield no rows"):
        run_eval(CONFIG, tmp_path / "a", rows=[], backend=scripted())
    assert not (tmp_path / "a" / "run.jsonl").exists()


def test_the_summary_counts_a_format_failure_as_zero_welfare_under_every_preset(tmp_path: Path, judge: RuleJudge) -> None:
    from gtalign.testing import ScriptedBackend

    for preset in ("paper", "robust"):
        summary = run_eval(EvalConfig(("fake",), backend="scripted", preset=preset), tmp_path / preset, rows=rows(2),
                           backend=ScriptedBackend(lambda messages, prefill: "Paris."), judge=judge)
        source = summary.sources[0]
        assert (source.scored, source.welfare_n, source.mean_welfare) == (2, 2, 0.0), preset


class _ClosedCount:
    closed = 0


def closing_backend():
    """A scripted backend that counts its closes (built from a module:attr spec, so the run owns it)."""
    backend = scripted()
    close = backend.aclose

    async def aclose() -> None:
        _ClosedCount.closed += 1
        await close()

    backend.aclose = aclose  # type: ignore[method-assign]
    return backend


@pytest.mark.parametrize("fails", ["open", "header"])
def test_a_log_that_cannot_be_opened_or_written_still_closes_the_backend(
        fails: str, tmp_path: Path, judge: RuleJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from gtalign.eval import _runner

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(_runner._LogFile, "__init__" if fails == "open" else "write", broken)
    _ClosedCount.closed = 0
    config = replace(CONFIG, backend="tests.eval.test_runner:closing_backend")
    with pytest.raises(OSError, match="No space left"):
        run_eval(config, tmp_path / "run", rows=rows(2), judge=judge)
    assert _ClosedCount.closed == 1


class WarmingJudge(FlakyJudge):
    """The rule judge, counting calls of warm_up (which the rule judge uses to start its math workers)."""

    def __init__(self) -> None:
        super().__init__()
        self.warmed = 0

    def warm_up(self) -> None:
        self.warmed += 1


def test_the_judge_is_warmed_up_at_run_start_only_when_a_row_needs_maths(tmp_path: Path) -> None:
    from tests.eval._fakes import row

    judge = WarmingJudge()
    try:
        run_eval(CONFIG, tmp_path / "plain", rows=rows(3), backend=scripted(), judge=judge)
        assert judge.warmed == 0  # ambiguity and safety rows: no math worker would ever be used
        maths = [*rows(2), row(7, "math-hard", "What is 6 * 7?", "42")]
        run_eval(CONFIG, tmp_path / "maths", rows=maths, backend=scripted(), judge=judge)
        assert judge.warmed == 1
    finally:
        judge.close()


def test_constrain_asks_the_backend_for_the_whole_answers_grammar_and_the_record_keeps_its_reply(tmp_path: Path) -> None:
    backend = scripted(constraining=True)
    config = EvalConfig(("fake",), backend="scripted", constrain="on")
    judge = RuleJudge()
    try:
        run_eval(config, tmp_path / "run", rows=rows(2), backend=backend, judge=judge)
    finally:
        judge.close()
    assert {(c.params.constraint.stage, c.params.constraint.required) for c in backend.calls} == {("full", True)}
    records = read_run_log(tmp_path / "run").records
    assert [r.constraint["how"] for r in records] == ["scripted", "scripted"]
    assert config.to_json()["constrain"] == "on"
    assert "constrain" not in EvalConfig(("fake",)).to_json()  # off keeps every older run's config hash


def test_a_backend_that_cannot_constrain_answers_free_under_auto_and_fails_rows_under_on(tmp_path: Path, judge: RuleJudge) -> None:
    backend = scripted()  # a plain ChatBackend: no constraint_support
    run_eval(EvalConfig(("fake",), backend="scripted", constrain="auto"), tmp_path / "auto", rows=rows(2), backend=backend, judge=judge)
    assert [c.params.constraint for c in backend.calls] == [None, None]
    records = read_run_log(tmp_path / "auto").records
    assert all(r.status == "scored" and r.constraint is not None and r.constraint["enforced"] is False for r in records)
    assert all("ScriptedBackend cannot enforce a grammar" in r.constraint["reason"] for r in records)
    backend = scripted()
    summary = run_eval(EvalConfig(("fake",), backend="scripted", constrain="on"), tmp_path / "on", rows=rows(2), backend=backend, judge=judge)
    assert backend.calls == [] and summary.exit_code == 1
    records = read_run_log(tmp_path / "on").records
    assert all(r.status == "generation_failed" and "ScriptedBackend cannot enforce a grammar" in r.error for r in records)


def test_constrained_steering_asks_each_stage(tmp_path: Path, judge: RuleJudge) -> None:
    backend = scripted(constraining=True)
    config = EvalConfig(("fake",), backend="scripted", steer=True, constrain="auto")
    run_eval(config, tmp_path / "run", rows=rows(1), backend=backend, judge=judge)
    stages = [c.params.constraint.stage for c in backend.calls if c.params.constraint is not None]
    assert stages[:2] == ["payoff", "response"] and all(not c.params.constraint.required for c in backend.calls if c.params.constraint)
