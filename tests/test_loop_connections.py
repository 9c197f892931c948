"""Connections opened in an event loop that gtalign runs (`run_sync`: eval, score, the reward's
sync entry points) are closed before that loop ends, not left to the garbage collector: a caller
that passes its own backend to `run_eval` leaked one socket per connection before."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from pathlib import Path

from gtalign._sync import run_sync
from gtalign.backends import HTTPBackend, SamplingParams
from gtalign.eval import EvalConfig, run_eval
from gtalign.judges import RuleJudge
from gtalign.testing.fake_openai import FakeOpenAI
from tests.integrations._helpers import answer

QUESTION = [{"role": "user", "content": "What is 6*7?"}]


def unclosed_sockets(work: Callable[[], None]) -> list[str]:
    """The ResourceWarnings (unclosed sockets and transports) the garbage collector reports after ``work``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        work()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_run_sync_closes_the_connections_its_loop_opened() -> None:
    with FakeOpenAI(lambda request: "Hello.", kind="vllm", model="m") as server:
        def ask_four_at_once() -> None:
            backend = HTTPBackend(server.base_url, "m", kind="vllm")

            async def four() -> None:
                import asyncio

                await asyncio.gather(*(backend.generate(QUESTION, params=SamplingParams(max_tokens=8)) for _ in range(4)))

            run_sync(four())

        assert unclosed_sockets(ask_four_at_once) == []


def test_a_backend_given_to_run_eval_leaves_no_socket_behind(tmp_path: Path) -> None:
    rows = [{"prompt": [{"role": "user", "content": f"What is {i}*7?"}], "data_source": "math-hard",
             "reward_model": {"ground_truth": str(7 * i)}, "extra_info": {}} for i in range(6)]
    data = tmp_path / "rows.jsonl"
    import json

    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    judge = RuleJudge()
    try:
        with FakeOpenAI(lambda request: answer("\\boxed{42}"), kind="vllm", model="m") as server:
            def evaluate() -> None:
                backend = HTTPBackend(server.base_url, "m", kind="vllm")
                summary = run_eval(EvalConfig((str(data),), preset="paper", judge="rule"), tmp_path / "run",
                                   backend=backend, judge=judge)
                assert summary.ran == 6

            assert unclosed_sockets(evaluate) == []
    finally:
        judge.close()
