"""The welfare reward: presets (``paper`` exact, ``robust``), components and the scoring engine.

The formulas are pure; the engine (`RewardScorer`) is where a preset meets a judge.
"""

from gtalign.reward._bleu import char_bleu
from gtalign.reward._components import clamp, len_window, payoff_asymmetry_reward, reason_decay, sigmoid, window
from gtalign.reward._engine import RewardScorer, get_preset
from gtalign.reward._normalize import normalize_by_source
from gtalign.reward._paper import PaperPreset, paper, paper_ablation, paper_linear, paper_llm, paper_user
from gtalign.reward._preset import Prepared, RewardPreset
from gtalign.reward._robust import RobustPreset, robust
from gtalign.reward._tasks import TaskSpec
from gtalign.reward._types import JudgeRequest, RewardResult, Sample, Task, Verdict, VerdictStatus

__all__ = [
    "JudgeRequest",
    "PaperPreset",
    "Prepared",
    "RewardPreset",
    "RewardResult",
    "RewardScorer",
    "RobustPreset",
    "Sample",
    "Task",
    "TaskSpec",
    "Verdict",
    "VerdictStatus",
    "char_bleu",
    "clamp",
    "get_preset",
    "len_window",
    "normalize_by_source",
    "paper",
    "paper_ablation",
    "paper_linear",
    "paper_llm",
    "paper_user",
    "payoff_asymmetry_reward",
    "reason_decay",
    "robust",
    "sigmoid",
    "window",
]
