"""Benchmarks: the paper's seven test sets, the shipped `sample`, and any data in their format.

`load_benchmark` reads one by name (or from a file) into a `Benchmark` of `BenchmarkRow`s with
stable ids, reporting the rows it could not use; `list_benchmarks` lists the known ones.
"""

from gtalign.benchmarks._load import DATA_ENV, DEFAULT_DATA, Benchmark, SkippedRow, default_data, load_benchmark, resolve_spec
from gtalign.benchmarks._specs import (
    BUILTIN_BENCHMARKS,
    BenchmarkError,
    BenchmarkSpec,
    LabelRule,
    benchmark_names,
    get_benchmark,
    list_benchmarks,
)
from gtalign.benchmarks._types import BenchmarkRow, Domain, PromptMode

__all__ = [
    "BUILTIN_BENCHMARKS",
    "DATA_ENV",
    "DEFAULT_DATA",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkRow",
    "BenchmarkSpec",
    "Domain",
    "LabelRule",
    "PromptMode",
    "SkippedRow",
    "benchmark_names",
    "default_data",
    "get_benchmark",
    "list_benchmarks",
    "load_benchmark",
    "resolve_spec",
]
