"""The one list of what steering may do when the model ignores the four-block protocol.

It lives apart from the engine so that command lines and the server configuration can offer and
check the modes without importing the engine (and its HTTP client).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["DEFAULT_ON_IGNORED", "IGNORED_PROTOCOL", "IgnoredProtocol"]

IgnoredProtocol = Literal["retry", "default", "keep"]
IGNORED_PROTOCOL: tuple[IgnoredProtocol, ...] = get_args(IgnoredProtocol)
DEFAULT_ON_IGNORED: IgnoredProtocol = "retry"
"""Retry once, then take the default action (`Fallback.when_ignored`)."""
