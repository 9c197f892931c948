"""gtalign for inspect_ai: a task per gtalign benchmark and the welfare reward as a scorer.

``inspect eval`` users get gtalign's scoring with inspect's model providers, retries, logs and
viewer::

    inspect eval gtalign/gtalign_sample --model openai/gpt-4o-mini
    inspect eval gtalign/gtalign_task -T benchmark=math-hard -T limit=50 -T preset=robust
    inspect eval gtalign/gtalign_wildguard -T judge=http://localhost:30000/v1 -T judge_model=Qwen3-32B

(the ``gtalign/`` names need the package's ``inspect_ai`` entry point; without it, name the file:
``inspect eval .../gtalign/integrations/inspect.py@gtalign_sample``), or from Python::

    from inspect_ai import eval
    from gtalign.integrations.inspect import gtalign_task
    eval(gtalign_task("sample", limit=6), model="openai/gpt-4o-mini")

`gtalign_task` turns a benchmark (`gtalign.benchmarks.load_benchmark`) into a `Task`: each row is a
`Sample` whose input is the row's messages, whose target is the ground truth and whose metadata
carries ``data_source``, ``label``, ``benchmark`` and ``extra_info``. The model answers in one pass
(`generate`); `welfare_scorer` scores the answer with `gtalign.reward.RewardScorer`.

**Scores.** A scored row's value is a dict of numbers: ``welfare`` (the Cobb-Douglas welfare
``sqrt(U*L)``, the reward's ``utility``), ``score`` (the preset's own reward: the same as
``welfare`` under ``paper``, gated under ``robust``, U, L or (U+L)/2 under the paper's baselines),
``user`` (U), ``llm`` (L), ``answer`` (the preset's logged answer reward) and ``format`` (0/1
format validity). ``welfare`` is ``sqrt(U*L)`` where a preset logs no utility; any other component
a preset does not compute is NaN, which inspect leaves out of that key's metrics (counting it in
that key's ``unscored_samples``). ``Score.answer`` is the ``<response>`` block; the explanation
gives the reward's status and reason, the judge's status and verdict, and the answer's parse
problems; ``Score.reason`` is ``"invalid_response_format"`` when format is 0; the metadata holds
every logged reward field (`RewardResult.to_log`), the parse problems and the chosen key.
Metrics: mean and stderr of ``welfare``, the mean of the others; the headline is mean welfare.

**Unscored rows.** A row the reward cannot score (the judge failed, refused or gave a verdict
outside the task's scale; an unknown data source; no judge for a row that needs one) is never a
silent 0: it is `Score.unscored` (value NaN, inspect's sentinel), with ``reason``
``"grader_failed"`` when the judge is to blame and ``"scoring_failed"`` otherwise, and the
reward's reason in the explanation. inspect leaves it out of every metric and counts it in each
score's ``unscored_samples``. A malformed answer, by contrast, is the model's fault and is scored
(``format`` 0; under ``paper`` a missing block or payoff scores 0 everywhere).
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from inspect_ai import Task, task
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.log import HeadlineMetric
    from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageSystem, ChatMessageUser
    from inspect_ai.scorer import Score, Scorer, Target, mean, scorer, stderr
    from inspect_ai.solver import TaskState, generate
except ImportError as exc:  # pragma: no cover - exercised only without inspect_ai
    raise ImportError(
        "gtalign.integrations.inspect needs inspect_ai: pip install 'inspect-ai>=0.3.285'"
    ) from exc

from gtalign.benchmarks import Benchmark, BenchmarkRow, PromptMode, load_benchmark
from gtalign.integrations._common import build_judge, require_per_sample_preset
from gtalign.judges import Judge
from gtalign.protocol import parse_answer
from gtalign.reward import RewardPreset, RewardResult, RewardScorer, get_preset
from gtalign.reward import Sample as RewardSample

# Every annotation here is importable at run time: inspect evaluates them (`get_annotations(...,
# eval_str=True)`) when it recreates a task or scorer by name (`inspect eval-retry`).

__all__ = [
    "SCORE_KEYS",
    "benchmark_dataset",
    "gtalign_abg_coqa",
    "gtalign_advbench",
    "gtalign_ambig_qa",
    "gtalign_math_hard",
    "gtalign_medium",
    "gtalign_minerva",
    "gtalign_sample",
    "gtalign_task",
    "gtalign_wildguard",
    "reward_score",
    "sample_from_row",
    "welfare_scorer",
]

logger = logging.getLogger(__name__)

SCORE_KEYS: tuple[str, ...] = ("welfare", "score", "user", "llm", "answer", "format")
"""The keys of a scored row's value, in order (see the module doc)."""

_MESSAGE_TYPES: Mapping[str, type[ChatMessage]] = {
    "system": ChatMessageSystem,
    "user": ChatMessageUser,
    "assistant": ChatMessageAssistant,
}


# -- dataset -------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` as plain JSON-ready Python (mappings to dicts, sequences and arrays to lists), so
    inspect's log can hold a row's ``extra_info`` whatever reader produced it."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        return _plain(value.tolist())
    return value


def sample_from_row(row: BenchmarkRow) -> Sample:
    """One benchmark row as an inspect `Sample` (input: the row's messages; target: its ground truth;
    id: its stable id; metadata: ``data_source``, ``label``, ``benchmark``, ``extra_info``)."""
    messages: list[ChatMessage] = []
    for index, message in enumerate(row.messages):
        role = message.get("role", "")
        kind = _MESSAGE_TYPES.get(role)
        if kind is None:
            raise ValueError(f"row {row.id}: message {index} has role {role!r}; expected one of {', '.join(_MESSAGE_TYPES)}")
        messages.append(kind(content=message.get("content", "")))
    return Sample(
        input=messages,
        target=row.ground_truth,
        id=row.id,
        metadata={
            "data_source": row.data_source,
            "label": row.label,
            "benchmark": row.benchmark,
            "extra_info": _plain(row.extra_info),
        },
    )


def benchmark_dataset(benchmark: Benchmark) -> MemoryDataset:
    """A loaded benchmark as an inspect dataset (rows in source order)."""
    return MemoryDataset([sample_from_row(row) for row in benchmark.rows], name=benchmark.name, location=benchmark.location)


# -- scorer --------------------------------------------------------------------------------------


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _welfare(result: RewardResult) -> float | None:
    if result.utility is not None:
        return result.utility
    if result.user_reward is not None and result.llm_reward is not None:
        return math.sqrt(max(result.user_reward, 0.0) * max(result.llm_reward, 0.0))
    return None


def _judge_failed(result: RewardResult) -> bool:
    return result.judge_status is not None and result.judge_status != "ok"


def reward_score(result: RewardResult, completion: str) -> Score:
    """The inspect `Score` of one reward result (see the module doc for its value and the
    unscored case)."""
    parsed = parse_answer(completion)
    problems = [str(problem) for problem in parsed.problems]
    metadata: dict[str, Any] = {
        **result.to_log(),
        "problems": problems,
        "chosen_key": parsed.chosen_key,
    }
    lines = [f"gtalign {result.preset}: {result.status}" + (f" ({result.reason})" if result.reason else "")]
    if result.judge_status is not None:
        judged = f" {result.judge_value:g}" if result.judge_value is not None else ""
        lines.append(f"judge: {result.judge_status}{judged}")
    if result.scored:
        lines.append(
            "welfare {w}, score {s}, U {u}, L {l}, answer {a}, format {f}".format(
                w=_fmt(_welfare(result)), s=_fmt(result.score), u=_fmt(result.user_reward),
                l=_fmt(result.llm_reward), a=_fmt(result.answer_reward), f=_fmt(result.format),
            )
        )
    lines.append("parse problems: " + ("; ".join(problems) if problems else "none"))
    explanation = "\n".join(lines)
    answer = parsed.response
    if not result.scored:
        return Score.unscored(
            reason="grader_failed" if _judge_failed(result) else "scoring_failed",
            answer=answer,
            explanation=explanation,
            metadata=metadata,
        )
    value: dict[str, str | int | float | bool | None] = {
        "welfare": _number(_welfare(result)),
        "score": _number(result.score),
        "user": _number(result.user_reward),
        "llm": _number(result.llm_reward),
        "answer": _number(result.answer_reward),
        "format": _number(result.format),
    }
    # A real score either way; the reason only flags the model's broken format for inspect's viewer.
    reason = "invalid_response_format" if result.format == 0 else None
    return Score(value=value, answer=answer, explanation=explanation, reason=reason, metadata=metadata)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _resolve_judge(judge: Judge | str | None, judge_model: str | None) -> Judge | None:
    """``rule``, ``none``, an ``http(s)://`` URL of an OpenAI-compatible server (with
    ``judge_model``), a registered judge name, ``module:attr``, or a judge object (used as is)."""
    if judge is not None and not isinstance(judge, str):
        if judge_model is not None:
            raise ValueError("judge_model only applies with judge=URL, not with a judge object")
        return build_judge(judge)
    is_url = judge is not None and judge.strip().startswith(("http://", "https://"))
    if judge_model is not None and not is_url:
        raise ValueError(f"judge_model={judge_model!r} only applies with judge=URL (an OpenAI-compatible server), not judge={judge!r}")
    if is_url and not judge_model:
        raise ValueError(f"judge={judge!r} needs judge_model= (the model name the server serves)")
    return _shared_judge(judge, judge_model)


@functools.lru_cache(maxsize=16)
def _shared_judge(judge: str | None, judge_model: str | None) -> Judge | None:
    """One judge per spec and process, shared by every task that names it: an eval set of all eight
    tasks then runs one rule judge's math workers (or one client per server), not eight. Judges are
    safe to share across tasks and event loops; their processes and connections end with the
    program (or `close`/`aclose` on the object)."""
    return build_judge(judge, None, judge_model)


@scorer(metrics={
    "welfare": [mean(), stderr()],
    "score": [mean()],
    "user": [mean()],
    "llm": [mean()],
    "answer": [mean()],
    "format": [mean()],
})
def welfare_scorer(
    preset: str | RewardPreset = "paper",
    judge: Judge | str | None = "rule",
    judge_model: str | None = None,
) -> Scorer:
    """gtalign's welfare reward as an inspect scorer.

    Args:
      preset: a reward preset name (``paper``, ``robust``, ``paper-user``, ...; see
        `gtalign.reward.get_preset`) or a preset object. Presets that normalise per batch are
        refused: inspect scores one sample at a time.
      judge: ``rule`` (deterministic, no server), an ``http(s)://`` base URL of an
        OpenAI-compatible server (with ``judge_model``), ``none`` (no judge: rows that need one
        are unscored), a registered judge name, ``module:attr``, or a judge object.
      judge_model: the model the judge server serves (URL judges only).

    The sample needs ``data_source`` (and ``extra_info`` where its task reads it) in its metadata
    and the ground truth as its target, as `gtalign_task` builds them.
    """
    reward = RewardScorer(get_preset(preset), _resolve_judge(judge, judge_model))
    require_per_sample_preset(reward, "the inspect scorer", "a preset with normalize='none'")

    async def score(state: TaskState, target: Target) -> Score:
        completion = state.output.completion
        metadata = state.metadata or {}
        data_source = metadata.get("data_source")
        if not data_source:
            return Score.unscored(
                reason="scoring_failed",
                answer=parse_answer(completion).response,
                explanation="the sample has no data_source in its metadata (gtalign_task sets it; "
                "set metadata={'data_source': ...} on your own samples)",
            )
        extra_info = metadata.get("extra_info") or {}
        sample = RewardSample(str(data_source), completion, target.text, extra_info)
        (result,) = await reward.ascore([sample])
        return reward_score(result, completion)

    return score


# -- tasks ---------------------------------------------------------------------------------------


def _benchmark_task(
    benchmark: str,
    *,
    data: str | os.PathLike[str] | None,
    limit: int | None,
    seed: int | None,
    sources: Sequence[str] | str | None,
    prompt: PromptMode,
    preset: str | RewardPreset,
    judge: Judge | str | None,
    judge_model: str | None,
) -> Task:
    if isinstance(sources, str):  # `-T sources=math-hard,wildguard` on inspect's command line
        sources = [name.strip() for name in sources.split(",") if name.strip()]
    loaded = load_benchmark(benchmark, data=data, limit=limit, seed=seed, sources=sources, prompt=prompt)
    for message in loaded.warnings:
        logger.warning("gtalign benchmark %s: %s", loaded.name, message)
    if loaded.skipped:
        first = loaded.skipped[0]
        logger.warning(
            "gtalign benchmark %s: %d rows of %s skipped (first: row %d, %s)",
            loaded.name, len(loaded.skipped), loaded.location, first.index, first.reason,
        )
    if not loaded.rows:
        raise ValueError(f"benchmark {loaded.name!r} has no usable rows in {loaded.location} (limit={limit}, sources={sources})")
    return Task(
        dataset=benchmark_dataset(loaded),
        solver=generate(),
        scorer=welfare_scorer(preset, judge, judge_model),
        display_name=f"gtalign {loaded.name}",
        headline_metric=HeadlineMetric(score="welfare", metric="mean"),
        metadata={
            "gtalign": {
                "benchmark": loaded.name,
                "location": loaded.location,
                "prompt": loaded.prompt,
                "rows": len(loaded.rows),
                "skipped": [{"index": s.index, "reason": s.reason} for s in loaded.skipped],
                "warnings": list(loaded.warnings),
            }
        },
    )


@task
def gtalign_task(
    benchmark: str = "sample",
    *,
    data: str | None = None,
    limit: int | None = None,
    seed: int | None = None,
    sources: list[str] | str | None = None,
    prompt: PromptMode = "stored",
    preset: str | RewardPreset = "paper",
    judge: Judge | str | None = "rule",
    judge_model: str | None = None,
) -> Task:
    """Any gtalign benchmark as an inspect task, scored by `welfare_scorer`.

    Args:
      benchmark: a benchmark name (``sample``, ``math-hard``, ``medium``, ``wildguard``,
        ``ambig_qa``, ``minerva``, ``abg-coqa``, ``advbench``, a registered one) or a
        ``.jsonl`` / ``.parquet`` file whose rows declare their ``data_source``.
      data: where the paper's data is (a folder in its layout, a file, a dataset folder or a hub
        id); default ``$GTALIGN_DATA``, else ``../shared/data/gtalign``. ``sample`` ignores it.
      limit: keep that many rows (the first ones, or with ``seed`` a random sample).
      seed: the seed of that sample.
      sources: keep only rows of these data sources (a list, or names separated by commas).
      prompt: ``stored`` (the row's own prompt, carrying the paper's instruction) or ``builder``
        (rebuilt with gtalign's prompt builder).
      preset, judge, judge_model: how answers are scored (see `welfare_scorer`).

    Rows that cannot be used are logged (count and first reason) and listed in the task's
    metadata under ``gtalign.skipped``.
    """
    return _benchmark_task(benchmark, data=data, limit=limit, seed=seed, sources=sources, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


# One registered task per built-in benchmark, so `inspect eval gtalign/gtalign_math_hard` works and
# `inspect eval-retry` can recreate the task by name. Each takes `gtalign_task`'s options.


@task
def gtalign_sample(
    *, limit: int | None = None, seed: int | None = None, sources: list[str] | str | None = None,
    prompt: PromptMode = "stored", preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The 33-row benchmark shipped with gtalign (all seven tasks); see `gtalign_task`."""
    return _benchmark_task("sample", data=None, limit=limit, seed=seed, sources=sources, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


@task
def gtalign_math_hard(
    *, data: str | None = None, limit: int | None = None, seed: int | None = None, prompt: PromptMode = "stored",
    preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The paper's math-hard test set (in-domain); see `gtalign_task`."""
    return _benchmark_task("math-hard", data=data, limit=limit, seed=seed, sources=None, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


@task
def gtalign_medium(
    *, data: str | None = None, limit: int | None = None, seed: int | None = None, prompt: PromptMode = "stored",
    preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The paper's medium (writing) test set (in-domain); see `gtalign_task`."""
    return _benchmark_task("medium", data=data, limit=limit, seed=seed, sources=None, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


@task
def gtalign_wildguard(
    *, data: str | None = None, limit: int | None = None, seed: int | None = None, prompt: PromptMode = "stored",
    preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The paper's wildguard (safety) test set (in-domain); see `gtalign_task`."""
    return _benchmark_task("wildguard", data=data, limit=limit, seed=seed, sources=None, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


@task
def gtalign_ambig_qa(
    *, data: str | None = None, limit: int | None = None, seed: int | None = None, prompt: PromptMode = "stored",
    preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The paper's ambig_qa (ambiguity) test set (in-domain); see `gtalign_task`."""
    return _benchmark_task("ambig_qa", data=data, limit=limit, seed=seed, sources=None, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


@task
def gtalign_minerva(
    *, data: str | None = None, limit: int | None = None, seed: int | None = None, prompt: PromptMode = "stored",
    preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The paper's minerva math test set (out-of-domain); see `gtalign_task`."""
    return _benchmark_task("minerva", data=data, limit=limit, seed=seed, sources=None, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


@task
def gtalign_abg_coqa(
    *, data: str | None = None, limit: int | None = None, seed: int | None = None, prompt: PromptMode = "stored",
    preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The paper's abg-coqa (ambiguity) test set (out-of-domain); see `gtalign_task`."""
    return _benchmark_task("abg-coqa", data=data, limit=limit, seed=seed, sources=None, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)


@task
def gtalign_advbench(
    *, data: str | None = None, limit: int | None = None, seed: int | None = None, prompt: PromptMode = "stored",
    preset: str = "paper", judge: str | None = "rule", judge_model: str | None = None,
) -> Task:
    """The paper's advbench (harmful prompts) test set (out-of-domain); under ``paper`` scored
    through the research code's unharmful branch, under ``robust`` as harmful; see `gtalign_task`."""
    return _benchmark_task("advbench", data=data, limit=limit, seed=seed, sources=None, prompt=prompt,
                           preset=preset, judge=judge, judge_model=judge_model)
