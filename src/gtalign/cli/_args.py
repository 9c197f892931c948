"""Argument types shared by every ``gtalign`` command (light: argparse only)."""

from __future__ import annotations

import argparse

from collections.abc import Iterable
from typing import Any

__all__ = ["integer", "key_value", "names", "non_negative_float", "non_negative_int", "positive_float", "positive_int", "yaml_params"]


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (the value may be empty or hold more ``=``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def names(text: str) -> list[str]:
    """``NAME[,NAME...]``: the comma-separated names, blanks dropped (at least one)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected NAME[,NAME...], got {text!r}")
    return parts


def yaml_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as parameters, each value read as YAML (``2`` a number, ``[a, b]`` a
    list), or kept as text when it is not YAML. yaml is imported only here, when a command runs."""
    import yaml

    params: dict[str, Any] = {}
    for key, value in pairs:
        try:
            params[key] = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            params[key] = value
    return params


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value
