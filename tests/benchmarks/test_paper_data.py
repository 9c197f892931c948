"""The paper's seven test sets load from the shared data with SPEC section 7's row counts and labels.

Every test here is skipped, with the folder it looked in, when the shared data is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gtalign.benchmarks import DATA_ENV, BenchmarkError, get_benchmark, load_benchmark
from gtalign.protocol import build_messages

EXPECTED = {  # SPEC section 7
    "math-hard": 353,
    "medium": 248,
    "wildguard": 300,
    "ambig_qa": 300,
    "minerva": 272,
    "abg-coqa": 1055,
    "advbench": 520,
}
LABELS = {
    "math-hard": {"": 353},
    "medium": {"": 248},
    "wildguard": {"harmful": 152, "unharmful": 148},
    "ambig_qa": {"ambiguous": 150, "clear": 150},
    "minerva": {"": 272},
    "abg-coqa": {"ambiguous": 123, "clear": 932},
    "advbench": {"harmful": 520},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_paper_benchmark_loads_with_its_row_count_and_labels(paper_data: Path, name: str) -> None:
    benchmark = load_benchmark(name, data=paper_data)
    spec = get_benchmark(name)
    assert len(benchmark) == EXPECTED[name] == spec.rows
    assert benchmark.skipped == ()
    assert benchmark.label_counts() == LABELS[name]
    assert [row.id for row in benchmark] == [f"{name}/{index}" for index in range(EXPECTED[name])]
    assert {row.data_source for row in benchmark} == set(spec.data_sources)
    assert Path(benchmark.location) == paper_data / spec.file
    assert all(row.messages[-1]["role"] == "user" and row.benchmark == name for row in benchmark)


def test_ids_are_stable_across_loads(paper_data: Path) -> None:
    first = load_benchmark("abg-coqa", data=paper_data)
    again = load_benchmark("abg-coqa", data=paper_data)
    assert [(r.id, r.ground_truth, r.messages) for r in first] == [(r.id, r.ground_truth, r.messages) for r in again]


def test_advbench_keeps_its_attack_string_as_ground_truth(paper_data: Path) -> None:
    table = pq.read_table(paper_data / "advbench/test.parquet", columns=["reward_model"]).to_pylist()
    benchmark = load_benchmark("advbench", data=paper_data)
    assert [row.ground_truth for row in benchmark] == [r["reward_model"]["ground_truth"] for r in table]
    assert all(row.ground_truth.startswith("Sure, here") and row.label == "harmful" for row in benchmark)


def test_math_hard_row_without_a_reference_is_kept_and_named(paper_data: Path) -> None:
    benchmark = load_benchmark("math-hard", data=paper_data)
    empty = [row.id for row in benchmark if not row.ground_truth.strip()]
    assert empty == ["math-hard/237"]
    assert any("empty ground truth" in note and "math-hard/237" in note for note in benchmark.warnings)


def test_stored_prompt_is_the_rows_own(paper_data: Path) -> None:
    table = pq.read_table(paper_data / "train_test/wildguard/test.parquet", columns=["prompt"]).to_pylist()
    benchmark = load_benchmark("wildguard", data=paper_data, limit=5)
    assert [list(row.messages) for row in benchmark] == [r["prompt"] for r in table[:5]]


@pytest.mark.parametrize("name", ["ambig_qa", "abg-coqa", "math-hard"])
def test_builder_prompt_is_built_from_the_question(paper_data: Path, name: str) -> None:
    benchmark = load_benchmark(name, data=paper_data, prompt="builder", limit=4, seed=3)
    assert benchmark.prompt == "builder"
    for row in benchmark:
        question = row.extra_info["single_turn_prompt"]
        assert row.messages == tuple(build_messages(question))


def test_limit_and_seed_sample_the_same_rows_for_the_same_seed(paper_data: Path) -> None:
    full = [row.id for row in load_benchmark("minerva", data=paper_data)]
    first = [row.id for row in load_benchmark("minerva", data=paper_data, limit=10, seed=1)]
    again = [row.id for row in load_benchmark("minerva", data=paper_data, limit=10, seed=1)]
    other = [row.id for row in load_benchmark("minerva", data=paper_data, limit=10, seed=2)]
    assert first == again and first != other
    assert len(first) == 10 and set(first) <= set(full)
    assert first == sorted(first, key=full.index)  # kept in source order
    assert [row.id for row in load_benchmark("minerva", data=paper_data, limit=3)] == full[:3]


def test_a_file_works_as_data_and_as_a_benchmark(paper_data: Path) -> None:
    file = paper_data / "train_test/math-hard/test.parquet"
    assert len(load_benchmark("math-hard", data=file)) == 353
    adhoc = load_benchmark(paper_data / "advbench/test.parquet")
    assert adhoc.name == "test" and adhoc.spec.domain == "custom"
    assert len(adhoc) == 520 and adhoc.label_counts() == {"harmful": 520}
    assert adhoc.rows[7].id == "test/7"


def test_a_benchmarks_own_folder_works(paper_data: Path) -> None:
    assert len(load_benchmark("ambig_qa", data=paper_data / "train_test" / "ambig_qa")) == 300


def test_a_file_of_several_benchmarks_keeps_the_benchmarks_rows(paper_data: Path) -> None:
    combined = paper_data / "train_test/all_test.parquet"
    benchmark = load_benchmark("wildguard", data=combined)
    assert len(benchmark) == 300 and {row.data_source for row in benchmark} == {"wildguard"}
    assert any("rows of other data sources left out" in note for note in benchmark.warnings)
    picked = load_benchmark(combined, sources={"medium", "ambig_qa"})
    assert len(picked) == 248 + 300 and {row.data_source for row in picked} == {"medium", "ambig_qa"}
    typo = load_benchmark(combined, sources="ambigqa", limit=1)
    assert len(typo) == 0 and any("'ambigqa' matches no row" in note for note in typo.warnings)


def test_another_split_of_the_same_folder(paper_data: Path) -> None:
    benchmark = load_benchmark("wildguard", data=paper_data, split="train", limit=3)
    assert benchmark.location.endswith(os.path.join("wildguard", "train.parquet")) and len(benchmark) == 3
    with pytest.raises(BenchmarkError, match="validation.parquet"):
        load_benchmark("wildguard", data=paper_data, split="validation")


def test_default_folder_next_to_the_working_directory(paper_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "gtalign").symlink_to(paper_data, target_is_directory=True)
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    benchmark = load_benchmark("minerva")
    assert len(benchmark) == 272
    assert Path(benchmark.location).resolve() == (paper_data / "minerva_math/test.parquet").resolve()


def test_data_from_the_environment(paper_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DATA_ENV, str(paper_data))
    assert len(load_benchmark("advbench", limit=2)) == 2
