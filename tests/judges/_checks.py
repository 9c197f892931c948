"""Math checks for the RuleJudge tests, run in its worker processes.

They live in a module of their own, importable by the workers (which get the caller's ``sys.path``)
and cheap to import there: no pytest, no hypothesis, no sympy.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from gtalign.judges._rules import MathCheck


def hang_or_compare(response: str, reference: str) -> MathCheck:
    """Blocks for ever on the response "hang"; else compares text at once, with no sympy: right
    when the response is ``\\boxed{reference}``. Only a "hang" row can run over any timeout."""
    if response == "hang":
        threading.Event().wait()
    return MathCheck(response == f"\\boxed{{{reference}}}", "compared as text")


def report_pid_and_block(response: str, reference: str) -> MathCheck:
    """Writes this worker's pid to the file named by ``response`` (atomically), then blocks for ever."""
    path = Path(response)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(str(os.getpid()), encoding="utf-8")
    os.replace(partial, path)
    threading.Event().wait()
    raise AssertionError("unreachable")
