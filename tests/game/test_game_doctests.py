"""The docstring examples of the game modules are part of the documentation, so they must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["_payoff", "_welfare", "_pareto", "_decision", "_pricing", "_equilibria"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"gtalign.game.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_module_has_examples() -> None:
    finder = doctest.DocTestFinder()
    for name in MODULES:
        module = importlib.import_module(f"gtalign.game.{name}")
        assert any(t.examples for t in finder.find(module)), name
