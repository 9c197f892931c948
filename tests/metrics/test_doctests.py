"""The metrics modules' docstring examples are documentation, so they must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["_bootstrap", "_pareto"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"gtalign.metrics.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
