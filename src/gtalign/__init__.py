"""gtalign: game-theoretic alignment of LLM assistants for social welfare (arXiv 2510.08872)."""

__version__ = "0.1.0"
