"""A math check for the worker tests that imports nothing from gtalign: it reports which gtalign
modules the worker process had loaded before its check was unpickled."""

from __future__ import annotations

import sys


def gtalign_modules(response: str, reference: str) -> tuple[bool, str]:
    """``(True, "mod1,mod2,...")``: the ``gtalign`` modules loaded in this process."""
    return True, ",".join(sorted(name for name in sys.modules if name == "gtalign" or name.startswith("gtalign.")))
