"""Chat model backends behind one interface: OpenAI-compatible HTTP servers (vLLM, SGLang,
llama.cpp, Ollama, llama-cpp-python, any compatible server) and an embedded CPU model.

`EmbeddedBackend` needs the ``embedded`` extra (torch, transformers, gguf); it is imported on
first use so that ``import gtalign.backends`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from gtalign.backends._base import (
    ChatBackend,
    ConstrainingBackend,
    Constraint,
    Generation,
    GenerationStatus,
    Message,
    SamplingParams,
    StreamingBackend,
    TokenCounter,
)
from gtalign.backends._http import CONTINUATION, SERVER_KINDS, ChatTemplate, Detection, HTTPBackend, ServerKind, TextStream

_LAZY = {
    "EmbeddedBackend": "gtalign.backends._embedded",
    "LoadInfo": "gtalign.backends._embedded",
    "LlamaCppBackend": "gtalign.backends._llamacpp",
}

__all__ = [
    "CONTINUATION",
    "SERVER_KINDS",
    "ChatBackend",
    "ChatTemplate",
    "ConstrainingBackend",
    "Constraint",
    "Detection",
    "EmbeddedBackend",
    "Generation",
    "GenerationStatus",
    "HTTPBackend",
    "LlamaCppBackend",
    "LoadInfo",
    "Message",
    "SamplingParams",
    "ServerKind",
    "StreamingBackend",
    "TextStream",
    "TokenCounter",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gtalign.backends' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ImportError(f"{name} needs the embedded extra: pip install 'gtalign[embedded]' ({exc})") from exc
