"""Training with the welfare reward: four-block SFT targets derived from the data's labels for a
warm start (`build_target`, `gtalign data sft`), with self-distilled responses where the data has no
reference answer (`distill`); SFT and GRPO with TRL from one typed config (`TrainConfig`,
`run_training`, `gtalign train`). torch, TRL and peft are imported only when training runs."""

from gtalign.training._config import TrainConfig, TrainSetupError, config_from_settings, read_train_settings
from gtalign.training._distill import DistillCache, distill
from gtalign.training._targets import SKIP_REASONS, SftTarget, SkippedRow, build_target
from gtalign.training._train_run import plan_training, run_training

__all__ = ["SKIP_REASONS", "DistillCache", "SftTarget", "SkippedRow", "TrainConfig", "TrainSetupError", "build_target",
           "config_from_settings", "distill", "plan_training", "read_train_settings", "run_training"]
