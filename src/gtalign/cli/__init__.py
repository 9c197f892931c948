"""The ``gtalign`` command line: ``gtalign score`` and ``gtalign inspect``."""

from gtalign.cli._main import main

__all__ = ["main"]
