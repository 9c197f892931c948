"""Benchmark specs: the built-ins, the listing, user benchmarks by name, validation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gtalign._registry import REGISTRY
from gtalign.benchmarks import BUILTIN_BENCHMARKS, BenchmarkError, BenchmarkSpec, get_benchmark, list_benchmarks, load_benchmark
from tests.benchmarks.conftest import paper_row

PAPER = ["math-hard", "medium", "wildguard", "ambig_qa", "minerva", "abg-coqa", "advbench"]
DOTTED = BenchmarkSpec("dotted", "custom", "mine/test.jsonl", ("math-hard",), "none")


@pytest.fixture
def registered() -> Iterator[Callable[[str, object], None]]:
    """``register(name, target)`` into the global registry; after the test each name is back to
    what it was (a built-in it replaced is restored, not removed)."""
    saved: dict[str, object | None] = {}

    def register(name: str, target: object) -> None:
        if name not in saved:
            saved[name] = REGISTRY.get("benchmark", name) if ("benchmark", name) in REGISTRY else None
        REGISTRY.register("benchmark", name, target, replace=True)

    yield register
    for name, before in saved.items():
        if before is None:
            REGISTRY.unregister("benchmark", name)
        else:
            REGISTRY.register("benchmark", name, before, replace=True)


def test_builtins_cover_the_papers_seven_test_sets_and_sample() -> None:
    assert [spec.name for spec in BUILTIN_BENCHMARKS] == [*PAPER, "sample"]
    domains = {spec.name: spec.domain for spec in BUILTIN_BENCHMARKS}
    assert {name for name, domain in domains.items() if domain == "in-domain"} == {"math-hard", "medium", "wildguard", "ambig_qa"}
    assert {name for name, domain in domains.items() if domain == "out-of-domain"} == {"minerva", "abg-coqa", "advbench"}
    labels = {spec.name: spec.labels for spec in BUILTIN_BENCHMARKS}
    assert (labels["ambig_qa"], labels["abg-coqa"], labels["wildguard"], labels["advbench"]) == ("ambiguity", "ambiguity", "safety", "harmful")
    assert all(get_benchmark(name).data_sources == (name,) for name in PAPER)


def test_listing_has_name_domain_and_rows_in_domain_first(registered: Callable[[str, object], None]) -> None:
    listed = list_benchmarks()
    assert [spec.name for spec in listed] == [*PAPER, "sample"]
    assert [spec.rows for spec in listed] == [353, 248, 300, 300, 272, 1055, 520, 33]
    registered("zz-mine", BenchmarkSpec("zz-mine", "in-domain", "mine/test.parquet"))
    names = [spec.name for spec in list_benchmarks()]
    assert names.index("zz-mine") < names.index("minerva")  # grouped with the in-domain ones


def test_a_user_benchmark_by_name(registered: Callable[[str, object], None], write_jsonl: Callable[..., Path], tmp_path: Path) -> None:
    write_jsonl("mine/test.jsonl", [paper_row("math-hard", "1 + 2?", "3"), paper_row("medium", "x", "y")])
    registered("mine", lambda: BenchmarkSpec("mine", "custom", "mine/test.jsonl", ("math-hard",)))
    benchmark = load_benchmark("mine", data=tmp_path)
    assert [row.id for row in benchmark] == ["mine/0"] and benchmark.spec.name == "mine"
    assert [spec.name for spec in list_benchmarks()][-1] == "mine"


def test_a_user_entry_replaces_a_builtin(registered: Callable[[str, object], None]) -> None:
    mine = BenchmarkSpec("medium", "in-domain", "writing/test.parquet", ("medium",), "none", 10)
    registered("medium", mine)
    assert get_benchmark("medium") is mine
    assert [spec.rows for spec in list_benchmarks() if spec.name == "medium"] == [10]


def test_dotted_path_and_bad_entries(registered: Callable[[str, object], None]) -> None:
    assert get_benchmark("tests.benchmarks.test_specs:DOTTED") is DOTTED
    with pytest.raises(BenchmarkError, match="cannot import"):
        get_benchmark("no_such_module:THING")
    registered("broken", 42)
    with pytest.raises(BenchmarkError, match="'broken' is registered as int, not a BenchmarkSpec"):
        get_benchmark("broken")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "a/b"}, "without '/'"),
        ({"name": " "}, "non-empty"),
        ({"domain": "ood"}, "domain must be one of in-domain, out-of-domain, custom"),
        ({"labels": "harm"}, "labels must be one of task, ambiguity, safety, harmful, none"),
        ({"data_sources": "math-hard"}, "tuple of names"),
        ({"file": "/abs/test.parquet"}, "relative to the data folder"),
    ],
)
def test_spec_validation(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        BenchmarkSpec(**{"name": "x", "domain": "custom", **fields})  # type: ignore[arg-type]


def test_file_for_another_split() -> None:
    spec = get_benchmark("ambig_qa")
    assert (spec.file_for(), spec.file_for("train")) == ("train_test/ambig_qa/test.parquet", "train_test/ambig_qa/train.parquet")
    with pytest.raises(BenchmarkError, match="has no file in the paper's layout"):
        BenchmarkSpec("hub-only", "custom").file_for()
