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


def test_every_data_file_of_the_package_is_package_data():
    """A file the code reads at run time (examples, the sample benchmark, the report template) must
    be in a built wheel: pyproject's package-data patterns match every non-Python file under gtalign."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    package = root / "src" / "gtalign"
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["gtalign"]
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    files = {path for path in package.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts}
    assert files - shipped == set()
