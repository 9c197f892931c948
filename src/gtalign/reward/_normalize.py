"""Batch-level normalisation of scores per data source (the paper's ablation run)."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from gtalign.reward._types import RewardResult

__all__ = ["normalize_by_source"]


def normalize_by_source(
    results: Sequence[RewardResult], method: Literal["none", "zscore", "minmax"] = "zscore"
) -> list[RewardResult]:
    """Rescale scored results within each data source of one batch.

    ``zscore``: ``(s - mean) / (std + 1e-6)`` with the population std, taken as 1 when it is
    <= 1e-6 (one sample, or all equal). ``minmax``: ``(s - min) / (max - min)``, 0 when the range is 0.
    Unscored results stay unscored and do not enter the statistics. The raw score is kept in
    ``components["raw_score"]``.
    """
    if method == "none":
        return list(results)
    if method not in ("zscore", "minmax"):
        raise ValueError(f"unknown normalisation {method!r}; valid: none, zscore, minmax")
    groups: dict[str, list[float]] = defaultdict(list)
    for result in results:
        if result.score is not None:
            groups[result.data_source].append(result.score)
    stats: dict[str, tuple[float, float]] = {}
    for source, scores in groups.items():
        if method == "zscore":
            mean = math.fsum(scores) / len(scores)
            std = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))
            stats[source] = (mean, (1.0 if std <= 1e-6 else std) + 1e-6)
        else:
            low, high = min(scores), max(scores)
            stats[source] = (low, high - low)
    out = []
    for result in results:
        if result.score is None:
            out.append(result)
            continue
        shift, scale = stats[result.data_source]
        value = (result.score - shift) / scale if scale > 0 else 0.0
        components = {**result.components, "raw_score": result.score}
        out.append(dataclasses.replace(result, score=value, components=components))
    return out
