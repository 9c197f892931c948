"""End to end on the REAL embedded model (SmolLM2-135M-Instruct on the CPU), when it is installed.

These test the mechanics and the records, not the tiny model's wisdom: it rarely keeps the
four-block format, so the declared fallbacks usually run. What must hold either way: the
continuation is a real continuation of the turn, starting right after the prefilled decision;
every stage is recorded with its tokens and time; the record is JSON; nothing raises.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from gtalign.backends._base import SamplingParams
from gtalign.steering import Fallback, SteeringEngine

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of Australia?"


def _backend():
    try:
        from gtalign.backends._embedded import EmbeddedBackend
    except ImportError as exc:
        pytest.skip(f"gtalign.backends._embedded is not available: {exc}")
    try:
        return EmbeddedBackend()
    except Exception as exc:  # a missing model file or extra: skip with the reason
        pytest.skip(f"the embedded backend does not load: {type(exc).__name__}: {exc}")


def test_steered_answer_continues_after_the_prefilled_decision():
    backend = _backend()

    async def steer():
        probe = await backend.generate([{"role": "user", "content": "Hi"}], params=SamplingParams(max_tokens=1))
        if not probe.ok:
            return probe, None
        engine = SteeringEngine(backend, "research-llm-shift", params=SamplingParams(max_tokens=32),
                                fallback=Fallback(retries=0))
        try:
            return probe, await engine.run(QUESTION)
        finally:
            await backend.aclose()

    probe, result = asyncio.run(steer())
    if result is None:
        pytest.skip(f"the embedded model does not generate: {probe.status}: {probe.reason}")
    assert result.status in ("ok", "fallback", "failed")
    if result.status == "failed":
        assert result.reason
    names = [s.name for s in result.stages]
    assert names[0] == "payoff" and "continue" in names
    for stage in result.stages:
        assert stage.status == "ok", stage.reason
        assert isinstance(stage.tokens_out, int) and 0 < stage.tokens_out <= stage.max_tokens
        assert stage.wall > 0
    first = result.stages[0]
    assert first.prefill == "" and first.max_tokens == 32
    cont = result.stages[names.index("continue")]
    assert cont.prefill.endswith("Chosen key: " + result.chosen_key + ".")
    assert cont.prefill.endswith(result.decision_text)
    if result.chosen_by == "rule":
        assert cont.prefill.startswith(first.text)
    assert result.text.startswith(cont.prefill)
    assert result.text[len(cont.prefill):].startswith(cont.text)
    assert result.tokens_out == sum(s.tokens_out for s in result.stages)
    record = json.loads(json.dumps(result.to_record()))
    assert record["chosen_key"] == result.chosen_key and len(record["stages"]) == len(result.stages)
    assert record["backend"] and record["model"]


def test_chat_command_runs_offline_on_the_embedded_default():
    _backend()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from gtalign.cli import main; sys.exit(main(sys.argv[1:]))",
         "chat", QUESTION, "--max-tokens", "16", "--json", "--pricing", "api-pay-per-token"],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert done.returncode in (0, 1), done.stderr
    record = json.loads(done.stdout)
    assert record["policy"]["name"] == "api-pay-per-token"
    assert record["stages"][0]["name"] == "payoff" and record["chosen_key"]
