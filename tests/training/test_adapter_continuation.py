"""A LoRA run started from an adapter folder (``gtalign train grpo --model runs/sft/final``) trains
that adapter on, instead of merging it and training a second one: the final adapter keeps the
start adapter's settings, names the plain base model, and on that base gives the trained model's
logits; the merge for the held-out evaluation does too. A full fine-tune from an adapter still
starts from the adapter merged into its base.

The start adapter is made here (rank 2, random weights: `tests.backends.test_embedded_adapter`);
runs are one step with 1 torch thread, compared in fp32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gtalign.backends._model_store import ADAPTER_BASE_RECORD, DEFAULT_MODEL_NAME
from gtalign.training._config import config_from_settings
from gtalign.training._train_run import FINAL_DIR, _load_start_model, _merge_adapter, plan_training, run_training
from tests.backends.test_embedded_adapter import make_adapter
from tests.training.test_train_fixtures import (  # noqa: F401
    TINY_GRPO_TRL,
    TINY_TRL,
    embedded_model,
    grpo_data,
    sft_data,
)

pytestmark = pytest.mark.engine  # TRL's trainers run here

IDS = [[1, 504, 3458, 314, 4649, 30]]
LORA = {"r": 4, "lora_alpha": 8}
"""Other settings than the start adapter's (r 2, alpha 4): the adapter's win, and the run says so."""


@pytest.fixture(autouse=True)
def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def lora_tensors(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def logits(model: Any) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.tensor(IDS)).logits.float()


def on_base(base: Path, adapter: Path) -> Any:
    """The logits of ``adapter`` loaded on the plain base model, as a user of the adapter loads it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter))


def keep_model() -> Any:
    """A trainer callback whose ``model`` is the trained model, kept in memory at the end of training."""
    from transformers import TrainerCallback

    class Keep(TrainerCallback):  # type: ignore[misc]
        model: Any = None

        def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            self.model = model

    return Keep()


def continue_from(kind: str, data: Path, start: Path, out: Path) -> tuple[Any, Any, list[str]]:
    """One step of ``kind`` from the adapter ``start``: the plan, the trained model and what was said."""
    said: list[str] = []
    trl = {**(TINY_GRPO_TRL if kind == "grpo" else TINY_TRL), "max_steps": 1}
    settings: dict[str, Any] = {"data": str(data), "output_dir": str(out), "model": str(start), "lora": LORA,
                                "threads": 1, "trl": trl}
    if kind == "grpo":
        settings["reward"] = {"preset": "paper", "judge": "rule"}
    config = config_from_settings(kind, settings)
    plan = plan_training(config, say=said.append)
    keep = keep_model()
    run_training(config, plan=plan, say=said.append, quiet=True, callbacks=[keep])
    assert keep.model is not None
    return plan, keep.model, said


@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_a_lora_run_from_an_adapter_trains_that_adapter_and_it_loads_on_the_base(
    kind: str, embedded_model: Path, sft_data: Path, grpo_data: Path, tmp_path: Path  # noqa: F811
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    start = make_adapter(embedded_model, tmp_path / "sft" / "final")
    plan, trained, said = continue_from(kind, sft_data if kind == "sft" else grpo_data, start, tmp_path / "run")
    final = plan.output_dir / FINAL_DIR

    # the plan says what happens, and that the adapter's own settings win over lora:
    assert plan.adapter == start and plan.model_path == embedded_model and plan.model_name == DEFAULT_MODEL_NAME
    assert f"continuing the adapter {start}" in plan.lines()[0]
    assert any("r 2 (lora: 4)" in line for line in said) and any("lora_alpha 4 (lora: 8)" in line for line in said)

    # the final adapter is the start adapter trained on: its settings, its tensors, the plain base named
    config = json.loads((final / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (2, 4, str(embedded_model))
    assert json.loads((final / ADAPTER_BASE_RECORD).read_text())["embedded_default"] is True
    before, after = lora_tensors(start), lora_tensors(final)
    assert before.keys() == after.keys()
    if kind == "sft":  # the loss always moves it; GRPO's first step on an untrained 135M model has no advantage
        assert any(not torch.equal(before[name], after[name]) for name in before)

    # on the plain base, the final adapter is the trained model (with the start adapter in it, not without)
    reloaded = on_base(embedded_model, final)
    torch.testing.assert_close(reloaded, logits(trained), atol=1e-4, rtol=0)
    plain = logits(AutoModelForCausalLM.from_pretrained(embedded_model, dtype=torch.float32))
    assert (reloaded - plain).abs().max() > 1.0

    # and the model the held-out evaluation loads is that model too

    merged = _merge_adapter(plan, final, tmp_path / "merged", said.append)
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)),
                               logits(trained), atol=1e-2, rtol=0)  # merged: rounded once more


def test_a_full_fine_tune_from_an_adapter_starts_from_it_merged(embedded_model: Path, sft_data: Path,  # noqa: F811
                                                                tmp_path: Path) -> None:
    import torch
    from peft import PeftModel

    start = make_adapter(embedded_model, tmp_path / "sft" / "final")
    config = config_from_settings("sft", {"data": str(sft_data), "output_dir": str(tmp_path / "run"), "model": str(start)})
    said: list[str] = []
    plan = plan_training(config, say=said.append)
    assert plan.lora is None and f"with the adapter {start} merged in" in plan.lines()[0]
    assert not said  # no lora settings to compare
    model, tokenizer = _load_start_model(plan)
    assert not isinstance(model, PeftModel) and tokenizer is not None
    torch.testing.assert_close(logits(model.float()), on_base(embedded_model, start), atol=1e-2, rtol=0)  # merged
