"""Two real SFT steps on the embedded SmolLM2-135M-Instruct (LoRA, tiny settings): finite losses, a
loss on the completion tokens only, checkpoints written and reloaded, the run record and metrics
log, and the held-out `gtalign eval` of the final model."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gtalign.training._config import config_from_settings
from gtalign.training._train_run import (
    FINAL_DIR,
    MERGED_DIR,
    METRICS_LOG,
    RECORD_NAME,
    complete_checkpoint,
    run_training,
)
from tests.training.test_train_fixtures import SFT_ROWS, TINY_TRL, embedded_model, finite, sft_data, steps  # noqa: F401

pytestmark = pytest.mark.engine  # TRL's trainers run here


def completion_texts() -> set[str]:
    texts = set()
    for row in SFT_ROWS:
        completion = row["completion"] if "completion" in row else [row["messages"][-1]]
        texts.add(completion if isinstance(completion, str) else completion[0]["content"])
    return texts


def lora_weights(model: Any) -> dict[str, Any]:
    return {name: param.detach().clone() for name, param in model.named_parameters() if "lora_B" in name}


def test_two_sft_steps_on_the_embedded_model(embedded_model: Path, sft_data: Path, tmp_path: Path) -> None:  # noqa: F811
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, TrainerCallback

    seen: dict[str, Any] = {}

    class FirstBatch(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            seen["batch"] = next(iter(kwargs["train_dataloader"]))
            seen["tokenizer"] = kwargs["processing_class"]

    out = tmp_path / "run"
    config = config_from_settings("sft", {
        "data": str(sft_data), "output_dir": str(out), "lora": {"r": 4, "lora_alpha": 8}, "threads": 1,
        "trl": {**TINY_TRL, "learning_rate": 1e-3, "max_length": 256},
        "eval": {"benchmarks": ["sample"], "limit": 1, "max_tokens": 8},
    })
    lines: list[str] = []
    result = run_training(config, say=lines.append, callbacks=[FirstBatch()])

    # finite losses, one per step, logged by TRL and in the metrics log
    assert result.global_step == 2 and len(result.losses) == 2 and finite(result.losses)
    logged = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    assert [row["step"] for row in logged if "loss" in row] == [1, 2] and all(row["run"] == 1 for row in logged)
    assert any("step 2/2  loss" in line for line in lines)

    # the loss is on the completion only: the labelled tokens are exactly an answer and its end of turn
    batch, tokenizer = seen["batch"], seen["tokenizer"]
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        learnt = tokenizer.decode(ids[labels != -100])
        assert learnt.removesuffix("\n").removesuffix(tokenizer.eos_token) in completion_texts()
        assert (labels == -100).sum() > 0  # the prompt (and padding) is not learnt

    # checkpoints written and reloaded: the adapter moved between them and gives finite logits
    assert complete_checkpoint(out / "checkpoint-1") and complete_checkpoint(out / "checkpoint-2")
    base = AutoModelForCausalLM.from_pretrained(embedded_model)
    first = lora_weights(PeftModel.from_pretrained(base, out / "checkpoint-1"))
    final_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(embedded_model), out / FINAL_DIR)
    final = lora_weights(final_model)
    assert first.keys() == final.keys() and first
    assert any(not torch.equal(first[name], final[name]) for name in first)
    assert all(weights.abs().sum() > 0 for weights in final.values())
    logits = final_model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(logits).all()

    # the run record says what ran
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["kind"] == "sft" and record["config"]["lora"] == {"r": 4, "lora_alpha": 8}
    assert record["runs"] == [{**record["runs"][0], "finished": True, "global_step": 2, "resumed_from": None}]
    assert record["rows"]["used"] == 4

    # the held-out evaluation of the final model, through gtalign eval's runner
    summary = result.eval_summary
    assert summary is not None and summary.written == 1 and summary.scored == 1
    header = json.loads((out / "eval-step-2" / "run.jsonl").read_text().splitlines()[0])
    assert header["config"]["model"] == str(out / MERGED_DIR) and header["config"]["max_tokens"] == 8
    assert math.isfinite(result.seconds) and result.exit_code == 0
