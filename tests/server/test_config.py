"""`ServerConfig`: layers, API keys from files and the environment, and errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gtalign.server import ApiKey, ConfigError, ServerConfig, create_app, parse_keys
from gtalign.server._backend import build_backend
from gtalign.testing import ScriptedBackend


def test_compact_and_structured_key_forms() -> None:
    compact = parse_keys("sk-a, sk-b=research-llm-shift,c2stYw==,c2stYw===none", source="$GTALIGN_API_KEYS")
    assert [(k.secret, k.pricing) for k in compact] == [
        ("sk-a", None), ("sk-b", "research-llm-shift"), ("c2stYw==", None), ("c2stYw==", "none")
    ]
    assert not any(k.allow_override for k in compact)
    assert compact[0].id.startswith("key-") and compact[0].id != compact[1].id and compact[2].id == compact[3].id
    structured = parse_keys(json.dumps([{"key": "sk-c", "id": "carol", "pricing": "none", "allow_override": True}]), source="env")
    assert structured == (ApiKey("sk-c", id="carol", pricing="none", allow_override=True),)
    assert parse_keys("keys:\n  - key: sk-d\n", source="keys.yaml")[0].secret == "sk-d"


def test_secrets_stay_out_of_reprs() -> None:
    config = ServerConfig(keys=(ApiKey("sk-very-secret", id="alice"),))
    assert "sk-very-secret" not in repr(config) and "alice" in repr(config)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[{"id": "x"}]', "missing 'key'"),
        ('[{"key": "a", "role": "admin"}]', "unknown fields ['role']"),
        ('[{"key": "a", "allow_override": "yes"}]', "allow_override must be true or false"),
        ("=none", "empty key"),
    ],
)
def test_bad_keys_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="keys"):
        parse_keys(text, source="keys")
    with pytest.raises(ConfigError) as error:
        parse_keys(text, source="keys")
    assert fragment in str(error.value)


def test_layers_defaults_file_environment_flags(tmp_path: Path) -> None:
    settings = tmp_path / "serve.yaml"
    settings.write_text("port: 9001\nmax_concurrency: 8\nrule: nash\nkeys:\n  - key: sk-file\n", encoding="utf-8")
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"key": "sk-keyfile", "id": "kf"}]), encoding="utf-8")
    only_file = ServerConfig.load(settings, environ={})
    assert (only_file.port, only_file.max_concurrency, only_file.rule) == (9001, 8, "nash")
    assert [k.secret for k in only_file.keys] == ["sk-file"]
    with_env = ServerConfig.load(settings, environ={"GTALIGN_API_KEYS": "sk-env"})
    assert [k.secret for k in with_env.keys] == ["sk-env"]
    with_file = ServerConfig.load(settings, environ={"GTALIGN_API_KEYS": "sk-env"}, keys_file=keys)
    assert [k.id for k in with_file.keys] == ["kf"]
    flags = ServerConfig.load(settings, environ={}, overrides={"port": 9002, "rule": None})
    assert (flags.port, flags.rule) == (9002, "nash")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be an integer >= 1"),
        ({"port": "80"}, "port must be in 0..65535, got '80'"),
        ({"rule": 3}, "rule must be a string, got 3"),
        ({"timeout": 0}, "timeout must be a finite number of seconds > 0"),
        ({"default_max_tokens": 4096}, "exceeds max_tokens"),
        ({"backend": "http://127.0.0.1:1/v1"}, "needs backend_model"),
        ({"keys": (ApiKey("a", id="x"), ApiKey("b", id="x"))}, "ids must be unique"),
        ({"keys": (ApiKey("a"), ApiKey("a", id="other"))}, "configured twice"),
        ({"on_ignored": "ignore"}, "on_ignored must be one of retry, default, keep, got 'ignore'"),
    ],
)
def test_invalid_settings(changes: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        ServerConfig(**changes)
    assert fragment in str(error.value)


def test_unknown_setting_lists_valid_ones(tmp_path: Path) -> None:
    settings = tmp_path / "serve.json"
    settings.write_text(json.dumps({"max_concurency": 3}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown settings \['max_concurency'\]; valid: .*max_concurrency"):
        ServerConfig.load(settings, environ={})


def test_unknown_pricing_or_rule_fails_when_the_app_is_built() -> None:
    backend = ScriptedBackend(lambda messages, prefill: "")
    with pytest.raises(ConfigError, match="pricing policy 'no-such-policy'"):
        create_app(ServerConfig(pricing="no-such-policy"), backend)
    with pytest.raises(ConfigError, match="pricing policy 'missing.yaml'"):
        create_app(ServerConfig(keys=(ApiKey("k", pricing="missing.yaml"),)), backend)
    with pytest.raises(ConfigError, match="rule 'fair'.*valid: cobb_douglas"):
        create_app(ServerConfig(rule="fair"), backend)


def test_backend_specs() -> None:
    built = build_backend(ServerConfig(backend="tests.server._helpers:backend"))
    assert isinstance(built, ScriptedBackend)
    with pytest.raises(ConfigError, match="does not import"):
        build_backend(ServerConfig(backend="tests.server._nothing:backend"))
    with pytest.raises(ConfigError, match="must be a ChatBackend or take no arguments"):
        build_backend(ServerConfig(backend="json:dumps"))
    with pytest.raises(ConfigError, match="is a str, not a ChatBackend"):
        build_backend(ServerConfig(backend="json:__name__"))
    with pytest.raises(ConfigError, match="unknown backend 'gpt'"):
        build_backend(ServerConfig(backend="gpt"))


@pytest.mark.parametrize("added", [(), ("ask-first",)], ids=["engine", "engine-extended"])
def test_on_ignored_accepts_exactly_the_engines_modes(added: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """The modes are read from `gtalign.steering.IGNORED_PROTOCOL`, not written out again: a mode
    the engine adds is accepted, and the error lists the engine's modes."""
    from gtalign.steering import _modes

    modes = (*_modes.IGNORED_PROTOCOL, *added)
    monkeypatch.setattr(_modes, "IGNORED_PROTOCOL", modes)
    assert [ServerConfig(on_ignored=mode).on_ignored for mode in modes] == list(modes)
    with pytest.raises(ConfigError, match=f"on_ignored must be one of {', '.join(modes)}, got 'ignore'"):
        ServerConfig(on_ignored="ignore")


def test_on_ignored_defaults_to_the_engines_default() -> None:
    import inspect

    from gtalign.cli._chat import ChatOptions
    from gtalign.cli._main import build_parser
    from gtalign.steering import IGNORED_PROTOCOL, Fallback

    engine = inspect.signature(Fallback.when_ignored).parameters["mode"].default
    assert engine in IGNORED_PROTOCOL
    chat_flag = build_parser().parse_args(["chat", "Q"]).on_ignored
    assert ServerConfig().on_ignored == ChatOptions().on_ignored == chat_flag == engine
