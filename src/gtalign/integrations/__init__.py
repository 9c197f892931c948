"""Reward adapters for RL engines (verl, TRL, OpenRLHF), without forking the engines.

Each engine module is imported on its own (``gtalign.integrations.trl`` and so on), so that
importing one never imports another engine or torch. ``gtalign.integrations.inspect`` holds the
benchmarks and the welfare scorer as inspect_ai tasks (``inspect eval gtalign/gtalign_sample``;
extra ``gtalign[inspect]``), not re-exported here since inspect_ai is optional. What they share, configuration from
``GTALIGN_*`` variables and the conversion of engine rows, is re-exported here.
"""

from gtalign.integrations._common import (
    ENV_DATA_SOURCE,
    ENV_JUDGE,
    ENV_JUDGE_ATTEMPT_TIMEOUT,
    ENV_JUDGE_MAX_RETRIES,
    ENV_JUDGE_MODEL,
    ENV_JUDGE_TOTAL_TIMEOUT,
    ENV_JUDGE_URL,
    ENV_PRESET,
    ENV_UNSCORED_SCORE,
    LOG_KEYS,
    AdapterConfig,
    build_judge,
    build_scorer,
    to_sample,
)

__all__ = [
    "ENV_DATA_SOURCE",
    "ENV_JUDGE",
    "ENV_JUDGE_ATTEMPT_TIMEOUT",
    "ENV_JUDGE_MAX_RETRIES",
    "ENV_JUDGE_MODEL",
    "ENV_JUDGE_TOTAL_TIMEOUT",
    "ENV_JUDGE_URL",
    "ENV_PRESET",
    "ENV_UNSCORED_SCORE",
    "LOG_KEYS",
    "AdapterConfig",
    "build_judge",
    "build_scorer",
    "to_sample",
]
