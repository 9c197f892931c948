"""The docstring examples of the protocol's grammar are part of its documentation, so they must run."""

from __future__ import annotations

import doctest

from gtalign.protocol import _grammar


def test_grammar_docstring_examples() -> None:
    result = doctest.testmod(_grammar, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0
