"""``gtalign train sft``: TRL's `SFTTrainer` on prompt-completion rows, the loss on the completion
only (``trl.completion_only_loss``, on by default), optionally a LoRA adapter through peft.

The rows come from `gtalign.training._train_data.sft_rows`; the run around the trainer
(checkpoints, resume, the record, the final model and its evaluation) is
`gtalign.training._train_run.run_training`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gtalign.training._config import TrainConfig

__all__ = ["build_sft_trainer"]


def build_sft_trainer(
    config: TrainConfig,
    args: Any,
    model_path: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    peft_config: Any = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """An `SFTTrainer` for ``config`` over ``rows`` (``prompt`` / ``completion`` messages), loading
    the model and its tokenizer from ``model_path`` (a local folder)."""
    from datasets import Dataset
    from trl import SFTTrainer

    dataset = Dataset.from_list([{"prompt": row["prompt"], "completion": row["completion"]} for row in rows])
    return SFTTrainer(model=model_path, args=args, train_dataset=dataset, peft_config=peft_config,
                      callbacks=list(callbacks))
