"""``gtalign chat`` through the real command line, with a scripted backend standing in for the model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import gtalign.cli._chat as chat
from gtalign.cli import main
from gtalign.testing import ScriptedBackend, ScriptedConstrainingBackend
from tests.steering._fixtures import LLM_SHIFT_FLIPS, first_stage

CONTINUATION = " It helps.\n</analyze>\n<response>\nParis [bold]. Want its population too?\n</response>"


@pytest.fixture
def backend(monkeypatch):
    made: list[ScriptedBackend] = []

    def build(spec, model=None, server_kind="auto"):
        made.append(ScriptedConstrainingBackend(lambda m, prefill: CONTINUATION if prefill else first_stage(LLM_SHIFT_FLIPS)))
        made[-1].spec = (spec, model, server_kind)
        return made[-1]

    monkeypatch.setattr(chat, "build_backend", build)
    return made


def test_chat_shows_the_game(backend, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    code = main(["chat", "What is the capital of France?", "--pricing", "research-llm-shift", "--max-tokens", "300"])
    out = capsys.readouterr().out
    assert code == 0
    for expected in ("research-llm-shift(s=1)", "DQ_AQ", "chosen without pricing", "Pareto frontier: DQ_DA before pricing",
                     "Pricing changed the choice: DQ_DA without it, DQ_AQ with it.", "Paris [bold]. Want its population",
                     "welfare'", "continue"):
        assert expected in out
    assert backend[0].calls[1].params.max_tokens == 300 - len(first_stage(LLM_SHIFT_FLIPS).split())
    assert backend[0].spec == ("embedded", None, "auto")


def test_chat_json_prints_the_record(backend, capsys):
    code = main(["chat", "Capital of France?", "--json", "--pricing", "research-llm-shift", "--pricing-param", "s=2",
                 "--backend", "http://127.0.0.1:9/v1", "--model", "m", "--server-kind", "vllm", "--seed", "3"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0 and record["policy"]["s"] == 2.0 and record["chosen_key"] == "DQ_AQ"
    assert record["stages"][0]["seed"] == 3
    assert backend[0].spec == ("http://127.0.0.1:9/v1", "m", "vllm")


def test_chat_conversation_file(backend, tmp_path, capsys):
    talk = tmp_path / "talk.json"
    talk.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}))
    assert main(["chat", "Capital of France?", "--conversation", str(talk), "--json"]) == 0
    sent = backend[0].calls[0].messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[-1]["content"].endswith("Question: Capital of France?")
    lines = tmp_path / "talk.jsonl"
    lines.write_text('{"role": "user", "content": "Already instructed"}\n')
    assert main(["chat", "--conversation", str(lines), "--as-is", "--json"]) == 0
    assert backend[1].calls[0].messages == ({"role": "user", "content": "Already instructed"},)


def test_chat_failure_exit_code(monkeypatch, capsys):
    monkeypatch.setattr(chat, "build_backend",
                        lambda *a, **k: ScriptedBackend(lambda m, p: "", fail_calls=frozenset({0, 1})))
    assert main(["chat", "Q?"]) == 1
    assert "Steering failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["chat"], "give a QUESTION or --conversation"),
        (["chat", "Q?", "--pricing", "nope"], "--pricing: unknown pricing 'nope'"),
        (["chat", "Q?", "--rule", "nope"], "--rule"),
        (["chat", "Q?", "--pricing", "research-llm-shift", "--pricing-param", "s=big"], "key 's'"),
        (["chat", "Q?", "--backend", "ftp://x"], "--backend must be"),
        (["chat", "--conversation", "/no/such/file.json"], "--conversation /no/such/file.json"),
    ],
)
def test_chat_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_chat_bad_policy_file_names_file_and_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: economic\nprice_per_1k_output: 1\noutput_tokens: {DA: 1}\nbilling: monthly\n")
    assert main(["chat", "Q?", "--pricing", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "key 'billing'" in err


def test_chat_help_is_fast_and_light():
    """``chat --help`` reads only the --on-ignored vocabulary, never the steering engine (nor its HTTP
    client) or the model."""
    code = (
        "import sys; from gtalign.cli import main; from gtalign.cli._main import build_parser; "
        "main(['--help']); build_parser().parse_args(['chat', 'Q']); main(['chat', '--help']); "
        "print('STEERING', 'gtalign.steering._engine' in sys.modules); "
        "heavy = [m for m in ('torch', 'transformers', 'httpx', 'gtalign.backends._embedded') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--pricing NAME|FILE" in out and "--server-kind" in out and "HEAVY []" in out and "STEERING False" in out


def test_chat_on_ignored_keep(monkeypatch, capsys):
    made: list[ScriptedBackend] = []

    def build(spec, model=None, server_kind="auto"):
        made.append(ScriptedBackend(lambda m, prefill: "Paris."))
        return made[-1]

    monkeypatch.setattr(chat, "build_backend", build)
    assert main(["chat", "Capital of France?", "--json", "--on-ignored", "keep"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["response"] == "Paris." and [f["kind"] for f in record["fallbacks"]] == ["unstructured"]
    assert len(made[0].calls) == 1


def test_chat_sees_the_response_as_it_is_written():
    import asyncio

    from gtalign.steering import load_policy

    backend = ScriptedBackend(lambda m, prefill: CONTINUATION if prefill else first_stage(LLM_SHIFT_FLIPS))
    seen: list[str] = []
    options = chat.ChatOptions(question="Capital of France?")
    messages = [{"role": "user", "content": "Capital of France?"}]
    result = asyncio.run(chat._steer(backend, options, messages, load_policy("none"), seen.append))
    assert len(seen) > 1 and seen[-1] == result.response == "Paris [bold]. Want its population too?"
    assert all(later.startswith(earlier) for earlier, later in zip(seen, seen[1:], strict=False))


def test_chat_constrain_asks_the_backend_for_the_grammar(monkeypatch, capsys):
    made: list[ScriptedBackend] = []

    def build(spec, model=None, server_kind="auto"):
        made.append(ScriptedConstrainingBackend(lambda m, prefill: CONTINUATION if prefill else first_stage(LLM_SHIFT_FLIPS)))
        return made[-1]

    monkeypatch.setattr(chat, "build_backend", build)
    assert main(["chat", "Capital of France?", "--json", "--constrain", "on"]) == 0
    stages = [(c.params.constraint.stage, c.params.constraint.required) for c in made[0].calls if c.params.constraint]
    assert stages == [("payoff", True), ("response", True)]
    assert main(["chat", "Capital of France?", "--json"]) == 0
    stages = [(c.params.constraint.stage, c.params.constraint.required) for c in made[1].calls if c.params.constraint]
    assert stages == [("payoff", False), ("response", False)]  # auto by default
    assert main(["chat", "Capital of France?", "--json", "--constrain", "off"]) == 0
    assert all(c.params.constraint is None for c in made[2].calls)
    capsys.readouterr()
    assert main(["chat", "Q", "--constrain", "always"]) == 2
    assert "invalid choice: 'always'" in capsys.readouterr().err
