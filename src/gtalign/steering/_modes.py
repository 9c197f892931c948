"""The one list of what steering may do when the model ignores the four-block protocol, and of the
constrained-decoding modes.

It lives apart from the engine so that command lines and the server configuration can offer and
check the modes without importing the engine (and its HTTP client).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["CONSTRAIN_MODES", "DEFAULT_ON_IGNORED", "IGNORED_PROTOCOL", "ConstrainMode", "IgnoredProtocol"]

IgnoredProtocol = Literal["retry", "default", "keep"]
IGNORED_PROTOCOL: tuple[IgnoredProtocol, ...] = get_args(IgnoredProtocol)
DEFAULT_ON_IGNORED: IgnoredProtocol = "retry"
"""Retry once, then take the default action (`Fallback.when_ignored`)."""

ConstrainMode = Literal["off", "auto", "on"]
CONSTRAIN_MODES: tuple[ConstrainMode, ...] = get_args(ConstrainMode)
"""``off``: no grammar; ``auto``: enforced wherever the backend can, recorded where it cannot;
``on``: a call the backend cannot constrain fails."""
