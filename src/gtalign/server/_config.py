"""Typed configuration of the steering proxy, merged in layers: defaults < file < environment < flags.

`ServerConfig` is what `create_app` and ``gtalign serve`` both take, so a setting is defined once.
API keys never appear in a config's repr or in logs: each key has an ``id`` that the request log
shows instead, and keys are looked up by their SHA-256 digest.

Keys come from a YAML/JSON file (``--api-keys-file``) or an environment variable
(``GTALIGN_API_KEYS`` by default), in one of two forms:

* a list of entries ``{"key": "...", "id": "alice", "pricing": "NAME", "allow_override": true}``
  (``id``, ``pricing`` and ``allow_override`` are optional), or a mapping ``{"keys": [...]}``;
* the compact form ``KEY[=PRICING],KEY[=PRICING],...`` (split at the last ``=``; a key with a
  comma, or one ending in ``=`` that also needs a pricing, must use the list form), whose keys
  never allow per-request overrides.

With no key configured the server is open (every request is "anonymous", and may choose its own
pricing policy and rule); ``gtalign serve`` refuses that on a non-loopback host unless told
``--no-auth``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gtalign._settings_file import read_settings_file
from gtalign.steering import _modes

__all__ = ["ANONYMOUS", "ApiKey", "ConfigError", "DEFAULT_KEYS_ENV", "ServerConfig", "digest", "parse_keys"]

DEFAULT_KEYS_ENV = "GTALIGN_API_KEYS"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_OPTIONAL_TEXT = ("backend_model", "backend_api_key_env")


class ConfigError(ValueError):
    """A setting that cannot work as given; the message names it and says what is valid."""


def digest(secret: str) -> str:
    """What keys are looked up by, so the table never compares secrets character by character."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One client key and what it may do.

    secret: the bearer token (never printed). id: the name the request log shows (default: a
    fingerprint of the secret). pricing: the policy its requests use (None: the server default).
    allow_override: whether its requests may choose another policy or welfare rule with the
    ``gtalign`` request field (otherwise such a request is refused with 403).
    """

    secret: str = field(repr=False)
    id: str = ""
    pricing: str | None = None
    allow_override: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.secret, str) or not self.secret.strip():
            raise ConfigError("an API key must be a non-empty string")
        if not self.id:
            object.__setattr__(self, "id", f"key-{digest(self.secret)[:8]}")


ANONYMOUS = ApiKey(secret="anonymous", id="anonymous", allow_override=True)
"""Who a request is when the server has no keys: it may choose its own policy and rule."""


def _entry(item: Any, where: str) -> ApiKey:
    if isinstance(item, str):
        return ApiKey(item)
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: expected a key string or a mapping with 'key', got {type(item).__name__}")
    unknown = set(item) - {"key", "id", "pricing", "allow_override"}
    if unknown:
        raise ConfigError(f"{where}: unknown fields {sorted(unknown)}; valid: key, id, pricing, allow_override")
    if "key" not in item:
        raise ConfigError(f"{where}: missing 'key'")
    allow = item.get("allow_override", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"{where}: allow_override must be true or false, got {allow!r}")
    pricing = item.get("pricing")
    return ApiKey(str(item["key"]), id=str(item.get("id") or ""), pricing=None if pricing is None else str(pricing),
                  allow_override=allow)


def parse_keys(text: str, *, source: str) -> tuple[ApiKey, ...]:
    """Keys from a file's or variable's text (see the module docstring for the forms)."""
    stripped = text.strip()
    if not stripped:
        return ()
    if stripped[0] in "[{" or source.endswith((".yaml", ".yml", ".json")):
        import yaml

        try:
            data = yaml.safe_load(stripped)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML/JSON: {exc}") from None
        if isinstance(data, Mapping):
            data = data.get("keys", data)
        if not isinstance(data, list):
            raise ConfigError(f"{source}: expected a list of keys or a mapping with 'keys'")
        return tuple(_entry(item, f"{source}: key {i}") for i, item in enumerate(data))
    keys = []
    for i, item in enumerate(part.strip() for part in stripped.split(",")):
        if not item:
            continue
        secret, sep, pricing = item.rpartition("=")
        if not sep or not pricing.strip():  # no pricing, or a key ending in '=' (base64 padding): the whole item
            secret, pricing = item, ""
        if not secret.strip():
            raise ConfigError(f"{source}: item {i} has an empty key")
        keys.append(ApiKey(secret.strip(), pricing=pricing.strip() or None))
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``gtalign serve`` can be told.

    host, port: where to listen (loopback by default).
    backend: ``embedded`` (the default SmolLM2 on CPU), ``embedded:PATH`` (a local Hugging Face
        model folder or ``.gguf`` file), an ``http(s)://`` base URL of an OpenAI-compatible server, or
        ``module:attr`` naming a `ChatBackend` or a factory returning one.
    backend_model: the model name at an HTTP backend (required for URLs).
    backend_kind: the HTTP server kind (``auto``, ``vllm``, ``llama.cpp``, ...), which decides how
        a partial assistant turn is continued.
    backend_api_key_env: the environment variable with the HTTP backend's API key (None: the
        HTTP backend's default, ``OPENAI_API_KEY``, or ``EMPTY`` when that is unset).
    model_name: the model id clients must send and ``/v1/models`` lists.
    keys: API keys (empty: no authentication).
    pricing: the default pricing policy (a name, a YAML/JSON file, or ``none``).
    allowed_pricing: further policies requests may choose (with override permission); files are
        loaded at start-up, a request can only name policies loaded then.
    rule: the default welfare rule.
    on_ignored: what steering does when the model ignores the four-block protocol, one of
        `gtalign.steering.IGNORED_PROTOCOL` (see `Fallback.when_ignored`).
    constrain: protocol-constrained decoding by default (``off``, ``auto``, ``on``; see
        `SteeringEngine`); a request may choose its own with ``"gtalign": {"constrain": ...}``.
    max_request_bytes: larger bodies get 413.
    max_tokens: the largest ``max_tokens`` a request may ask for (more: 400).
    default_max_tokens: the budget when a request gives none.
    timeout: seconds steering may take (then 504); the wait for a slot is bounded separately.
    max_concurrency: requests steered at once.
    max_queue: requests that may wait for a slot beyond those (0: refuse at once); a full queue,
        or a wait longer than ``queue_timeout`` seconds, gets 429 with ``Retry-After: retry_after``.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "embedded"
    backend_model: str | None = None
    backend_kind: str = "auto"
    backend_api_key_env: str | None = None
    model_name: str = "gtalign"
    keys: tuple[ApiKey, ...] = ()
    pricing: str = "none"
    allowed_pricing: tuple[str, ...] = ()
    rule: str = "sum"
    on_ignored: str = _modes.DEFAULT_ON_IGNORED
    constrain: str = "auto"
    max_request_bytes: int = 1_000_000
    max_tokens: int = 2048
    default_max_tokens: int = 512
    timeout: float = 120.0
    max_concurrency: int = 4
    max_queue: int = 0
    queue_timeout: float = 0.0
    retry_after: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        object.__setattr__(self, "allowed_pricing", tuple(self.allowed_pricing))
        for name in ("host", "backend", "backend_kind", "model_name", "pricing", "rule", *_OPTIONAL_TEXT):
            value = getattr(self, name)
            if not isinstance(value, str) and not (value is None and name in _OPTIONAL_TEXT):
                raise ConfigError(f"{name} must be a string, got {value!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port!r}")
        if not self.model_name:
            raise ConfigError("model_name must not be empty")
        if self.constrain not in _modes.CONSTRAIN_MODES:
            raise ConfigError(f"constrain must be one of {', '.join(_modes.CONSTRAIN_MODES)}, got {self.constrain!r}")
        if self.on_ignored not in _modes.IGNORED_PROTOCOL:
            raise ConfigError(f"on_ignored must be one of {', '.join(_modes.IGNORED_PROTOCOL)}, got {self.on_ignored!r}")
        for name in ("max_request_bytes", "max_tokens", "default_max_tokens", "max_concurrency", "retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int) or self.max_queue < 0:
            raise ConfigError(f"max_queue must be an integer >= 0, got {self.max_queue!r}")
        if self.default_max_tokens > self.max_tokens:
            raise ConfigError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens ({self.max_tokens})")
        for name, least in (("timeout", "> 0"), ("queue_timeout", ">= 0")):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (least == "> 0" and value == 0):
                raise ConfigError(f"{name} must be a finite number of seconds {least}, got {value!r}")
        if self.backend.startswith(("http://", "https://")) and not self.backend_model:
            raise ConfigError(f"backend {self.backend} needs backend_model (the model name that server serves)")
        ids = [key.id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"API key ids must be unique, got {ids}")
        digests = [digest(key.secret) for key in self.keys]
        if len(set(digests)) != len(digests):
            raise ConfigError("the same API key is configured twice")

    @property
    def auth(self) -> bool:
        """Whether requests must carry a key."""
        return bool(self.keys)

    @property
    def loopback(self) -> bool:
        return self.host in _LOOPBACK

    def pricing_names(self) -> tuple[str, ...]:
        """Every policy the server loads at start-up, default first, without repeats."""
        names = [self.pricing, *(key.pricing for key in self.keys if key.pricing), *self.allowed_pricing]
        return tuple(dict.fromkeys(names))

    @classmethod
    def load(
        cls,
        file: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        keys_env: str = DEFAULT_KEYS_ENV,
        keys_file: str | os.PathLike[str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> ServerConfig:
        """Defaults < ``file`` (YAML/JSON, field names as keys) < keys from ``keys_env`` <
        ``keys_file`` < ``overrides`` (the command line; None values are ignored)."""
        values: dict[str, Any] = {}
        if file is not None:
            values.update(_read_mapping(Path(file)))
        env = os.environ if environ is None else environ
        if env.get(keys_env):
            values["keys"] = parse_keys(env[keys_env], source=f"${keys_env}")
        if keys_file is not None:
            path = Path(keys_file)
            try:
                values["keys"] = parse_keys(path.read_text(encoding="utf-8"), source=str(path))
            except OSError as exc:
                raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror or exc}") from None
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(values, source=str(file) if file is not None else "settings")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "settings") -> ServerConfig:
        """A config from plain values (a parsed file): unknown names are an error listing the valid ones."""
        valid = {f.name for f in fields(cls)}
        unknown = set(values) - valid
        if unknown:
            raise ConfigError(f"{source}: unknown settings {sorted(unknown)}; valid: {', '.join(sorted(valid))}")
        given = dict(values)
        keys = given.get("keys", ())
        if isinstance(keys, str):
            given["keys"] = parse_keys(keys, source=f"{source}: keys")
        elif isinstance(keys, Sequence):
            given["keys"] = tuple(k if isinstance(k, ApiKey) else _entry(k, f"{source}: key {i}") for i, k in enumerate(keys))
        if isinstance(given.get("allowed_pricing"), str):
            given["allowed_pricing"] = (given["allowed_pricing"],)
        try:
            return cls(**given)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def with_changes(self, **changes: Any) -> ServerConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _read_mapping(path: Path) -> dict[str, Any]:
    return read_settings_file(path, ConfigError)
