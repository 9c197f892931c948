"""``gtalign train sft``: TRL's `SFTTrainer` on prompt-completion rows, the loss on the completion
only (``trl.completion_only_loss``, on by default), optionally a LoRA adapter through peft: a new
one (``peft_config``), or the one a `peft.PeftModel` given as the model already carries, trained on.

The rows come from `gtalign.training._train_data.sft_rows`; the run around the trainer
(checkpoints, resume, the record, the final model and its evaluation) is
`gtalign.training._train_run.run_training`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gtalign.training._config import TrainConfig

__all__ = ["build_sft_trainer", "new_adapter_config"]


def new_adapter_config(model: Any, peft_config: Any) -> Any:
    """The ``peft_config`` to hand TRL: None for a model that already carries its adapter (a
    `peft.PeftModel`, e.g. an SFT adapter that GRPO trains on), which TRL then trains as it is;
    TRL refuses a second adapter on top."""
    if peft_config is None or isinstance(model, (str, bytes)):
        return peft_config
    from peft import PeftModel

    return None if isinstance(model, PeftModel) else peft_config


def build_sft_trainer(
    config: TrainConfig,
    args: Any,
    model: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    peft_config: Any = None,
    callbacks: Sequence[Any] = (),
    processing_class: Any = None,
) -> Any:
    """An `SFTTrainer` for ``config`` over ``rows`` (``prompt`` / ``completion`` messages), from
    ``model``: a local folder (TRL loads the model and its tokenizer) or a model object (with
    ``processing_class``, its tokenizer). ``peft_config`` adds a new LoRA adapter, except to a
    `peft.PeftModel`, whose own adapter is trained (`new_adapter_config`)."""
    from datasets import Dataset
    from trl import SFTTrainer

    dataset = Dataset.from_list([{"prompt": row["prompt"], "completion": row["completion"]} for row in rows])
    return SFTTrainer(model=model, args=args, train_dataset=dataset, peft_config=new_adapter_config(model, peft_config),
                      callbacks=list(callbacks), processing_class=processing_class)
