"""What each benchmark is: its file in the paper's layout, its data sources and how its rows get
their labels; the paper's seven test sets and the shipped `sample`, and the lookup by name.

Built-ins are plain constants here. A name is looked up in `gtalign._registry.REGISTRY` (kind
``"benchmark"``) first, so a user's entry (or a later built-in table entry) wins, then among the
built-ins; nothing is registered as a side effect of importing or loading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from typing import Literal, get_args

from gtalign._registry import REGISTRY, Registry, RegistryError
from gtalign.benchmarks._types import Domain

__all__ = [
    "ABG_COQA",
    "ADVBENCH",
    "AMBIG_QA",
    "BUILTIN_BENCHMARKS",
    "MATH_HARD",
    "MEDIUM",
    "MINERVA",
    "SAMPLE",
    "WILDGUARD",
    "BenchmarkError",
    "BenchmarkSpec",
    "LabelRule",
    "benchmark_names",
    "get_benchmark",
    "list_benchmarks",
]

LabelRule = Literal["task", "ambiguity", "safety", "harmful", "none"]
"""How a row gets its label. ``task``: the task registered for the row's data source decides
(`gtalign.reward.TaskSpec.label`), so a mixed file gets each row's own; ``ambiguity``: ``ambiguous``
/ ``clear`` from the ground truth (required); ``safety``: ``harmful`` / ``unharmful`` (required);
``harmful``: every row is harmful whatever its ground truth (AdvBench); ``none``: no label."""

_DOMAINS: tuple[str, ...] = get_args(Domain)
_LABEL_RULES: tuple[str, ...] = get_args(LabelRule)


class BenchmarkError(ValueError):
    """A benchmark that cannot be found or opened at all (unknown name, no data, a bad option)."""


@dataclass(frozen=True, slots=True)
class BenchmarkSpec:
    """One benchmark: where its rows are and how to read them.

    ``file`` is its test split relative to a folder in the paper's layout (``data=`` or
    ``GTALIGN_DATA``); ``path`` is a file of its own (the shipped ``sample``, an ad-hoc file), read
    instead of any data folder. ``data_sources`` keeps only rows of those sources (empty: every
    row), so one file or hub dataset holding several benchmarks can serve each. ``rows`` is the
    number of rows of the test split when known, for listings.
    """

    name: str
    domain: Domain
    file: str = ""
    data_sources: tuple[str, ...] = ()
    labels: LabelRule = "task"
    rows: int | None = None
    description: str = ""
    path: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "/" in self.name:
            raise BenchmarkError(f"benchmark name must be a non-empty string without '/', got {self.name!r}")
        if self.domain not in _DOMAINS:
            raise BenchmarkError(f"benchmark {self.name!r}: domain must be one of {', '.join(_DOMAINS)}, got {self.domain!r}")
        if self.labels not in _LABEL_RULES:
            raise BenchmarkError(f"benchmark {self.name!r}: labels must be one of {', '.join(_LABEL_RULES)}, got {self.labels!r}")
        if isinstance(self.data_sources, str):
            raise BenchmarkError(f"benchmark {self.name!r}: data_sources must be a tuple of names, got the string {self.data_sources!r}")
        object.__setattr__(self, "data_sources", tuple(self.data_sources))
        if self.file and PurePosixPath(self.file).is_absolute():
            raise BenchmarkError(f"benchmark {self.name!r}: file is relative to the data folder, got {self.file!r} (use path= for a file of its own)")

    def file_for(self, split: str | None = None) -> str:
        """``file``, or its sibling for another split (``train`` -> ``.../train.parquet``)."""
        if not self.file:
            raise BenchmarkError(f"benchmark {self.name!r} has no file in the paper's layout: pass its file or a dataset hub id as data")
        if split is None:
            return self.file
        relative = PurePosixPath(self.file)
        return str(relative.with_name(f"{split}{relative.suffix}"))


def _packaged(name: str) -> str:
    return str(resources.files("gtalign.benchmarks") / name)


MATH_HARD = BenchmarkSpec(
    "math-hard", "in-domain", "train_test/math-hard/test.parquet", ("math-hard",), "none", 353,
    "competition maths (hard), a final answer checked against the reference",
)
MEDIUM = BenchmarkSpec(
    "medium", "in-domain", "train_test/medium/test.parquet", ("medium",), "none", 248,
    "article writing, compared with a reference article and judged for helpfulness",
)
WILDGUARD = BenchmarkSpec(
    "wildguard", "in-domain", "train_test/wildguard/test.parquet", ("wildguard",), "safety", 300,
    "harmful and unharmful requests: refuse the first, help with the second",
)
AMBIG_QA = BenchmarkSpec(
    "ambig_qa", "in-domain", "train_test/ambig_qa/test.parquet", ("ambig_qa",), "ambiguity", 300,
    "open-domain questions, ambiguous (ask or cover the readings) or clear (answer)",
)
MINERVA = BenchmarkSpec(
    "minerva", "out-of-domain", "minerva_math/test.parquet", ("minerva",), "none", 272,
    "science and engineering maths, a final answer checked against the reference",
)
ABG_COQA = BenchmarkSpec(
    "abg-coqa", "out-of-domain", "abg_coqa/test.parquet", ("abg-coqa",), "ambiguity", 1055,
    "questions about a passage after earlier turns, 123 of them ambiguous",
)
ADVBENCH = BenchmarkSpec(
    "advbench", "out-of-domain", "advbench/test.parquet", ("advbench",), "harmful", 520,
    "harmful requests only; the ground truth is the attack's target string, kept as stored",
)
SAMPLE = BenchmarkSpec(
    "sample", "custom", data_sources=(), labels="task", rows=33,
    description="33 short rows of all seven tasks, shipped with gtalign, for a quick run anywhere",
    path=_packaged("sample.jsonl"),
)

BUILTIN_BENCHMARKS: tuple[BenchmarkSpec, ...] = (MATH_HARD, MEDIUM, WILDGUARD, AMBIG_QA, MINERVA, ABG_COQA, ADVBENCH, SAMPLE)
_BUILTINS = {spec.name: spec for spec in BUILTIN_BENCHMARKS}


def benchmark_names(registry: Registry = REGISTRY) -> list[str]:
    """Every benchmark name: the built-ins in their order, then the registry's other names."""
    registered = registry.names("benchmark")
    return list(_BUILTINS) + [name for name in registered if name not in _BUILTINS]


def get_benchmark(name: str, registry: Registry = REGISTRY) -> BenchmarkSpec:
    """The spec registered as ``name`` (or a dotted path to one), else the built-in of that name.

    A registry entry may be a `BenchmarkSpec` or a function that returns one."""
    if ("benchmark", name) in registry or (":" in name and name not in _BUILTINS):
        try:
            target: BenchmarkSpec | Callable[[], BenchmarkSpec] = registry.get("benchmark", name)
        except RegistryError as exc:
            raise BenchmarkError(str(exc)) from exc
        spec = target if isinstance(target, BenchmarkSpec) else target() if callable(target) else target
        if not isinstance(spec, BenchmarkSpec):
            raise BenchmarkError(f"benchmark {name!r} is registered as {type(spec).__name__}, not a BenchmarkSpec")
        return spec
    if name in _BUILTINS:
        return _BUILTINS[name]
    raise BenchmarkError(
        f"unknown benchmark {name!r}; valid: {', '.join(benchmark_names(registry))} "
        "(or a .jsonl/.parquet file with a data_source column, or a dotted path 'module:attribute')"
    )


_DOMAIN_ORDER = {domain: rank for rank, domain in enumerate(_DOMAINS)}


def list_benchmarks(registry: Registry = REGISTRY) -> tuple[BenchmarkSpec, ...]:
    """Every known benchmark's spec (name, domain, rows when known), in-domain first, for listings."""
    specs = [get_benchmark(name, registry) for name in benchmark_names(registry)]
    return tuple(sorted(specs, key=lambda spec: _DOMAIN_ORDER[spec.domain]))
