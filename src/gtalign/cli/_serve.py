"""``gtalign serve``: the OpenAI-compatible steering proxy, run with uvicorn.

Only argparse and the (light) configuration module are imported here; FastAPI, uvicorn and the
backend are imported when the command runs, so ``gtalign --help`` stays fast. Every flag maps onto
one `ServerConfig` field, and flags override a ``--config`` file and the keys' environment variable.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import MISSING, fields
from types import SimpleNamespace
from typing import Any

from gtalign.cli._args import non_negative_int, positive_int
from gtalign.server._config import DEFAULT_KEYS_ENV, ServerConfig
from gtalign.steering import _modes

__all__ = ["configure", "options_from_args", "run"]

_DEFAULTS = SimpleNamespace(**{f.name: f.default for f in fields(ServerConfig) if f.default is not MISSING})
"""`ServerConfig`'s defaults, read without building one (validating it would import the steering engine)."""

_DESCRIPTION = f"""\
Serve an OpenAI-compatible chat completions API (POST /v1/chat/completions, GET /v1/models,
GET /health) in front of a model backend. Each request runs the four-block protocol and
inference-time steering (the pricing policy transforms the model's payoff matrix, the welfare
rule chooses the action, the model continues its own turn); the answer is the <response> text,
with the game record in the extension field "gtalign" of the response (and of the last streamed
chunk). Streaming (stream: true) relays the <response> text as the model writes it, in SSE
chunks, once the payoff stage and the decision are done.

Clients: any OpenAI client, e.g.
  OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=KEY).chat.completions.create(
      model="{_DEFAULTS.model_name}", messages=[{{"role": "user", "content": "..."}}])
A request may add "gtalign": {{"pricing": NAME, "rule": RULE}} (with the openai client:
extra_body=...) when its key allows overrides; NAME must be a policy the server loaded
(--pricing, the keys' policies, --allow-pricing).

API keys: --api-keys-file FILE (YAML/JSON: a list of {{key, id, pricing, allow_override}}) or
the environment variable ${DEFAULT_KEYS_ENV} (the same list as JSON, or KEY[=PRICING],...).
Without keys the server is open and only listens on a loopback host unless --no-auth is given.

Statuses: 400 bad request / token limit, 401 missing or wrong key, 403 override not allowed,
404 unknown model, 413 body too large, 429 at capacity (with Retry-After), 502 backend failed,
504 steering took longer than --timeout. A client that disconnects before its answer begins
cancels its steering and frees its slot; it is logged and counted (GET /health) as 499.

Settings merge in layers: defaults < --config FILE (YAML/JSON, ServerConfig field names) <
key file/variable < flags.
"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text}")
    return value


_LIMITS = (
    ("--max-request-bytes", positive_int, "N", "larger bodies get 413"),
    ("--max-tokens", positive_int, "N", "largest max_tokens a request may ask for; more gets 400"),
    ("--default-max-tokens", positive_int, "N", "max_tokens of requests that give none"),
    ("--timeout", _seconds, "S", "seconds steering may take; then 504"),
    ("--max-concurrency", positive_int, "N", "requests steered at once"),
    ("--max-queue", non_negative_int, "N", "requests that may wait for a slot; beyond them 429 at once"),
    ("--queue-timeout", _seconds, "S", "longest wait for a slot before 429"),
    ("--retry-after", positive_int, "S", "Retry-After seconds sent with 429"),
)

_FLAG_FIELDS = tuple(f.name for f in fields(ServerConfig) if f.name != "keys")
"""Every setting but the keys has a flag of the same name (keys come from a file or variable)."""


def _port(text: str) -> int:
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {value}")
    return value


def configure(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``serve`` subcommand to ``commands`` and return its parser."""
    d = _DEFAULTS
    parser = commands.add_parser(
        "serve",
        help="serve an OpenAI-compatible chat API that answers with steered responses",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", help="settings file (YAML/JSON) with ServerConfig field names")
    listen = parser.add_argument_group("listening")
    listen.add_argument("--host", help=f"interface to listen on (default: {d.host})")
    listen.add_argument("--port", type=_port, help=f"port (0: a free one) (default: {d.port})")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--backend", metavar="SPEC",
        help="'embedded' (SmolLM2-135M-Instruct on CPU), 'embedded:PATH' (a local Hugging Face model folder or .gguf), an "
        f"http(s):// URL of an OpenAI-compatible server, or module:attr (default: {d.backend})",
    )
    model.add_argument("--backend-model", metavar="NAME", help="model name served at the --backend URL (required for URLs)")
    model.add_argument(
        "--backend-kind", metavar="KIND",
        help=f"server kind at the --backend URL (vllm, sglang, llama.cpp, ollama, ...; decides how a partial turn is "
        f"continued) (default: {d.backend_kind})",
    )
    model.add_argument(
        "--backend-api-key-env", metavar="VAR",
        help="environment variable with the --backend URL's API key (default: OPENAI_API_KEY, or none when unset)",
    )
    model.add_argument(
        "--model-name", metavar="NAME", help=f"model id clients send and /v1/models lists (default: {d.model_name})"
    )
    auth = parser.add_argument_group("authentication")
    auth.add_argument("--api-keys-file", metavar="FILE", help="YAML/JSON list of {key, id, pricing, allow_override}")
    auth.add_argument(
        "--api-keys-env", metavar="VAR", default=DEFAULT_KEYS_ENV,
        help=f"environment variable with API keys (JSON list, or KEY[=PRICING],...) (default: {DEFAULT_KEYS_ENV})",
    )
    auth.add_argument("--no-auth", action="store_true", help="allow serving without API keys on a non-loopback host")
    steering = parser.add_argument_group("steering")
    steering.add_argument(
        "--pricing", metavar="NAME|FILE",
        help=f"default pricing policy: a registered name, a YAML/JSON policy file, or 'none' (default: {d.pricing})",
    )
    steering.add_argument(
        "--allow-pricing", action="append", dest="allowed_pricing", metavar="NAME|FILE",
        help="another policy requests may choose with \"gtalign\": {\"pricing\": NAME} (repeatable; keys need allow_override)",
    )
    steering.add_argument(
        "--rule", metavar="RULE", help=f"default welfare rule (sum, product, nash, ...) (default: {d.rule})"
    )
    steering.add_argument(
        "--on-ignored", choices=_modes.IGNORED_PROTOCOL, metavar="MODE",
        help="when the model ignores the four-block protocol (%(choices)s): retry once then take the default action, "
        f"take the default action at once, or keep its own answer unsteered (default: {d.on_ignored})",
    )
    steering.add_argument(
        "--constrain", choices=_modes.CONSTRAIN_MODES, metavar="MODE",
        help="protocol-constrained decoding (%(choices)s): auto where the backend can enforce the grammar, on to fail "
        f"requests it cannot; a request may choose with \"gtalign\": {{\"constrain\": MODE}} (default: {d.constrain})",
    )
    limits = parser.add_argument_group("limits")
    for flag, kind, metavar, text in _LIMITS:
        default = getattr(d, flag[2:].replace("-", "_"))
        shown = f"{default:g}" if isinstance(default, float) else default
        limits.add_argument(flag, type=kind, metavar=metavar, help=f"{text} (default: {shown})")
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"), help="log level (default: info)"
    )
    return parser


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags given, as `ServerConfig` fields (None where a flag was not given)."""
    options = {name: getattr(args, name) for name in _FLAG_FIELDS}
    if options["allowed_pricing"] is not None:
        options["allowed_pricing"] = tuple(options["allowed_pricing"])
    return options


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("gtalign.server")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def run(args: argparse.Namespace) -> int:
    """Build the config, the backend and the app, and serve until interrupted."""
    from gtalign.cli._main import EXIT_FAILED, EXIT_OK, CommandFailed, UsageError
    from gtalign.server._config import ConfigError

    try:
        config = ServerConfig.load(args.config, environ=os.environ, keys_env=args.api_keys_env,
                                   keys_file=args.api_keys_file, overrides=options_from_args(args))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if config.auth and args.no_auth:
        raise UsageError(f"--no-auth conflicts with the {len(config.keys)} configured API keys; drop one or the other")
    if not config.auth and not config.loopback and not args.no_auth:
        raise UsageError(
            f"no API keys are configured and --host {config.host} is not loopback: set ${args.api_keys_env} or "
            "--api-keys-file, or pass --no-auth to serve openly"
        )
    import asyncio

    try:
        import uvicorn

        from gtalign.server._app import create_app
        from gtalign.server._backend import build_backend
    except ImportError as exc:
        raise UsageError(f"gtalign serve needs its extra: pip install 'gtalign[serve]' ({exc})") from None
    _configure_logging(args.log_level)
    try:
        backend = build_backend(config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        app = create_app(config, backend, close_backend=True)
    except ConfigError as exc:
        asyncio.run(backend.aclose())
        raise UsageError(str(exc)) from None
    auth = f"{len(config.keys)} API keys" if config.auth else "no authentication"
    print(
        f"gtalign serve: model '{config.model_name}' on backend {config.backend} ({backend.name}), pricing {config.pricing}, "
        f"rule {config.rule}, {auth}, at most {config.max_concurrency} requests at once",
        file=sys.stderr,
    )
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=args.log_level,
                                           access_log=False, lifespan="on"))
    try:
        server.run()
    except SystemExit as exc:
        raise CommandFailed(f"the server could not start on {config.host}:{config.port} (see the log above)") from exc
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the normal way to stop
        if not server.started:
            raise
        print("gtalign serve: stopped", file=sys.stderr)
    return EXIT_OK if server.started else EXIT_FAILED
