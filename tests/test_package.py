"""The top-level package: lazy exports that resolve, and a version."""

from __future__ import annotations

import pytest

import gtalign


def test_every_export_resolves():
    for name in gtalign.__all__:
        assert getattr(gtalign, name) is not None


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gtalign.nope  # noqa: B018
