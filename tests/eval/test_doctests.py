"""The docstring examples of the evaluation modules are documentation, so they must run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["gtalign.eval._answer", "gtalign.eval._config"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
