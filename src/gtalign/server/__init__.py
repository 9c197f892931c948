"""The OpenAI-compatible steering proxy behind ``gtalign serve`` (needs the ``serve`` extra).

`create_app` builds the FastAPI app from a `ServerConfig`; ``gtalign serve`` runs it with uvicorn.
Clients send ordinary chat completion requests and receive the steered ``<response>`` text, with
the game record in the extension field ``gtalign`` (see `gtalign.server._app` for the contract:
statuses, streaming, limits). Names are imported on first use, so the command line can read the
configuration's defaults without importing FastAPI.
"""

from __future__ import annotations

from gtalign._lazy import lazy_exports

_EXPORTS = {
    "create_app": "gtalign.server._app",
    "LOGGER_NAME": "gtalign.server._app",
    "ANONYMOUS": "gtalign.server._config",
    "DEFAULT_KEYS_ENV": "gtalign.server._config",
    "ApiKey": "gtalign.server._config",
    "ConfigError": "gtalign.server._config",
    "ServerConfig": "gtalign.server._config",
    "parse_keys": "gtalign.server._config",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
