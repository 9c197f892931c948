"""``gtalign serve``: help, usage errors, and the real command in a subprocess called by the openai client."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from gtalign.cli import main

ROOT = Path(__file__).resolve().parents[2]
HELPERS_BACKEND = "tests.server._helpers:backend"


def test_help_lists_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    text = capsys.readouterr().out
    for fragment in ("--api-keys-file", "--max-concurrency", "--timeout", "429", "413", "extra_body", "GTALIGN_API_KEYS"):
        assert fragment in text


def test_parsing_the_command_line_imports_no_server_code() -> None:
    code = (
        "import sys; from gtalign.cli._main import build_parser; build_parser().parse_args(['serve', '--port', '0']); "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'gtalign.server._app', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--host", "0.0.0.0"], "no API keys are configured and --host 0.0.0.0 is not loopback"),
        (["--no-auth", "--api-keys-env", "TEST_SERVE_KEYS"], "--no-auth conflicts with the 1 configured API keys"),
        (["--pricing", "no-such-policy"], "pricing policy 'no-such-policy'"),
        (["--backend", "nonsense"], "unknown backend 'nonsense'"),
        (["--backend", "http://127.0.0.1:9/v1"], "needs backend_model"),
        (["--default-max-tokens", "4000"], "exceeds max_tokens"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SERVE_KEYS", "sk-one")
    monkeypatch.delenv("GTALIGN_API_KEYS", raising=False)
    backend = [] if "--backend" in argv else ["--backend", HELPERS_BACKEND]
    assert main(["serve", *backend, *argv]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("added", [(), ("ask-first",)], ids=["engine", "engine-extended"])
@pytest.mark.parametrize("command", [["serve"], ["chat", "Q"]], ids=["serve", "chat"])
def test_on_ignored_offers_exactly_the_engines_modes(
    command: list[str], added: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--on-ignored`` of ``serve`` and ``chat`` takes its choices from `gtalign.steering.IGNORED_PROTOCOL`
    (a mode the engine adds is offered), and a wrong one is refused with the engine's list."""
    from gtalign.cli._main import build_parser
    from gtalign.steering import _modes

    modes = (*_modes.IGNORED_PROTOCOL, *added)
    monkeypatch.setattr(_modes, "IGNORED_PROTOCOL", modes)
    parser = build_parser()
    assert [parser.parse_args([*command, "--on-ignored", mode]).on_ignored for mode in modes] == list(modes)
    with pytest.raises(SystemExit) as refused:
        parser.parse_args([*command, "--on-ignored", "ignore"])
    assert refused.value.code == 2
    assert f"(choose from {', '.join(repr(mode) for mode in modes)})" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([command[0], "--help"])
    assert f"({', '.join(modes)})" in " ".join(capsys.readouterr().out.split())


def _command() -> list[str]:
    script = Path(sys.executable).parent / "gtalign"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gtalign.cli import main; sys.exit(main())"]


def test_serve_in_a_subprocess_answers_the_openai_client() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GTALIGN_API_KEYS": "sk-sub=research-llm-shift"}
    argv = [*_command(), "serve", "--port", "0", "--backend", HELPERS_BACKEND, "--model-name", "steered",
            "--max-concurrency", "2"]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True)  # type: ignore[union-attr]
    reader.start()
    seen: list[str] = []
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert process.poll() is None, "".join(seen)
                continue
            seen.append(line)
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        assert port, "".join(seen)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-sub", max_retries=0, timeout=20) as client:
            question = [{"role": "user", "content": "What is 2+2?"}]
            completion = client.chat.completions.create(model="steered", messages=question)  # type: ignore[arg-type]
        assert completion.gtalign["chosen_key"] == "DQ_AQ"
        assert completion.choices[0].message.content == "It is four. Do you want the proof as well?"
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-other", max_retries=0) as other:
            with pytest.raises(openai.AuthenticationError):
                other.models.list()
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
        reader.join(timeout=5)
        process.stderr.close()  # type: ignore[union-attr]
    while not lines.empty():
        seen.append(lines.get())
    log = "".join(seen)
    assert code == 0, log
    assert re.search(r"chat key=key-\w+ policy=research-llm-shift rule=sum action=DQ_AQ steering=ok http=200", log), log
    assert "sk-sub" not in log
