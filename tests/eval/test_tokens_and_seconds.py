"""What a record says about cost: ``tokens_by_block`` counted with the backend's own tokenizer (here a
loopback server's ``/tokenize``), nothing when it cannot count, taken over by ``answers_from``; and
``seconds.judge`` as the row's share of its batch, ``seconds.judge_batch`` the batch's time."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from gtalign.backends import HTTPBackend
from gtalign.eval import EvalConfig, read_run_log, run_eval
from gtalign.judges import RuleJudge
from gtalign.testing import FakeOpenAI, Reply
from tests.backends._http_helpers import RecordingTransport
from tests.backends._tokenize_server import tokenize_server
from tests.eval._fakes import four_blocks, question_of, rows, scripted

BLOCKS = {"thinking", "payoff", "analyze", "response"}


@pytest.fixture
def judge() -> Iterator[RuleJudge]:
    judge = RuleJudge()
    yield judge
    judge.close()


def answer(messages, body) -> str:
    return four_blocks(question_of(messages), body.get("seed"))


def config(url: str, **settings) -> EvalConfig:
    return EvalConfig(("fake",), backend=url, model="m", preset="paper", judge="rule", **settings)


def run_over_http(url: str, out: Path, judge: RuleJudge, n: int, **backend_options) -> HTTPBackend:
    # A loopback tokenize call that takes longer than the 5 s default on a loaded machine would count as a
    # failed probe (three make the endpoint unsupported): these tests are about counting, not timeouts.
    backend_options.setdefault("probe_timeout", 60.0)
    backend = HTTPBackend(url, "m", kind="vllm", **backend_options)  # run_eval closes its connections as its loop ends
    summary = run_eval(config(url), out, rows=rows(n), backend=backend, judge=judge)
    assert summary.ok and summary.ran == n
    return backend


def test_each_block_is_counted_once_by_the_servers_tokenizer(tmp_path: Path, judge: RuleJudge) -> None:
    with tokenize_server(style="vllm", reply=answer) as server:
        run_over_http(server.base_url, tmp_path / "run", judge, 5)
    records = read_run_log(tmp_path / "run").records
    assert len(records) == 5
    for record in records:
        assert set(record.tokens_by_block) == BLOCKS
        assert record.tokens_by_block == {name: len(text.split()) for name, text in record.parse.blocks.items()}
    assert len(server.tokenized) == 4 * 5  # one request per block, none repeated
    assert sorted(body["prompt"] for body in server.tokenized) == sorted(
        text for record in records for text in record.parse.blocks.values())


def test_a_server_without_tokenize_is_probed_once_per_run_and_records_nothing(tmp_path: Path, judge: RuleJudge) -> None:
    def script(request) -> Reply:
        return Reply(answer(request.messages, request.body))

    transport = RecordingTransport()
    with FakeOpenAI(script, kind="vllm", model="m") as server:
        run_over_http(server.base_url, tmp_path / "run", judge, 6, transport=transport)
    records = read_run_log(tmp_path / "run").records
    assert len(records) == 6 and all(record.scored and record.tokens_by_block == {} for record in records)
    assert [path for method, path, _ in transport.requests if path == "/tokenize"] == ["/tokenize"]


def test_a_failing_tokenize_fails_no_row(tmp_path: Path, judge: RuleJudge) -> None:
    with tokenize_server(style="vllm", reply=answer, tokenize_status=500) as server:
        run_over_http(server.base_url, tmp_path / "run", judge, 4)
    records = read_run_log(tmp_path / "run").records
    assert len(records) == 4 and all(record.scored and record.tokens_by_block == {} for record in records)


def test_answers_from_keeps_the_source_counts_without_a_backend(tmp_path: Path, judge: RuleJudge) -> None:
    with tokenize_server(style="vllm", reply=answer) as server:
        run_over_http(server.base_url, tmp_path / "source", judge, 3)
        counted = len(server.tokenized)
        rescored = EvalConfig(answers_from=str(tmp_path / "source"), preset="robust", judge="rule")
        assert run_eval(rescored, tmp_path / "rescored", rows=rows(3), judge=judge).ok
        assert len(server.tokenized) == counted
    source = read_run_log(tmp_path / "source").by_key()
    for record in read_run_log(tmp_path / "rescored").records:
        assert record.tokens_by_block == source[record.key].tokens_by_block and set(record.tokens_by_block) == BLOCKS


def test_seconds_judge_is_the_rows_share_of_its_batch(tmp_path: Path, judge: RuleJudge) -> None:
    # Each reading of the clock is later by one more second than the last, so no two batches take
    # the same time and each record's batch is found by its judge_batch.
    readings = itertools.accumulate(itertools.count())
    summary = run_eval(config("scripted"), tmp_path / "run", rows=rows(7), backend=scripted(), judge=judge,
                       clock=lambda: float(next(readings)))
    assert summary.ok
    records = read_run_log(tmp_path / "run").records
    batches: dict[float, list[float]] = defaultdict(list)
    for record in records:
        assert set(record.seconds) == {"generate", "judge", "judge_batch"}
        batches[record.seconds["judge_batch"]].append(record.seconds["judge"])
    assert all(batch > 0 for batch in batches)
    for batch, shares in batches.items():
        assert shares == [round(batch / len(shares), 6)] * len(shares)
    assert sum(record.seconds["judge"] for record in records) == pytest.approx(sum(batches), abs=1e-5)
