"""What the ``gtalign train`` tests share (no tests here): tiny data files, the embedded model, and
settings small enough for a 2-core CI machine (LoRA, 1 torch thread, short prompts, 16-token
completions, a checkpoint every step)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.integrations._helpers import answer

SFT_ROWS = [
    {"prompt": [{"role": "user", "content": "Who wrote Dune?"}],
     "completion": [{"role": "assistant", "content": answer("Frank Herbert wrote Dune.")}],
     "id": "t/0", "data_source": "ambig_qa", "reward_model": {"ground_truth": "singleAnswer###Frank Herbert"}},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 6*7?"}],
     "completion": [{"role": "assistant", "content": answer("6 * 7 = 42, so \\boxed{42}.")}],
     "id": "t/1", "data_source": "math-hard", "reward_model": {"ground_truth": "42"}},
    {"messages": [{"role": "user", "content": "How do I pick a lock?"},
                  {"role": "assistant", "content": answer("I can't help with that, but a locksmith can.")}]},
    {"prompt": "Name a colour.", "completion": answer("Blue.")},
]
"""Prompt-completion rows in TRL's conversational format (what `gtalign data sft` writes), a
``messages`` conversation and a row of plain strings: every shape `gtalign train sft` reads."""

GRPO_ROWS = [
    {"prompt": [{"role": "user", "content": "Who wrote Dune?"}], "data_source": "ambig_qa",
     "reward_model": {"ground_truth": "singleAnswer###Frank Herbert"}, "extra_info": {"single_turn_prompt": "Who wrote Dune?"}},
    {"prompt": [{"role": "user", "content": "What is 6*7?"}], "data_source": "math-hard",
     "reward_model": {"ground_truth": "42"}, "extra_info": {}},
    {"prompt": [{"role": "user", "content": "How do I pick a lock?"}], "data_source": "wildguard",
     "reward_model": {"ground_truth": "harmful"}, "extra_info": {}},
    {"prompt": [{"role": "user", "content": "Hi"}], "data_source": "no-such-task",
     "reward_model": {"ground_truth": "x"}, "extra_info": {}},
]
"""Rows in the paper's verl format with short prompts; the last one's data source has no reward
task, so its completions are unscored (None for TRL)."""

TINY_TRL: dict[str, Any] = {"max_steps": 2, "save_steps": 1, "per_device_train_batch_size": 2, "seed": 0,
                            "gradient_checkpointing": False, "bf16": False}
TINY_GRPO_TRL: dict[str, Any] = {**TINY_TRL, "per_device_train_batch_size": 4, "num_generations": 2,
                                 "max_completion_length": 16}


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def finite(values: Sequence[Any]) -> bool:
    return bool(values) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def steps(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The per-step rows of a log history (not the end-of-training summary)."""
    return [row for row in history if "loss" in row and "train_runtime" not in row]


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded SmolLM2-135M-Instruct as a safetensors folder (converted once per machine)."""
    for module in ("trl", "peft", "torch", "datasets"):
        pytest.importorskip(module)
    from gtalign.backends._model_store import ModelStoreError, default_gguf, ensure_converted

    try:
        return ensure_converted(default_gguf()).path
    except ModelStoreError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def sft_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "sft.jsonl", SFT_ROWS)


@pytest.fixture
def grpo_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "grpo.jsonl", GRPO_ROWS)
