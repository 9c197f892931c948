"""Building the proxy's model backend from its one-string spec (``ServerConfig.backend``)."""

from __future__ import annotations

import inspect
import os
import pkgutil
from typing import Any

from gtalign.backends._base import ChatBackend
from gtalign.server._config import ConfigError, ServerConfig

__all__ = ["build_backend", "describe_backend_spec"]


def describe_backend_spec() -> str:
    return ("'embedded', 'embedded:base' (the plain default model), 'embedded:PATH' (a local Hugging Face model folder, "
            ".gguf file or LoRA adapter folder), an http(s):// URL, or module:attr")


def _embedded(path: str | os.PathLike[str] | None) -> ChatBackend:
    try:
        from gtalign.backends._embedded import EmbeddedBackend
    except ImportError as exc:
        raise ConfigError(f"the embedded backend needs its extra: pip install 'gtalign[embedded]' ({exc})") from None
    backend = EmbeddedBackend() if path is None else EmbeddedBackend(path)
    try:
        backend.load()  # at start-up, so the first request does not pay for it and a bad model fails now
    except (OSError, RuntimeError, ValueError, ImportError) as exc:
        raise ConfigError(f"cannot load the embedded model {path or '(default SmolLM2-135M-Instruct)'}: {exc}") from None
    return backend


def _http(config: ServerConfig) -> ChatBackend:
    try:
        from gtalign.backends._http import HTTPBackend
    except ImportError as exc:
        raise ConfigError(f"the HTTP backend is not available in this installation ({exc})") from None
    options = {} if config.backend_api_key_env is None else {"api_key_env": config.backend_api_key_env}
    try:
        return HTTPBackend(config.backend, config.backend_model, kind=config.backend_kind, **options)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"backend {config.backend}: {exc}") from None


def _dotted(spec: str) -> ChatBackend:
    try:
        target: Any = pkgutil.resolve_name(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"backend {spec!r} does not import: {exc}; valid: {describe_backend_spec()}") from None
    if inspect.isclass(target) or (callable(target) and not isinstance(target, ChatBackend)):
        try:
            target = target()  # a class or a factory
        except TypeError as exc:
            raise ConfigError(f"backend {spec!r} must be a ChatBackend or take no arguments: {exc}") from None
    if not isinstance(target, ChatBackend):
        raise ConfigError(f"backend {spec!r} is a {type(target).__name__}, not a ChatBackend (needs generate() and aclose())")
    return target


def build_backend(config: ServerConfig) -> ChatBackend:
    """The backend ``config.backend`` names; a `ConfigError` says what to install or pass instead."""
    spec = config.backend
    if spec == "embedded" or spec.startswith("embedded:"):
        from gtalign.backends._model_store import embedded_model

        return _embedded(embedded_model(spec.partition(":")[2]))
    if spec.startswith(("http://", "https://")):
        return _http(config)
    if ":" in spec or "." in spec:
        return _dotted(spec)
    raise ConfigError(f"unknown backend {spec!r}; valid: {describe_backend_spec()}")
