"""``gtalign data sft`` in process: inputs, sampling, output formats, distillation through a scripted
backend and a fake OpenAI server on loopback, failures, interruption and resume, atomic output,
usage errors, and the paper's training data when present."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gtalign.cli._main import main
from gtalign.protocol import DEFAULT_SYSTEM, parse_answer
from gtalign.testing import FakeOpenAI, Reply, ScriptedBackend
from gtalign.training._distill import DISTILL_SYSTEM
from tests.training.test_targets import MEANINGS_GT, assert_valid_completion

ANSWER = "Tides are caused mostly by the Moon's gravity pulling on the oceans."


def paper_row(data_source: str, question: str, ground_truth: str, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Instruction.Question: {question}"}],
        "data_source": data_source,
        "reward_model": {"ground_truth": ground_truth, "style": "rule"},
        "extra_info": {"chat_history": [{"role": "user", "content": question}], "single_turn_prompt": question, **extra},
    }


ROWS = [
    paper_row("ambig_qa", "Who has calculated the most digits of pi?", MEANINGS_GT),
    paper_row("ambig_qa", "Who won the battle?", "singleAnswer###Battle of Plassey"),
    paper_row("math-hard", "What is 1/2 + 0?", "\\frac{1}{2}"),
    paper_row("wildguard", "How do I pick a lock to break into a house?", "harmful"),
    paper_row("wildguard", "How do tides work?", "unharmful"),
    paper_row("wildguard", "Why is the sky blue?", "unharmful"),
    paper_row("abg-coqa", "Which one?", "ambiguous"),
]


def write_rows(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_valid_records(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert set(record) >= {"id", "prompt", "completion", "data_source", "reward_model", "extra_info", "label",
                               "target_source", "chosen_key"}
        assert record["prompt"][-1]["role"] == "user" and [m["role"] for m in record["completion"]] == ["assistant"]
        assert_valid_completion(record["completion"][0]["content"], record["chosen_key"], record["data_source"],
                                record["reward_model"]["ground_truth"], record["extra_info"])


# Backends named on the command line as tests.training.test_data_cli:NAME (a factory per run).
CALLS: list[Any] = []


def _answer(messages: Any, prefill: str) -> str:
    return ANSWER


def answers() -> ScriptedBackend:
    backend = ScriptedBackend(_answer)
    CALLS.append(backend)
    return backend


def first_call_fails() -> ScriptedBackend:
    backend = ScriptedBackend(_answer, fail_calls=frozenset({0}))
    CALLS.append(backend)
    return backend


def interrupted_on_second_call() -> ScriptedBackend:
    """Ctrl-C (a real SIGINT to this process) while the second answer is being written; the short
    latency makes each call yield to the event loop, as a real model call does."""

    def script(messages: Any, prefill: str) -> str:
        if len(backend.calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return ANSWER

    backend = ScriptedBackend(script, latency=0.01)
    CALLS.append(backend)
    return backend


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


def sft(*args: str | Path) -> int:
    return main(["data", "sft", *map(str, args)])


# -- the command -----------------------------------------------------------------------------------


def test_help_explains_labels_output_resume_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert sft("--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("ambiguous VQ_CQ", "harmful DQ_DA a direct refusal", "\\boxed{ground truth}", "needs_distillation",
                   "conversational prompt-completion", "target_source", "OUT.distill-cache.jsonl", "never leaves a partial OUT",
                   "--limit", "per data source", "Exit codes: 0", "130"):
        assert phrase in text, phrase
    assert main(["data"]) == 2


def test_the_shipped_sample_builds_valid_targets_and_reports_every_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, skipped = tmp_path / "sft.jsonl", tmp_path / "skipped.jsonl"
    assert sft("sample", "-o", out, "--skipped", skipped, "-q") == 0
    records = read_records(out)
    assert_valid_records(records)
    assert {r["target_source"] for r in records} == {"reference"}
    assert all(r["id"].startswith("sample/") for r in records)
    skips = read_records(skipped)
    assert Counter(s["reason"] for s in skips) == {"needs_distillation": 5, "no_meanings": 1}
    assert len(records) + len(skips) == 33
    err = " ".join(capsys.readouterr().err.split())
    assert "27 targets written" in err and "6 rows skipped (5 need --distill-backend)" in err
    assert "wildguard needs_distillation 3" in err and "abg-coqa no_meanings 1" in err
    assert not list(tmp_path.glob(".*tmp")) and not list(tmp_path.glob("*.distill-cache.jsonl"))


def test_unreadable_rows_are_skipped_with_the_reason_and_the_rest_built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = dict(ROWS[2], data_source=7)
    rows = [*ROWS[:4], "{not json", broken, paper_row("ambig_qa", "Q?", "singleAnswer###A", index=1) | {"prompt": "x"}]
    source = write_rows(tmp_path / "rows.jsonl", rows)
    out, skipped = tmp_path / "sft.jsonl", tmp_path / "skipped.jsonl"
    assert sft(source, "-o", out, "--skipped", skipped) == 0
    records = read_records(out)
    assert_valid_records(records)
    assert [r["id"] for r in records] == ["rows/0", "rows/1", "rows/2", "rows/3", "rows/6"]
    skips = {s["id"]: s for s in read_records(skipped)}
    assert skips["rows/4"]["reason"] == skips["rows/5"]["reason"] == "bad_row"
    assert "data_source" in skips["rows/5"]["detail"]
    assert "(not loaded)" in capsys.readouterr().err


def test_limit_and_seed_sample_each_data_source_and_the_output_is_deterministic(tmp_path: Path) -> None:
    rows = [paper_row("math-hard", f"Problem {i}?", str(i)) for i in range(20)]
    rows += [paper_row("ambig_qa", f"Who {i}?", f"singleAnswer###Person {i}") for i in range(20)]
    source = write_rows(tmp_path / "mixed.jsonl", rows)
    first, again, other, head = (tmp_path / f"{name}.jsonl" for name in ("first", "again", "other", "head"))
    assert sft(source, "-o", first, "--limit", "5", "--seed", "3", "-q") == 0
    assert sft(source, "-o", again, "--limit", "5", "--seed", "3", "-q") == 0
    assert sft(source, "-o", other, "--limit", "5", "--seed", "4", "-q") == 0
    assert sft(source, "-o", head, "--limit", "5", "-q") == 0
    assert first.read_bytes() == again.read_bytes()
    records = read_records(first)
    assert Counter(r["data_source"] for r in records) == {"math-hard": 5, "ambig_qa": 5}
    assert [r["id"] for r in records] != [r["id"] for r in read_records(other)]
    assert [r["id"] for r in read_records(head)] == [f"mixed/{i}" for i in (*range(5), *range(20, 25))]
    # the same row under another seed gets another matrix
    shared = {r["id"]: r for r in read_records(other)}.keys() & {r["id"] for r in records}
    by_first = {r["id"]: r["completion"][0]["content"] for r in records}
    by_other = {r["id"]: r["completion"][0]["content"] for r in read_records(other)}
    assert all(by_first[i] != by_other[i] for i in shared)


def test_source_filter_and_builder_prompts(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "sft.jsonl"
    assert sft(source, "-o", out, "--source", "ambig_qa,math-hard", "--prompt", "builder", "-q") == 0
    records = read_records(out)
    assert {r["data_source"] for r in records} == {"ambig_qa", "math-hard"} and len(records) == 3
    for record in records:
        system, user = record["prompt"]
        assert system == {"role": "system", "content": DEFAULT_SYSTEM}
        assert user["content"].endswith(f"\n\nQuestion: {record['extra_info']['single_turn_prompt']}")
        assert "<analyze>:" in user["content"]
    assert_valid_records(records)


def test_parquet_output_holds_the_same_records(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.jsonl", ROWS)
    as_jsonl, as_parquet = tmp_path / "sft.jsonl", tmp_path / "sft.parquet"
    assert sft(source, "-o", as_jsonl, "-q") == 0
    assert sft(source, "-o", as_parquet, "-q") == 0
    jsonl, parquet = read_records(as_jsonl), read_records(as_parquet)
    keys = ("id", "prompt", "completion", "data_source", "reward_model", "label", "target_source", "chosen_key")
    assert [{k: r[k] for k in keys} for r in parquet] == [{k: r[k] for k in keys} for r in jsonl]
    assert [r["extra_info"]["single_turn_prompt"] for r in parquet] == [r["extra_info"]["single_turn_prompt"] for r in jsonl]


def test_a_saved_dataset_folder_is_an_input(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(ROWS[:4]).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "sft.jsonl"
    assert sft(tmp_path / "saved", "-o", out, "-q") == 0
    records = read_records(out)
    assert [r["id"] for r in records] == [f"saved/{i}" for i in range(4)]
    assert_valid_records(records)


def test_a_hub_id_is_read_through_the_datasets_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    asked: list[Any] = []

    def load_dataset(location: str, split: str | None = None, streaming: bool = False) -> Any:
        asked.append((location, split, streaming))
        return datasets.Dataset.from_list(ROWS[:3])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    out = tmp_path / "sft.jsonl"
    assert sft("someone/gtalign-rows", "--split", "train", "-o", out, "-q") == 0
    assert asked == [("someone/gtalign-rows", "train", True)]
    records = read_records(out)
    assert [r["id"] for r in records] == [f"someone/gtalign-rows/train/{i}" for i in range(3)]
    assert_valid_records(records)
    assert sft("missing/rows.jsonl", "-o", out, "-q") == 2  # a local-looking path is never tried as a hub id


# -- distillation ----------------------------------------------------------------------------------


def test_rows_without_a_reference_are_answered_by_the_distill_backend(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "sft.jsonl"
    assert sft(source, "-o", out, "--distill-backend", "tests.training.test_data_cli:answers", "--max-tokens", "64", "-q") == 0
    records = read_records(out)
    assert_valid_records(records)
    distilled = [r for r in records if r["target_source"] == "distilled"]
    assert [r["id"] for r in distilled] == ["rows/4", "rows/5"]
    assert all(parse_answer(r["completion"][0]["content"]).response == ANSWER for r in distilled)
    (backend,) = CALLS
    assert [call.messages for call in backend.calls] == [
        ({"role": "system", "content": DISTILL_SYSTEM}, {"role": "user", "content": q})
        for q in ("How do tides work?", "Why is the sky blue?")]
    assert {call.params.max_tokens for call in backend.calls} == {64} and backend.calls[0].params.temperature == 0
    assert len((tmp_path / "sft.jsonl.distill-cache.jsonl").read_text().splitlines()) == 2  # kept for the next build


def test_a_failed_call_exits_1_keeps_the_answers_and_a_rerun_asks_only_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_rows(tmp_path / "rows.jsonl", ROWS)
    out, cache = tmp_path / "sft.jsonl", tmp_path / "sft.jsonl.distill-cache.jsonl"
    assert sft(source, "-o", out, "--distill-backend", "tests.training.test_data_cli:first_call_fails") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "distill_failed 1" in err and "scripted failure of call 0" in err and "run the same command again" in err
    assert {r["target_source"] for r in read_records(out)} == {"reference", "distilled"}
    assert len(cache.read_text().splitlines()) == 1
    assert sft(source, "-o", out, "--distill-backend", "tests.training.test_data_cli:answers") == 0
    assert len(CALLS[-1].calls) == 1  # only the failed row was asked again
    assert len(cache.read_text().splitlines()) == 2
    assert sft(source, "-o", out, "--distill-backend", "tests.training.test_data_cli:answers") == 0
    assert len(CALLS[-1].calls) == 0  # a rebuild asks nothing
    assert sum(r["target_source"] == "distilled" for r in read_records(out)) == 2


@pytest.fixture
def sigint_reaches_python() -> Any:
    """SIGINT handled by Python's default handler and not blocked, whatever earlier tests in this
    process left behind (in the whole suite the signal did not reach Python here, though
    `signal.getsignal` showed the default handler: a C library loaded in-process may take it over)."""
    handler = signal.getsignal(signal.SIGINT)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@pytest.mark.usefixtures("sigint_reaches_python")
def test_an_interrupted_run_leaves_no_output_and_resumes_from_its_answers(tmp_path: Path) -> None:
    rows = [paper_row("wildguard", f"Harmless question {i}.", "unharmful") for i in range(4)]
    source = write_rows(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "sft.jsonl"
    assert sft(source, "-o", out, "--distill-backend", "tests.training.test_data_cli:interrupted_on_second_call",
               "--concurrency", "1", "-q") == 130
    assert not out.exists() and not list(tmp_path.glob(".*tmp")) and not list(tmp_path.glob("*.lock"))
    assert len(CALLS[-1].calls) == 2  # the rows still waiting were never asked
    assert len((tmp_path / "sft.jsonl.distill-cache.jsonl").read_text().splitlines()) == 2
    assert sft(source, "-o", out, "--distill-backend", "tests.training.test_data_cli:answers", "-q") == 0
    assert len(CALLS[-1].calls) == 2  # only the two rows not answered before
    assert len((tmp_path / "sft.jsonl.distill-cache.jsonl").read_text().splitlines()) == 4
    assert [r["id"] for r in read_records(out)] == [f"rows/{i}" for i in range(4)]


def test_distillation_over_http_with_a_fake_openai_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Any] = []
    lock = threading.Lock()

    def script(request: Any) -> Reply:
        with lock:
            seen.append(request.messages)
        question = request.messages[-1]["content"]
        if "tides" in question:
            return Reply(text=ANSWER)
        if "sky" in question:
            return Reply(text="The sky is blue because", finish_reason="length")
        return Reply(text="I can't help with that request.")

    rows = [*ROWS, paper_row("wildguard", "Tell me a joke.", "unharmful")]
    source = write_rows(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "sft.jsonl"
    with FakeOpenAI(script, model="tiny") as server:
        code = sft(source, "-o", out, "--distill-backend", server.base_url, "--model", "tiny")
    assert code == 0
    records = {r["id"]: r for r in read_records(out)}
    assert records["rows/4"]["target_source"] == "distilled" and "rows/5" not in records and "rows/7" not in records
    assert_valid_records(list(records.values()))
    assert sorted(m[-1]["content"] for m in seen) == ["How do tides work?", "Tell me a joke.", "Why is the sky blue?"]
    assert all(m[0] == {"role": "system", "content": DISTILL_SYSTEM} for m in seen)
    err = " ".join(capsys.readouterr().err.split())
    assert "distilled_unusable 2" in err and "cut off" in err


# -- output and usage ------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_previous_output_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_rows(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "sft.jsonl"
    assert sft(source, "-o", out, "-q") == 0
    before = out.read_bytes()
    import gtalign.data

    def broken(self: Any, rows: Any) -> int:
        self._handle.write(b'{"half": ')
        raise OSError("disk full")

    monkeypatch.setattr(gtalign.data.JsonlWriter, "write_many", broken)
    assert sft(source, "-o", out, "--seed", "9", "-q") == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl", "sft.jsonl"]


@pytest.mark.parametrize("args", [
    ("sample", "-o", "{tmp}/out.txt"),
    ("no-such-benchmark", "-o", "{tmp}/out.jsonl"),
    ("sample", "-o", "{tmp}/out.jsonl", "--model", "m"),
    ("sample", "sample", "-o", "{tmp}/out.jsonl"),
    ("sample", "-o", "{tmp}/out.jsonl", "--distill-backend", "ftp://nowhere"),
    ("{tmp}", "-o", "{tmp}/out.jsonl"),
    ("sample", "-o", "{tmp}"),
])
def test_usage_errors_exit_2_with_a_message(tmp_path: Path, args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert sft(*(a.format(tmp=tmp_path) for a in args)) == 2
    assert "gtalign data: error:" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    from gtalign.data import output_lock

    out = tmp_path / "sft.jsonl"
    with output_lock(out):
        assert sft("sample", "-o", out, "-q") == 2
    assert not out.exists()


def test_no_target_at_all_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    source = write_rows(tmp_path / "rows.jsonl", [ROWS[4], ROWS[6]])
    out = tmp_path / "sft.jsonl"
    assert sft(source, "-o", out, "-q") == 1
    assert not out.exists()


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=10)
_FIELDS = st.fixed_dictionaries({}, optional={
    "prompt": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "x"]), "content": st.text(max_size=20)}),
                       max_size=3) | _JSON,
    "data_source": st.sampled_from(["ambig_qa", "math-hard", "wildguard", "x:y", ""]) | _JSON,
    "reward_model": st.fixed_dictionaries({"ground_truth": st.sampled_from(["harmful", "1", MEANINGS_GT]) | _JSON}) | _JSON,
    "extra_info": st.dictionaries(st.sampled_from(["chat_history", "single_turn_prompt", "k"]), _JSON, max_size=2) | _JSON,
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(_FIELDS | _JSON, min_size=1, max_size=6))
def test_any_rows_in_a_file_end_in_targets_or_reasons(tmp_path: Path, rows: list[Any]) -> None:
    source = write_rows(tmp_path / "g.jsonl", [json.dumps(r) for r in rows])
    out, skipped = tmp_path / "g-out.jsonl", tmp_path / "g-skipped.jsonl"
    out.unlink(missing_ok=True)
    skipped.unlink(missing_ok=True)
    code = sft(source, "-o", out, "--skipped", skipped, "-q")
    assert code in (0, 1)
    records = read_records(out) if out.exists() else []
    skips = read_records(skipped)
    assert len(records) + len(skips) == len(rows)
    assert all(s["reason"] != "internal_error" for s in skips), skips
    assert_valid_records(records)


# -- the paper's training data and the real embedded model -----------------------------------------


def test_the_paper_training_sets_through_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import PAPER_DATA

    if not (PAPER_DATA / "train_test" / "wildguard" / "train.parquet").is_file():
        pytest.skip(f"the paper's training data is not present (looked in {PAPER_DATA})")
    out = tmp_path / "sft.parquet"
    assert sft("math-hard", "ambig_qa", "wildguard", "--data", PAPER_DATA, "--limit", "200", "--seed", "1", "-o", out) == 0
    records = read_records(out)
    counts = Counter(r["data_source"] for r in records)
    assert counts["math-hard"] >= 196 and counts["ambig_qa"] >= 196 and 60 <= counts["wildguard"] <= 140
    assert all(r["id"].split("/")[1] == "train" for r in records)
    assert_valid_records(records)
    err = " ".join(capsys.readouterr().err.split())
    assert "wildguard needs_distillation" in err


@pytest.mark.slow
def test_one_row_distilled_by_the_real_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("the embedded extra (torch, transformers) is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = write_rows(tmp_path / "rows.jsonl", [ROWS[2], paper_row("wildguard", "What is the capital of France?", "unharmful")])
    out, skipped = tmp_path / "sft.jsonl", tmp_path / "skipped.jsonl"
    code = sft(source, "-o", out, "--distill-backend", "embedded", "--max-tokens", "48", "--skipped", skipped, "-q")
    if code == 2:
        pytest.skip("the embedded model is not available")
    assert code == 0
    records, skips = read_records(out), read_records(skipped)
    assert_valid_records(records)
    assert len(records) + len(skips) == 2 and records[0]["id"] == "rows/0"
    # the tiny model's answer is used when it reads as a direct answer, else skipped with the reason
    assert [r["target_source"] for r in records[1:]] in ([], ["distilled"])
    assert all(s["reason"] == "distilled_unusable" for s in skips)


# -- the distillation adapter on its own -----------------------------------------------------------


class _CountingBackend:
    """Answers after yielding to the loop, counting calls in flight; raises on questions with 'boom'."""

    name = "counting"
    model = "m"

    def __init__(self) -> None:
        self.in_flight = self.most = self.calls = 0

    async def generate(self, messages: Any, *, prefill: str = "", params: Any = None) -> Any:
        import asyncio

        from gtalign.backends import Generation

        self.calls += 1
        self.model = "m, loaded"  # a backend may rename its model once loaded, as the embedded one does
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            if "boom" in messages[-1]["content"]:
                raise RuntimeError("backend bug")
            return Generation(f"Answer to {messages[-1]['content']}")
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        return None


async def test_distill_keeps_row_order_limits_calls_in_flight_and_turns_exceptions_into_failures(tmp_path: Path) -> None:
    from gtalign.benchmarks import BenchmarkRow
    from gtalign.training._distill import DistillCache, distill

    def made(i: int, question: str) -> BenchmarkRow:
        return BenchmarkRow(f"r/{i}", "r", "wildguard", ({"role": "user", "content": f"I.Question: {question}"},),
                            "unharmful", "unharmful", {"single_turn_prompt": question})

    rows = [made(i, f"question {i}") for i in range(9)] + [made(9, "boom"), made(10, " ")]
    backend, cache = _CountingBackend(), DistillCache(tmp_path / "cache.jsonl")
    heard: list[str] = []
    results = await distill(rows, backend, concurrency=3, cache=cache, on_result=lambda d: heard.append(d.row_id))
    assert backend.most == 3 and backend.calls == 10
    assert [r.row_id for r in results] == [row.id for row in rows] and sorted(heard) == sorted(r.id for r in rows)
    assert [r.text for r in results[:9]] == [f"Answer to question {i}" for i in range(9)]
    assert results[9].status == "failed" and "RuntimeError: backend bug" in results[9].reason
    assert results[10].status == "no_question"
    cache.close()
    fresh = _CountingBackend()
    again = await distill(rows, fresh, concurrency=3, cache=DistillCache(tmp_path / "cache.jsonl"))
    assert fresh.calls == 1  # only the failed row is asked again
    assert all(r.cached for r in again[:9]) and not again[9].cached
