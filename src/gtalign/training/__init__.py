"""Training with the welfare reward: four-block SFT targets derived from the data's labels for a
warm start (`build_target`, `gtalign data sft`), with self-distilled responses where the data has no
reference answer (`distill`)."""

from gtalign.training._distill import DistillCache, distill
from gtalign.training._targets import SKIP_REASONS, SftTarget, SkippedRow, build_target

__all__ = ["SKIP_REASONS", "DistillCache", "SftTarget", "SkippedRow", "build_target", "distill"]
