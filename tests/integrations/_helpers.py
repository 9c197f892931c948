"""What the engine adapter tests share: a tagged answer, a tokenizer trained here, the engine venv.

`test_openrlhf` and `test_verl` also run as ``python -m tests.integrations.<module>`` inside the
engine environment (see `run_driver`), so this module imports only the standard library, pytest
and gtalign at the top; tokenizers and transformers are imported where they are used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from gtalign.integrations import _common

ROOT = Path(__file__).resolve().parents[2]
ENGINE_PYTHON = Path(os.environ.get("GTALIGN_VERL_PYTHON", ROOT / ".venv-verl" / "bin" / "python"))
"""The engine environment made by ``scripts/setup-verl-env.sh`` (verl and OpenRLHF installed)."""

needs_engine_env = pytest.mark.skipif(
    not ENGINE_PYTHON.exists(), reason=f"no engine environment at {ENGINE_PYTHON}: run scripts/setup-verl-env.sh"
)

ADAPTER_ENV = (
    _common.ENV_PRESET,
    _common.ENV_JUDGE,
    _common.ENV_JUDGE_URL,
    _common.ENV_JUDGE_MODEL,
    _common.ENV_UNSCORED_SCORE,
    _common.ENV_DATA_SOURCE,
    _common.ENV_JUDGE_MAX_RETRIES,
    _common.ENV_JUDGE_TOTAL_TIMEOUT,
    _common.ENV_JUDGE_ATTEMPT_TIMEOUT,
)
"""The ``GTALIGN_*`` variables the adapters read: cleared for every test and every engine run."""

MATRIX = (
    '{"DQ_AQ": {"LLM": 2.2, "user": 1.9}, "DQ_CQ": {"LLM": 3.1, "user": 3.5}, '
    '"DQ_DA": {"LLM": 4.2, "user": 4.3}, "VQ_AQ": {"LLM": 2.0, "user": 2.1}, '
    '"VQ_CQ": {"LLM": 1.3, "user": 1.2}, "VQ_DA": {"LLM": 2.0, "user": 1.8}}'
)


def answer(
    response: str,
    *,
    thinking: str = "Weigh DA, CQ and AQ for this turn.",
    analyze: str = "Frontier: DQ_DA, VQ_CQ. Choose one.",
) -> str:
    """A well-formed four-block answer around `MATRIX`."""
    return (f"<thinking>{thinking}</thinking><payoff>{MATRIX}</payoff>"
            f"<analyze>{analyze}</analyze><response>{response}</response>")


def train_tokenizer(
    texts: Iterable[str], special_tokens: Sequence[str] = ("<pad>", "<eos>"), pad: str = "<pad>", eos: str = "<eos>"
) -> Any:
    """A byte-level BPE tokenizer (320 tokens) trained on ``texts``, so no download is needed."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(
        vocab_size=320, special_tokens=list(special_tokens), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, eos_token=eos)


def run_driver(module: str, marker: str, *, timeout: float, **env: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run ``python -m module`` in the engine environment from the repository root.

    The adapter variables are cleared, Hugging Face stays offline, and ``env`` is added. Returns the
    process and the JSON the driver printed after ``marker`` (None when it printed none).
    """
    clean = {key: value for key, value in os.environ.items() if key not in ADAPTER_ENV}
    proc = subprocess.run(
        [str(ENGINE_PYTHON), "-m", module], check=False, capture_output=True, text=True, timeout=timeout,
        env={**clean, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}, cwd=ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(f"{marker} ")]
    return proc, json.loads(lines[-1].split(" ", 1)[1]) if lines else None


def run_user_script(folder: Path, body: str, **env: str) -> tuple[Any, list[str]]:
    """Run ``body`` as a user's script would run: ``python script.py``, no ``__main__`` guard.

    The script gets the path of a run log as ``sys.argv[1]`` and should append a line to it each
    time its body runs. Returns the JSON it printed after ``RESULT`` and the run log's lines.
    """
    script, runs = folder / "user_script.py", folder / "runs.txt"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    clean = {key: value for key, value in os.environ.items() if key not in ADAPTER_ENV}
    proc = subprocess.run([sys.executable, str(script), str(runs)], capture_output=True, text=True, cwd=folder,
                          timeout=600, check=False, env={**clean, "HF_HUB_OFFLINE": "1", **env})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"the script failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1].split(" ", 1)[1]), runs.read_text(encoding="utf-8").splitlines()
