"""Benchmarks: the paper's seven test sets, the shipped `sample`, and any data in their format."""

from gtalign.benchmarks._types import BenchmarkRow, Domain, PromptMode

__all__ = ["BenchmarkRow", "Domain", "PromptMode"]
