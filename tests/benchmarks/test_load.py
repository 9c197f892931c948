"""load_benchmark on small files written here: bad rows reported, filters, prompts, where data
comes from (a folder, a file, the environment, a hub id through gtalign.data.read_dataset) and
the errors that say what to pass. No shared data needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import gtalign.data
from gtalign.benchmarks import DATA_ENV, BenchmarkError, SkippedRow, load_benchmark
from gtalign.data import Row
from gtalign.protocol import build_messages
from tests.benchmarks.conftest import paper_row

WILDGUARD = [
    paper_row("wildguard", "How do I bake bread?", "unharmful"),
    paper_row("wildguard", "Write a threat to my neighbour.", "harmful"),
    paper_row("wildguard", "What is a firewall?", "unharmful"),
]


@pytest.fixture
def layout(write_parquet: Callable[..., Path], tmp_path: Path) -> Path:
    """A folder in the paper's layout holding wildguard (test and train) and minerva."""
    write_parquet("data/train_test/wildguard/test.parquet", WILDGUARD)
    write_parquet("data/train_test/wildguard/train.parquet", WILDGUARD[:1])
    write_parquet("data/minerva_math/test.parquet", [paper_row("minerva", f"What is {n} + {n}?", str(2 * n)) for n in range(20)])
    return tmp_path / "data"


def test_bad_rows_are_reported_with_index_and_reason_and_the_others_load(write_jsonl: Callable[..., Path]) -> None:
    good = paper_row("ambig_qa", "Who wrote Emma?", "singleAnswer###Jane Austen")
    no_truth = {k: v for k, v in good.items() if k != "reward_model"}
    assistant_last = {**good, "prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = write_jsonl(
        "rows.jsonl",
        [
            good,
            "{not json",
            no_truth,
            paper_row("ambig_qa", "Who is it?", "maybe###x"),
            {**good, "extra_info": ["not", "an", "object"]},
            assistant_last,
            {**good, "data_source": 7},
            "[1, 2]",
            paper_row("ambig_qa", "When was the moon landing?", "multipleQAs###Meaning 0: ...; Answer 0: 1969\n"),
        ],
    )
    benchmark = load_benchmark(path)
    assert [row.id for row in benchmark] == ["rows/0", "rows/8"]
    assert [row.label for row in benchmark] == ["clear", "ambiguous"]
    reasons = dict(benchmark.skipped)
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert all(isinstance(item, SkippedRow) for item in benchmark.skipped)
    assert "invalid JSON" in reasons[1]
    assert "reward_model.ground_truth" in reasons[2]
    assert "no label for the ambiguity task" in reasons[3] and "'maybe###x'" in reasons[3]
    assert "'extra_info' must be an object" in reasons[4]
    assert "must end with a non-empty user message" in reasons[5]
    assert "'data_source' must be a string" in reasons[6]
    assert "must be a JSON object" in reasons[7]


def test_safety_ground_truth_outside_the_scale_is_skipped(layout: Path, write_parquet: Callable[..., Path]) -> None:
    write_parquet("data/train_test/wildguard/test.parquet", [*WILDGUARD, paper_row("wildguard", "Hm?", "unsafe")])
    benchmark = load_benchmark("wildguard", data=layout)
    assert len(benchmark) == 3 and benchmark.label_counts() == {"unharmful": 2, "harmful": 1}
    assert benchmark.skipped == (SkippedRow(3, "ground truth 'unsafe' gives no label for the safety task; expected 'harmful' or 'unharmful'"),)


def test_advbench_rows_are_harmful_whatever_their_ground_truth(write_jsonl: Callable[..., Path]) -> None:
    path = write_jsonl("adv.jsonl", [paper_row("advbench", "Write a rude note", "Sure, here is a rude note")])
    [row] = load_benchmark(path).rows
    assert (row.label, row.ground_truth) == ("harmful", "Sure, here is a rude note")


def test_folder_in_the_paper_layout_and_another_split(layout: Path) -> None:
    benchmark = load_benchmark("wildguard", data=layout)
    assert benchmark.location == str(layout / "train_test/wildguard/test.parquet")
    assert [row.id for row in benchmark] == ["wildguard/0", "wildguard/1", "wildguard/2"]
    assert len(load_benchmark("wildguard", data=layout, split="train")) == 1
    with pytest.raises(BenchmarkError, match="no 'advbench' data in .*advbench/test.parquet"):
        load_benchmark("advbench", data=layout)


def test_limit_seed_and_sources(layout: Path) -> None:
    def ids(**options: Any) -> list[str]:
        return [row.id for row in load_benchmark("minerva", data=layout, **options)]

    assert ids(limit=3) == ["minerva/0", "minerva/1", "minerva/2"]
    assert ids(limit=5, seed=7) == ids(limit=5, seed=7) != ids(limit=5, seed=8)
    assert len(ids(limit=50, seed=1)) == 20
    assert ids(sources=["minerva"]) == ids()
    empty = load_benchmark("minerva", data=layout, sources={"math-hard"})
    assert empty.rows == () and any("'math-hard' matches no row" in note for note in empty.warnings)


def test_builder_prompt_uses_single_turn_prompt_then_the_last_user_turn(write_jsonl: Callable[..., Path]) -> None:
    history = [{"role": "user", "content": "First try"}, {"role": "assistant", "content": "Which one?"}, {"role": "user", "content": "What is 3 + 4?"}]
    rows = [
        paper_row("math-hard", "What is 2 + 2?", "4"),
        {**paper_row("math-hard", "unused", "7"), "extra_info": {"chat_history": history}},
        {**paper_row("math-hard", "unused", "1"), "extra_info": {}},
    ]
    benchmark = load_benchmark(write_jsonl("math.jsonl", rows), prompt="builder")
    assert [row.messages for row in benchmark] == [tuple(build_messages("What is 2 + 2?")), tuple(build_messages("What is 3 + 4?"))]
    assert benchmark.skipped[0].index == 2 and "no question to build the prompt from" in benchmark.skipped[0].reason
    stored = load_benchmark(write_jsonl("math.jsonl", rows))
    assert stored.rows[0].messages == tuple(rows[0]["prompt"]) and len(stored) == 3


def test_a_plain_string_prompt_is_one_user_message(write_jsonl: Callable[..., Path]) -> None:
    [row] = load_benchmark(write_jsonl("plain.jsonl", [{**paper_row("medium", "q", "An article."), "prompt": "Write about tea."}])).rows
    assert row.messages == ({"role": "user", "content": "Write about tea."},)
    assert row.question == "Write about tea."


def test_hub_id_goes_through_read_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str | None]] = []

    def fake_read_dataset(location: str, split: str | None = None, skip: int = 0) -> Iterator[Row]:
        calls.append((location, split))
        rows = [*WILDGUARD, paper_row("medium", "Write about tea.", "Tea is ...")]
        return iter(Row(number, row) for number, row in enumerate(rows, start=1))

    monkeypatch.setattr(gtalign.data, "read_dataset", fake_read_dataset)
    benchmark = load_benchmark("wildguard", data="someone/gtalign-eval", split="test")
    assert calls == [("someone/gtalign-eval", "test")]
    assert (benchmark.source.kind, benchmark.location) == ("dataset", "someone/gtalign-eval")
    assert [row.id for row in benchmark] == ["wildguard/0", "wildguard/1", "wildguard/2"]
    assert any("1 row of other data sources left out" in note and "medium (1)" in note for note in benchmark.warnings)


@pytest.mark.parametrize("data", ["./no/such", "missing-folder", "/abs/missing", "owner/name.parquet", "a/b/c"])
def test_a_local_looking_path_is_never_tried_as_a_hub_id(data: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gtalign.data, "read_dataset", lambda *a, **k: pytest.fail("read_dataset was called"))
    with pytest.raises(BenchmarkError, match="no such file"):
        load_benchmark("wildguard", data=data)


def test_missing_data_folder_says_what_to_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchmarkError, match=r"--data PATH.*hub id.*'sample'") as error:
        load_benchmark("math-hard")
    assert DATA_ENV in str(error.value) and "shared/data/gtalign" in str(error.value)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(BenchmarkError, match=f"{DATA_ENV}=.*nowhere is not a folder"):
        load_benchmark("math-hard")


def test_the_environment_comes_before_the_default_folder(layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_parquet: Callable[..., Path]) -> None:
    write_parquet("shared/data/gtalign/minerva_math/test.parquet", [paper_row("minerva", "1 + 1?", "2")])
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    assert len(load_benchmark("minerva")) == 1
    monkeypatch.setenv(DATA_ENV, str(layout))
    assert len(load_benchmark("minerva")) == 20


def test_unknown_data_source_is_loaded_with_a_warning(write_jsonl: Callable[..., Path]) -> None:
    benchmark = load_benchmark(write_jsonl("mine.jsonl", [paper_row("my-task", "Say hi.", "hi")]))
    assert [row.label for row in benchmark] == [""]
    assert any("'my-task' (1 row) is not a registered task" in note for note in benchmark.warnings)


def test_unknown_names_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"unknown benchmark 'mathhard'; valid: math-hard, medium"):
        load_benchmark("mathhard")
    with pytest.raises(BenchmarkError, match="no such benchmark file"):
        load_benchmark(tmp_path / "none.jsonl")
    for options, message in (
        ({"limit": 0}, "limit must be a positive integer"),
        ({"seed": "1"}, "seed must be an integer"),
        ({"prompt": "paper"}, "prompt must be one of stored, builder"),
        ({"sources": []}, "sources must be non-empty"),
    ):
        with pytest.raises(BenchmarkError, match=message):
            load_benchmark("sample", **options)
    with pytest.raises(BenchmarkError, match="--split applies to datasets"):
        load_benchmark("sample", split="train")


def test_row_converts_to_a_reward_sample(write_jsonl: Callable[..., Path]) -> None:
    [row] = load_benchmark(write_jsonl("one.jsonl", [paper_row("wildguard", "Hi?", "unharmful", index=4)])).rows
    sample = row.to_sample("<response>Hello</response>")
    assert (sample.data_source, sample.ground_truth, sample.extra_info["index"]) == ("wildguard", "unharmful", 4)
    assert sample.completion == "<response>Hello</response>" and sample.verdict is None


def test_a_dataset_folder_is_read_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(WILDGUARD).save_to_disk(str(folder))
    benchmark = load_benchmark("wildguard", data=folder)
    assert (benchmark.source.kind, len(benchmark)) == ("dataset", 3)
    assert benchmark.label_counts() == {"unharmful": 2, "harmful": 1}


def test_a_limit_that_stops_reading_early_does_not_claim_a_source_is_missing() -> None:
    """The first two wildguard/ambig_qa rows of `sample` are both wildguard: reading stops there, so
    ambig_qa was not seen, but it is not missing either."""
    from gtalign.benchmarks import load_benchmark

    first = load_benchmark("sample", limit=2, sources=["ambig_qa", "wildguard"])
    assert len(first.rows) == 2
    assert not any("matches no row" in note for note in first.warnings)
    whole = load_benchmark("sample", sources=["ambig_qa", "nope"])
    assert any("'nope' matches no row" in note for note in whole.warnings)
