"""The one registry: names, dotted paths, user entries and helpful errors."""

from __future__ import annotations

import pytest

from gtalign._registry import REGISTRY, Registry, RegistryError


def test_builtin_names_resolve_lazily():
    for kind in ("preset", "welfare", "task", "pricing", "judge"):
        for name in REGISTRY.names(kind):
            assert REGISTRY.get(kind, name) is not None


def test_unknown_name_lists_valid_names():
    with pytest.raises(RegistryError, match="paper-user"):
        REGISTRY.get("preset", "nope")


def test_dotted_path_escape_hatch():
    assert REGISTRY.get("welfare", "gtalign.game._welfare:nash")().kind == "nash"


def test_register_and_replace():
    registry = Registry()
    registry.register("task", "my-source", "gtalign.reward._tasks:MATH")
    assert registry.get("task", "my-source").task == "math"
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("task", "my-source", object())
    registry.register("task", "my-source", "gtalign.reward._tasks:WRITING", replace=True)
    assert registry.get("task", "my-source").task == "writing"


def test_objects_take_no_parameters():
    with pytest.raises(RegistryError, match="takes no parameters"):
        REGISTRY.create("task", "math-hard", weight=1)


def test_unknown_kind():
    with pytest.raises(RegistryError, match="valid: preset"):
        REGISTRY.names("nope")  # type: ignore[arg-type]


def test_bad_dotted_path():
    with pytest.raises(RegistryError, match="cannot import"):
        REGISTRY.get("preset", "no_such_module:thing")


def test_every_builtin_benchmark_is_in_the_registry() -> None:
    from gtalign._registry import REGISTRY
    from gtalign.benchmarks import list_benchmarks

    names = {"math-hard", "medium", "wildguard", "ambig_qa", "minerva", "abg-coqa", "advbench", "sample"}
    assert names <= set(REGISTRY.names("benchmark"))
    assert {spec.name for spec in list_benchmarks()} >= names
    assert all(REGISTRY.get("benchmark", name).name == name for name in names)
