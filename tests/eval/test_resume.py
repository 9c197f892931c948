"""Resuming a run in process: failures run again and nothing final does, a changed config or changed
data is refused by name, --new writes beside the run, torn and corrupt lines, the lock, Ctrl-C."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gtalign.data import output_lock
from gtalign.eval import EvalConfig, ResumeRefused, read_run_log, run_eval
from gtalign.judges import RuleJudge
from tests.eval._fakes import FlakyJudge, rows, scripted

CONFIG = EvalConfig(("fake",), backend="scripted", concurrency=1)


@pytest.fixture
def judge():
    judge = RuleJudge()
    yield judge
    judge.close()


def lines(folder: Path) -> list[bytes]:
    return (folder / "run.jsonl").read_bytes().splitlines(keepends=True)


def test_failures_run_again_and_nothing_final_does(tmp_path: Path) -> None:
    out = tmp_path / "run"
    flaky = FlakyJudge(fail_on=("bread",))  # rows 1 and 3 (their answers mention bread)
    try:
        first = run_eval(CONFIG, out, rows=rows(5), backend=scripted(fail_calls=frozenset({0, 2})), judge=flaky)
    finally:
        flaky.close()
    assert first.exit_code == 1 and first.retryable == 4
    answers = {r.key: r.answer for r in read_run_log(out).records}
    backend, judge = scripted(), FlakyJudge()
    try:
        second = run_eval(CONFIG, out, rows=rows(5), backend=backend, judge=judge)
    finally:
        judge.close()
    # Generation failures are generated again; judge failures keep their answer and are only judged again.
    assert sorted(question for call in backend.calls for question in [call.messages[-1]["content"]]) == sorted(
        r.messages[-1]["content"] for r in rows(5)[0:3:2])
    assert len(judge.asked) == 4 and not any("gardening" in text or "Gardens" in text for text in judge.asked)
    log = read_run_log(out)
    assert len(lines(out)) == 1 + 5 + 4  # the later records replace the earlier ones on read
    assert all(r.status == "scored" for r in log.records) and len(log.records) == 5
    assert {k: r.answer for k, r in log.by_key().items() if k in {("fake/1", 0), ("fake/3", 0)}} == {
        k: answers[k] for k in (("fake/1", 0), ("fake/3", 0))}
    assert (second.exit_code, second.kept, second.ran, second.scored) == (0, 1, 4, 5)
    assert "resuming" in second.notes[-1] and "1 samples kept, 4 failed ones run again, 2 of them only judged again" in second.notes[-1]
    third_backend = scripted()
    third = run_eval(CONFIG, out, rows=rows(5), backend=third_backend, judge=judge)
    assert (third.ran, third.kept, third.exit_code, third_backend.calls) == (0, 5, 0, [])


def test_a_changed_config_is_refused_naming_the_setting(tmp_path: Path, judge: RuleJudge) -> None:
    out = tmp_path / "run"
    run_eval(CONFIG, out, rows=rows(2), backend=scripted(), judge=judge)
    before = lines(out)
    with pytest.raises(ResumeRefused, match=r"another config \(preset: 'robust' vs 'paper', this command vs the run\).*--new"):
        run_eval(replace(CONFIG, preset="robust"), out, rows=rows(2), backend=scripted(), judge=judge)
    with pytest.raises(ResumeRefused, match=r"epochs: 2 vs 1"):
        run_eval(replace(CONFIG, epochs=2), out, rows=rows(2), backend=scripted(), judge=judge)
    assert lines(out) == before
    # Settings that cannot change a record may differ.
    again = run_eval(replace(CONFIG, concurrency=4, name="renamed"), out, rows=rows(2), backend=scripted(), judge=judge)
    assert again.ran == 0 and again.kept == 2 and "keeps the name it was started with (None)" in again.notes[0]


def test_new_starts_a_run_beside_the_old_one(tmp_path: Path, judge: RuleJudge) -> None:
    out = tmp_path / "run"
    fresh = run_eval(CONFIG, out, new=True, rows=rows(2), backend=scripted(), judge=judge)
    assert fresh.run_dir == out and fresh.notes == ()  # nothing there yet: --new writes OUT itself
    second = run_eval(replace(CONFIG, preset="robust"), out, new=True, rows=rows(2), backend=scripted(), judge=judge)
    assert second.run_dir == tmp_path / "run-2" and second.notes[0] == f"{out} holds a run; --new writes this one to {tmp_path / 'run-2'}"
    third = run_eval(CONFIG, out, new=True, rows=rows(2), backend=scripted(), judge=judge)
    assert third.run_dir == tmp_path / "run-3" and third.ran == 2
    assert read_run_log(tmp_path / "run-2").header.config["preset"] == "robust"
    assert read_run_log(out).header.config["preset"] == "paper" and len(lines(out)) == 3


def test_changed_data_is_refused_naming_the_row(tmp_path: Path, judge: RuleJudge) -> None:
    out = tmp_path / "run"
    run_eval(CONFIG, out, rows=rows(3), backend=scripted(), judge=judge)
    edited = rows(3)
    edited[1] = replace(edited[1], ground_truth="singleAnswer###Lyon")
    with pytest.raises(ResumeRefused, match="its ground truth of fake/1 differs from the benchmark's row now"):
        run_eval(CONFIG, out, rows=edited, backend=scripted(), judge=judge)
    with pytest.raises(ResumeRefused, match="holds fake/2 epoch 0, which the benchmarks no longer yield"):
        run_eval(CONFIG, out, rows=rows(2), backend=scripted(), judge=judge)
    # More rows than before (a larger --limit changes the config; here the data grew): the new ones run.
    grown = run_eval(CONFIG, out, rows=rows(4), backend=scripted(), judge=judge)
    assert (grown.kept, grown.ran) == (3, 1)


def test_a_torn_last_line_is_cut_reported_and_its_row_run_again(tmp_path: Path, judge: RuleJudge) -> None:
    out = tmp_path / "run"
    run_eval(CONFIG, out, rows=rows(3), backend=scripted(), judge=judge)
    complete = lines(out)
    torn_id = read_run_log(out).records[-1].id
    (out / "run.jsonl").write_bytes(b"".join(complete[:-1]) + complete[-1][:60])  # a kill while writing the last line
    backend = scripted()
    summary = run_eval(CONFIG, out, rows=rows(3), backend=backend, judge=judge)
    assert any(note.startswith(f"cut the torn record of {torn_id} epoch 0 (") and "that row runs again" in note for note in summary.notes)
    assert len(backend.calls) == 1 and summary.ran == 1 and summary.exit_code == 0
    log = read_run_log(out)
    assert log.problems == () and len(log.records) == 3 and len(lines(out)) == 4


def test_a_corrupt_line_is_reported_and_its_row_run_again(tmp_path: Path, judge: RuleJudge) -> None:
    out = tmp_path / "run"
    run_eval(CONFIG, out, rows=rows(3), backend=scripted(), judge=judge)
    complete = lines(out)
    (out / "run.jsonl").write_bytes(b"".join([complete[0], b"{garbage\n", *complete[2:]]))
    summary = run_eval(CONFIG, out, rows=rows(3), backend=scripted(), judge=judge)
    assert summary.ran == 1 and "line 2 skipped (not JSON" in summary.notes[0]
    assert len(read_run_log(out).records) == 3


def test_a_log_that_is_not_a_run_is_refused(tmp_path: Path, judge: RuleJudge) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.jsonl").write_text('{"kind": "sample", "id": "x"}\n')
    with pytest.raises(ResumeRefused, match="is not a run log this gtalign can continue"):
        run_eval(CONFIG, out, rows=rows(1), backend=scripted(), judge=judge)
    (out / "run.jsonl").write_text('{"kind": "header", "sch')  # killed while writing the header
    summary = run_eval(CONFIG, out, rows=rows(1), backend=scripted(), judge=judge)
    assert summary.ran == 1 and "held only a torn header" in summary.notes[0]
    with pytest.raises(ResumeRefused, match="is a file, not a run folder"):
        run_eval(CONFIG, out / "run.jsonl", rows=rows(1), backend=scripted(), judge=judge)


def test_a_second_run_on_the_folder_is_refused(tmp_path: Path, judge: RuleJudge) -> None:
    out = tmp_path / "run"
    with output_lock(out / "run.jsonl"):
        with pytest.raises(ResumeRefused, match="being written by another run.*wait for it to finish"):
            run_eval(CONFIG, out, rows=rows(1), backend=scripted(), judge=judge)
    assert run_eval(CONFIG, out, rows=rows(1), backend=scripted(), judge=judge).ran == 1


def test_ctrl_c_keeps_what_was_written_and_the_same_call_resumes(tmp_path: Path, judge: RuleJudge) -> None:
    from gtalign.testing import ScriptedBackend
    from tests.eval._fakes import four_blocks, question_of

    def script(messages, prefill):
        if "gardening" in messages[-1]["content"]:
            raise KeyboardInterrupt  # as Ctrl-C would, while this row generates
        return four_blocks(question_of(messages), 0)

    out = tmp_path / "run"
    stopped = run_eval(CONFIG, out, rows=rows(6), backend=ScriptedBackend(script), judge=judge)
    assert stopped.interrupted and stopped.exit_code == 130 and stopped.written == stopped.ran == 4
    assert "interrupted: 2 samples not run yet; run the same command again to resume" in "\n".join(stopped.lines())
    resumed = run_eval(CONFIG, out, rows=rows(6), backend=scripted(), judge=judge)
    assert (resumed.kept, resumed.ran, resumed.exit_code) == (4, 2, 0)
