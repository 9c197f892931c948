"""OpenRLHF reward function: the welfare reward as a custom ``reward_func`` file, no fork of OpenRLHF.

OpenRLHF loads ``reward_func(queries, prompts, labels)`` from the Python file given as
``--remote_rm_url`` (``--reward.remote_url`` in newer releases); point it at this file::

    --remote_rm_url "$(python -c 'import gtalign.integrations.openrlhf as m; print(m.__file__)')"
    --label_key label        # a column made with openrlhf_label(data_source, ground_truth, extra_info)

``queries`` are prompt + response decoded with special tokens, ``prompts`` the templated prompts,
``labels`` the label column. A label is a JSON object (or a dict) with ``data_source``,
``ground_truth`` (or verl's ``reward_model``) and ``extra_info``; a plain string label is the
ground truth, with the data source taken from ``GTALIGN_DATA_SOURCE``. Preset and judge come from
the ``GTALIGN_*`` variables (`gtalign.integrations._common.AdapterConfig`), including the LLM
judge's ``GTALIGN_JUDGE_MAX_RETRIES``, ``GTALIGN_JUDGE_TOTAL_TIMEOUT`` and
``GTALIGN_JUDGE_ATTEMPT_TIMEOUT``.

The result is ``{"rewards", "scores", "extra_logs"}`` with one float per query. OpenRLHF needs a
number for every row and every log key, so an unscored row gets ``GTALIGN_UNSCORED_SCORE``
(default 0.0) as its reward and 0.0 for its missing components, and ``extra_logs["unscored"]``
= 1. Unscored rows and judge failures are logged once per batch with the counts and the first
reason: OpenRLHF calls once per query, so a batch is a run of calls with no pause of a second or
more (`gtalign.integrations._common.BurstReport`). Presets that normalise per batch are
refused: OpenRLHF scores one query per call.

This module uses absolute imports only, since OpenRLHF loads it from its file path; torch is
imported when the function runs (OpenRLHF brings it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from gtalign.integrations._common import (
    ENV_DATA_SOURCE,
    LOG_KEYS,
    AdapterConfig,
    BurstReport,
    engine_log,
    engine_score,
    ground_truth_text,
    require_per_sample_preset,
    run_blocking,
    scorer_for,
    to_sample,
)
from gtalign.reward._engine import RewardScorer
from gtalign.reward._types import RewardResult, Sample

__all__ = ["END_MARKERS", "openrlhf_label", "parse_label", "reward_func", "split_completion"]

logger = logging.getLogger(__name__)
CALL_REPORT = BurstReport(logger, "OpenRLHF")
"""Sums the per-query calls' unscored rows into one warning per batch."""

# End-of-turn markers that a query decoded with special tokens carries after the answer; the
# paper's format check fails on any text after ``</response>`` that is not on a new line.
END_MARKERS: tuple[str, ...] = (
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "<end_of_turn>",
    "<eos>",
    "</s>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",
)


def openrlhf_label(data_source: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None) -> str:
    """A label column value that carries everything the reward needs (one JSON object)."""
    return json.dumps(
        {"data_source": data_source, "ground_truth": ground_truth_text(ground_truth), "extra_info": dict(extra_info or {})},
        ensure_ascii=False,
        default=str,
    )


def parse_label(label: Any, environ: Mapping[str, str] | None = None) -> tuple[str, str, Mapping[str, Any]]:
    """``(data_source, ground_truth, extra_info)`` from one OpenRLHF label."""
    env = os.environ if environ is None else environ
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            label = json.loads(label)
        except json.JSONDecodeError:
            pass
    if isinstance(label, Mapping):
        source = label.get("data_source") or env.get(ENV_DATA_SOURCE, "")
        truth = ground_truth_text(label.get("ground_truth"), label.get("reward_model", label))
        info = label.get("extra_info") or {}
    else:
        source, truth, info = env.get(ENV_DATA_SOURCE, ""), ground_truth_text(label), {}
    if not source:
        raise ValueError(
            f"an OpenRLHF label carries no data_source: build the label column with openrlhf_label(...) "
            f"or set {ENV_DATA_SOURCE}"
        )
    return str(source), truth, info


def split_completion(query: str, prompt: str, end_markers: Sequence[str] = END_MARKERS) -> str | None:
    """The response inside ``query`` (prompt + response), without trailing end-of-turn markers;
    None when the prompt cannot be found (then the row is unscored, not parsed with the prompt)."""
    if query.startswith(prompt):
        response = query[len(prompt):]
    else:
        at = query.rfind(prompt) if prompt else -1
        if at < 0:
            return None
        response = query[at + len(prompt):]
    stripped = True
    while stripped:
        stripped = False
        trimmed = response.rstrip()
        for marker in end_markers:
            if marker and trimmed.endswith(marker):
                response, stripped = trimmed[: -len(marker)], True
                break
    return response


def _score(scorer: RewardScorer, queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any]) -> list[RewardResult]:
    found: dict[int, RewardResult] = {}
    pending: dict[int, Sample] = {}
    for index, (query, prompt, label) in enumerate(zip(queries, prompts, labels)):
        source, truth, info = parse_label(label)
        completion = split_completion(query, prompt)
        if completion is None:
            reason = "the prompt was not found in the query, so the response could not be cut out"
            found[index] = RewardResult(preset=scorer.preset.name, data_source=source, status="unscored", score=None, reason=reason)
        else:
            pending[index] = to_sample(source, completion, truth, info)
    found.update(zip(pending, run_blocking(scorer.ascore(list(pending.values())))))
    return [found[index] for index in range(len(queries))]


def reward_func(queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
    """OpenRLHF's custom reward: ``rewards`` and ``scores`` tensors and numeric ``extra_logs``."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError("the OpenRLHF reward needs torch (OpenRLHF installs it): pip install torch") from exc
    if not len(queries) == len(prompts) == len(labels):
        raise ValueError(f"reward_func got {len(queries)} queries, {len(prompts)} prompts and {len(labels)} labels")
    config = AdapterConfig.resolve()
    scorer = scorer_for(config)
    require_per_sample_preset(scorer, "OpenRLHF's reward_func", "a preset without batch normalisation")
    results: list[RewardResult] = []
    CALL_REPORT.enter()
    try:
        results = _score(scorer, queries, prompts, labels)
    finally:
        CALL_REPORT.leave(results, f"rewarded {config.unscored_score:g}")
    rows = [engine_log(result, config.unscored_score, missing=0.0) for result in results]
    rewards = torch.tensor([engine_score(r, config.unscored_score) for r in results], dtype=torch.float32)
    extra_logs = {key: torch.tensor([row[key] for row in rows], dtype=torch.float32) for key in LOG_KEYS if key != "score"}
    return {"rewards": rewards, "scores": rewards.clone(), "extra_logs": extra_logs}
