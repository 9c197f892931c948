"""Rows in flight: the backend's own limit unless ``concurrency`` is set, so one number governs an
HTTP run (rows in flight and the client's requests in flight), and the run says where it came from."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from gtalign.backends import HTTPBackend
from gtalign.eval import EvalConfig, EvalProgress, run_eval
from gtalign.eval._setup import DEFAULT_CONCURRENCY, Concurrency, build_eval_backend, choose_concurrency
from gtalign.judges import RuleJudge
from gtalign.testing import FakeOpenAI, Reply
from tests.eval._fakes import four_blocks, question_of, rows, scripted


@pytest.fixture
def judge() -> Iterator[RuleJudge]:
    judge = RuleJudge()
    yield judge
    judge.close()


class Batched:
    """Stands for the embedded backend: all the chooser reads is its batch size."""

    max_batch = 4


def test_the_default_is_the_backends_own_limit() -> None:
    http = HTTPBackend("http://127.0.0.1:1/v1", "m", concurrency=5)
    assert choose_concurrency(None, http) == Concurrency(5, "the HTTP client's limit for http://127.0.0.1:1/v1 model m")
    assert choose_concurrency(None, HTTPBackend("http://127.0.0.1:1/v1", "m")).rows == 32  # ClientConfig's default
    assert choose_concurrency(None, Batched()) == Concurrency(4, "the embedded backend's batch size")
    assert choose_concurrency(None, scripted()).rows == DEFAULT_CONCURRENCY
    assert choose_concurrency(3, http) == Concurrency(3, "set by concurrency / --concurrency")


def test_concurrency_also_sets_the_http_clients_limit() -> None:
    assert build_eval_backend("http://127.0.0.1:1/v1", "m", 3).config.concurrency == 3  # type: ignore[attr-defined]
    assert build_eval_backend("http://127.0.0.1:1/v1", "m").config.concurrency == 32  # type: ignore[attr-defined]


def script(request) -> Reply:
    return Reply(four_blocks(question_of(request.messages), request.body.get("seed")), latency=0.3)


@pytest.mark.parametrize(("concurrency", "limit", "said"), [
    (None, 32, "32 in flight (the HTTP client's limit for {url} model m)"),
    (3, 3, "3 in flight (set by concurrency / --concurrency)"),
])
def test_an_http_run_keeps_that_many_rows_in_flight_and_says_why(tmp_path: Path, judge: RuleJudge, concurrency: int | None,
                                                                 limit: int, said: str) -> None:
    buffer = io.StringIO()
    progress = EvalProgress(Console(file=buffer, width=300, highlight=False))
    with FakeOpenAI(script, kind="vllm", model="m") as server:
        config = EvalConfig(("fake",), backend=server.base_url, model="m", preset="paper", judge="rule", concurrency=concurrency)
        summary = run_eval(config, tmp_path / "run", rows=rows(36), judge=judge, progress=progress)
    assert summary.ok and summary.ran == 36
    assert server.max_in_flight == limit  # every row sent at once up to the limit, never more
    assert said.format(url=server.base_url) in buffer.getvalue()
