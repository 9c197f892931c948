"""``answers_from`` / ``--answers-from RUN_DIR``: another run's answers scored with this run's preset and
judge; the model is never called; missing and failed source rows; refusals; resume; the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import gtalign.benchmarks
import gtalign.eval._runner
from gtalign.eval import EvalConfig, EvalSetupError, ResumeRefused, SampleRecord, read_run_log, run_eval
from gtalign.judges import RuleJudge
from gtalign.reward import RewardScorer, get_preset
from tests.eval import _fakes
from tests.eval._fakes import rows, scripted

SOURCE = EvalConfig(("fake",), backend="scripted", preset="paper", epochs=2, seed=5, concurrency=1)


class NoBackend:
    """A backend the test fails on if it is called: every call is recorded and raises."""

    name, model = "never", "never-model"

    def __init__(self) -> None:
        self.calls: list[object] = []

    async def generate(self, messages, *, prefill="", params=None):
        self.calls.append(messages)
        raise AssertionError("the backend was called by a run with answers_from")

    async def aclose(self) -> None:
        return None


@pytest.fixture
def judge():
    judge = RuleJudge()
    yield judge
    judge.close()


def source_run(folder: Path, judge: RuleJudge, config: EvalConfig = SOURCE, backend=None, n: int = 5) -> dict:
    summary = run_eval(config, folder, rows=rows(n), backend=backend or scripted(), judge=judge)
    assert summary.ran == n * config.epochs
    return read_run_log(folder).by_key()


def rescore(source: Path, out: Path, judge: RuleJudge, n: int = 5, **settings):
    backend = NoBackend()
    config = EvalConfig(answers_from=str(source), preset=settings.pop("preset", "robust"), **settings)
    summary = run_eval(config, out, rows=rows(n), backend=backend, judge=judge)
    assert backend.calls == []
    return summary, read_run_log(out)


def test_the_same_answers_are_scored_with_this_runs_preset_and_no_model_call(tmp_path: Path, judge: RuleJudge) -> None:
    theirs = source_run(tmp_path / "paper", judge)
    summary, log = rescore(tmp_path / "paper", tmp_path / "robust", judge)
    assert summary.ok and (summary.ran, summary.kept, summary.samples) == (10, 0, 10)
    header = log.header
    source_header = read_run_log(tmp_path / "paper").header
    assert header is not None and source_header is not None
    assert header.backend == f"answers from {tmp_path / 'paper'} (backend scripted:scripted-model)"
    config = EvalConfig.from_json(header.config)
    assert (config.answers_from, config.answers_hash, config.preset) == (str(tmp_path / "paper"), source_header.config_hash, "robust")
    assert {k: v for k, v in header.config.items() if k not in ("preset", "answers_from", "answers_hash")} == {
        k: v for k, v in source_header.config.items() if k != "preset"}
    assert header.config_hash == config.hash != source_header.config_hash
    ours = log.by_key()
    assert set(ours) == set(theirs)
    expected = RewardScorer(get_preset("robust"), judge).score(
        [row.to_sample(theirs[row.id, epoch].answer) for epoch in (0, 1) for row in rows(5)])
    for (row, epoch), result in zip([(row, e) for e in (0, 1) for row in rows(5)], expected):
        mine, source = ours[row.id, epoch], theirs[row.id, epoch]
        assert mine.status == "scored" and mine.answer == source.answer and mine.parse == source.parse
        assert (mine.tokens_in, mine.tokens_out, mine.seconds["generate"]) == (source.tokens_in, source.tokens_out,
                                                                               source.seconds["generate"])
        assert (mine.prompt, mine.ground_truth) == (source.prompt, source.ground_truth)
        assert mine.reward == result.to_log()
    assert any(ours[key].reward != theirs[key].reward for key in ours)  # robust is not paper on these answers
    again = run_eval(EvalConfig(answers_from=str(tmp_path / "paper"), preset="robust"), tmp_path / "robust", rows=rows(5),
                     backend=NoBackend(), judge=judge)
    assert (again.ran, again.kept, again.ok) == (0, 10, True)


def test_a_steered_source_keeps_its_steering_record(tmp_path: Path, judge: RuleJudge) -> None:
    steered = EvalConfig(("fake",), backend="scripted", steer=True, pricing="research-llm-shift", pricing_params={"s": 2})
    theirs = source_run(tmp_path / "steered", judge, steered, n=3)
    summary, log = rescore(tmp_path / "steered", tmp_path / "robust", judge, n=3)
    assert summary.ok and log.header is not None
    assert (log.header.config["steer"], log.header.config["pricing_params"]) == (True, {"s": 2})
    for key, record in log.by_key().items():
        assert record.steering is not None and record.steering == theirs[key].steering
        assert record.answer == record.steering["text"] and record.tokens_out == theirs[key].tokens_out


def test_rows_without_an_answer_in_the_source_fail_and_run_again_once_it_has_one(tmp_path: Path, judge: RuleJudge) -> None:
    source = tmp_path / "paper"
    config = replace(SOURCE, epochs=1)
    source_run(source, judge, config, backend=scripted(fail_calls=frozenset({0})))  # fake/0: generation failed
    log = source / "run.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    kept = [line for line in lines if '"id": "fake/4"' not in line]  # fake/4: no record at all
    errored = SampleRecord(id="fake/2", epoch=0, benchmark="fake", data_source="wildguard", status="error",
                           prompt=rows(3)[2].messages, ground_truth="harmful", error="unknown data source")
    log.write_text("".join(kept) + json.dumps(errored.to_json()) + "\n")
    summary, found = rescore(source, tmp_path / "robust", judge)
    by_key = found.by_key()
    assert {key[0]: record.status for key, record in by_key.items()} == {
        "fake/0": "generation_failed", "fake/1": "scored", "fake/2": "generation_failed", "fake/3": "scored",
        "fake/4": "generation_failed"}
    assert by_key["fake/0", 0].error == (f"no answer in {source} for fake/0/0: its record is generation_failed "
                                         "(failed: scripted failure of call 0)")
    assert by_key["fake/2", 0].error == f"no answer in {source} for fake/2/0: its record is error (unknown data source)"
    assert by_key["fake/4", 0].error == f"no answer in {source} for fake/4/0: the run has no record of it"
    assert by_key["fake/4", 0].prompt == rows(5)[4].messages and by_key["fake/4", 0].answer == ""
    assert summary.exit_code == 1 and summary.failures("generation_failed") == 3
    # The source resumes (its config, so its hash, is the same) and then has every answer: a rerun takes them.
    log.write_text("".join(line for line in log.read_text().splitlines(keepends=True) if '"id": "fake/2"' not in line))
    assert run_eval(config, source, rows=rows(5), backend=scripted(), judge=judge).ok
    again, found = rescore(source, tmp_path / "robust", judge)
    assert (again.ran, again.kept, again.ok) == (3, 2, True)
    assert all(record.answer == read_run_log(source).by_key()[key].answer for key, record in found.by_key().items())


def test_a_setting_that_differs_from_the_source_is_refused_by_name(tmp_path: Path, judge: RuleJudge) -> None:
    source_run(tmp_path / "paper", judge)
    with pytest.raises(EvalSetupError, match=r"max_tokens is 64 here but 512 in .*paper, whose answers are scored: leave it out"):
        rescore(tmp_path / "paper", tmp_path / "a", judge, max_tokens=64)
    with pytest.raises(EvalSetupError, match="backend is 'http://h/v1' here but 'scripted'"):
        rescore(tmp_path / "paper", tmp_path / "a", judge, backend="http://h/v1")
    summary, _ = rescore(tmp_path / "paper", tmp_path / "a", judge, benchmarks=("fake",), seed=5, epochs=2)  # the same: fine
    assert summary.ok
    with pytest.raises(EvalSetupError, match="is the run's own folder"):
        rescore(tmp_path / "paper", tmp_path / "paper", judge)
    with pytest.raises(EvalSetupError, match="no run log there"):
        rescore(tmp_path / "nothing", tmp_path / "b", judge)
    changed = [replace(row, ground_truth="harmless") if row.id == "fake/2" else row for row in rows(5)]
    with pytest.raises(EvalSetupError, match="its ground truth of fake/2 differs from the benchmark's row now: the data changed"):
        run_eval(EvalConfig(answers_from=str(tmp_path / "paper")), tmp_path / "b", rows=changed, backend=NoBackend(), judge=judge)
    assert not (tmp_path / "b" / "run.jsonl").exists()


def test_a_resume_notices_a_changed_source(tmp_path: Path, judge: RuleJudge) -> None:
    source_run(tmp_path / "paper", judge)
    rescore(tmp_path / "paper", tmp_path / "robust", judge)
    # The source folder now holds another run with the same answer settings (another preset): another source.
    (tmp_path / "paper" / "run.jsonl").unlink()
    source_run(tmp_path / "paper", judge, replace(SOURCE, preset="robust"))
    with pytest.raises(ResumeRefused, match=r"another config \(answers_hash: "):
        rescore(tmp_path / "paper", tmp_path / "robust", judge)


@pytest.fixture
def fake_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gtalign.benchmarks, "load_benchmark", _fakes.load_benchmark, raising=False)

    def no_backend(spec, model=None, concurrency=None):
        raise AssertionError(f"a backend was built ({spec}) by a run with --answers-from")

    monkeypatch.setattr(gtalign.eval._runner, "build_eval_backend", no_backend)


@pytest.mark.usefixtures("fake_benchmarks")
def test_the_command_line_takes_the_settings_from_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            judge: RuleJudge) -> None:
    from gtalign.cli._main import main

    source, out = tmp_path / "paper", tmp_path / "robust"
    run_eval(EvalConfig(("fake",), backend="tests.eval._fakes:scripted", max_tokens=64, epochs=2), source, backend=scripted(),
             rows=_fakes.rows(6), judge=judge)
    command = ["eval", "--answers-from", str(source), "--preset", "robust", "--judge", "rule", "--out", str(out)]
    assert main(command) == 0
    assert f"answers from {source} (backend scripted:scripted-model)" in capsys.readouterr().err
    log = read_run_log(out)
    assert log.header is not None and (log.header.config["max_tokens"], log.header.config["epochs"]) == (64, 2)
    assert [record.answer for record in log.records] and all(record.status == "scored" for record in log.records)
    assert main([*command, "--epochs", "2", "--max-tokens", "64"]) == 0  # the same as the source's: resumed, nothing to do
    assert "0 run now, 12 kept from an earlier run" in capsys.readouterr().err
    # --max-tokens 512 is gtalign's default, but given on purpose it conflicts with the source's 64.
    assert main([*command, "--max-tokens", "512"]) == 2
    assert f"--max-tokens is 512 here but 64 in {source}, whose answers are scored" in capsys.readouterr().err
    assert main([*command, "--backend", "http://h/v1"]) == 2
    assert "--backend is 'http://h/v1' here but 'tests.eval._fakes:scripted'" in capsys.readouterr().err
    assert main(["eval", "--preset", "robust", "--judge", "rule", "--out", str(tmp_path / "x")]) == 2
    assert "required: --benchmark, --backend (or --answers-from RUN_DIR)" in capsys.readouterr().err


def test_help_explains_answers_from(capsys: pytest.CaptureFixture[str]) -> None:
    from gtalign.cli._main import main

    assert main(["eval", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--answers-from RUN_DIR scores RUN_DIR's answers (joined on id and epoch) with this --preset and --judge" in text
