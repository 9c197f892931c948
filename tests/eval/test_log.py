"""The run log: round trips, resume finality, and reading that survives bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gtalign.eval import AnswerParse, RunHeader, SampleRecord, config_hash, read_run_log, write_records

HEADER = RunHeader(config={"name": "base", "preset": "paper", "benchmarks": ["sample"]},
                   config_hash=config_hash({"name": "base"}), gtalign="0.1.0", created="2026-12-06T00:00:00Z",
                   backend="embedded:SmolLM2-135M-Instruct", judge="rule")


def record(id: str = "math-hard/0", epoch: int = 0, status: str = "scored", **reward) -> SampleRecord:
    return SampleRecord(
        id=id, epoch=epoch, benchmark="sample", data_source="math-hard", status=status,  # type: ignore[arg-type]
        label="", prompt=({"role": "user", "content": "2+2?"},), ground_truth="4", answer="<response>4</response>",
        parse=AnswerParse(format_ok=False, blocks={"response": "4"}, chosen_key="DQ_DA", welfare_key="DQ_DA",
                          action="DA", response_act="DA", problems=("missing_block: <thinking>",)),
        reward={"score": 0.5, "user_reward": 0.4, "llm_reward": 0.625, "utility": 0.5, **reward},
        tokens_in=10, tokens_out=3, seconds={"generate": 0.2, "judge": 0.01},
    )


def write(path: Path, *items, raw: list[bytes] = ()) -> Path:
    with path.open("w") as handle:
        write_records(items, handle)
    with path.open("ab") as handle:
        for line in raw:
            handle.write(line)
    return path


def test_header_and_records_round_trip(tmp_path: Path) -> None:
    log = read_run_log(write(tmp_path / "run.jsonl", HEADER, record(), record("math-hard/1")))
    assert log.header == HEADER and log.problems == ()
    assert log.records == (record(), record("math-hard/1"))
    assert log.name == "base"
    assert read_run_log(tmp_path).records == log.records  # a run folder works too
    first = log.records[0]
    assert (first.user_reward, first.llm_reward, first.welfare) == (0.4, 0.625, 0.5)
    assert first.parse.chosen_is_welfare_choice is True and first.parse.response_carries_out_choice is True
    assert first.response == "4"


def test_bad_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "run.jsonl", HEADER, record(), raw=[
        b"{not json\n", b"[1, 2]\n", json.dumps({"kind": "sample", "id": "x"}).encode() + b"\n",
        json.dumps({**record("math-hard/2").to_json(), "status": "great"}).encode() + b"\n",
        b"[" * 100_000 + b"\n",
        json.dumps(record("math-hard/3").to_json()).encode()[:40],  # the tail a kill left
    ])
    log = read_run_log(path)
    assert [r.id for r in log.records] == ["math-hard/0"]
    assert [p.line for p in log.problems] == [3, 4, 5, 6, 7, 8]
    assert "not JSON" in str(log.problems[0]) and "a JSON list" in str(log.problems[1])
    assert "without 'epoch'" in str(log.problems[2]) and "status must be one of" in str(log.problems[3])
    assert "truncated" in str(log.problems[5])


def test_a_later_attempt_replaces_the_earlier_one(tmp_path: Path) -> None:
    failed = record(status="generation_failed")
    log = read_run_log(write(tmp_path / "run.jsonl", HEADER, failed, record("math-hard/1"), record()))
    assert [(r.id, r.status) for r in log.records] == [("math-hard/1", "scored"), ("math-hard/0", "scored")]


def test_a_newer_schema_or_a_missing_header_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    newer = {**HEADER.to_json(), "schema": 99}
    log = read_run_log(write(tmp_path / "a.jsonl", record(), raw=[json.dumps(newer).encode() + b"\n"]))
    assert log.header is None and len(log.records) == 1
    assert "no run header" in str(log.problems[0]) and "newer than this gtalign reads" in str(log.problems[1])


@pytest.mark.parametrize(("status", "judge_status", "final"), [
    ("scored", "ok", True), ("scored", None, True),
    ("scored", "failed", False),  # scored 0 under unscored_as_zero because the judge failed: ask again
    ("unscored", "failed", False), ("unscored", "invalid", True), ("unscored", "unparsable", True),
    ("unscored", "refused", True), ("unscored", None, True),  # e.g. an unknown data source
    ("generation_failed", None, False), ("error", None, False),
])
def test_which_records_resume_keeps(status: str, judge_status: str | None, final: bool) -> None:
    assert record(status=status, judge_status=judge_status).final is final


def test_config_hash_ignores_key_order() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_a_record_with_the_default_parse_round_trips(tmp_path: Path) -> None:
    """A failed row has no answer to parse: its default AnswerParse must still be written."""
    failed = SampleRecord(id="x/0", epoch=0, benchmark="x", data_source="math-hard", status="generation_failed",
                          error="server said 500")
    assert AnswerParse().to_json()["blocks"] == {}
    assert read_run_log(write(tmp_path / "run.jsonl", HEADER, failed)).records == (failed,)


def test_welfare_falls_back_to_sqrt_u_l_when_no_utility_is_logged() -> None:
    logged = record(utility=0.5)
    assert logged.welfare == 0.5
    unlogged = SampleRecord(id="a/0", epoch=0, benchmark="a", data_source="math-hard", status="scored",
                            reward={"user_reward": 0.25, "llm_reward": 0.64, "utility": None})
    assert unlogged.welfare == pytest.approx(0.4)
    assert SampleRecord(id="a/1", epoch=0, benchmark="a", data_source="math-hard", status="unscored").welfare is None


def test_tokens_by_block_round_trip_and_bad_counts_are_dropped():
    from gtalign.eval._log import SampleRecord

    record = SampleRecord(id="a/0", epoch=0, benchmark="a", data_source="a", status="scored",
                          tokens_by_block={"thinking": 12, "response": 30})
    again = SampleRecord.from_json(record.to_json())
    assert again.tokens_by_block == {"thinking": 12, "response": 30}
    data = record.to_json() | {"tokens_by_block": {"thinking": -1, "payoff": True, "analyze": 4, "response": "x"}}
    assert SampleRecord.from_json(data).tokens_by_block == {"analyze": 4}
    older = {k: v for k, v in record.to_json().items() if k != "tokens_by_block"}
    assert SampleRecord.from_json(older).tokens_by_block == {}
