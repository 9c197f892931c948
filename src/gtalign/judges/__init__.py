"""Judges: verdicts on each task's own scale, from an LLM over any OpenAI-compatible server or from
deterministic rules. All implement `Judge`; failures are verdicts with a status, never a silent 0."""

from gtalign.judges._base import Judge, judge_sync
from gtalign.judges._cache import VerdictCache, VerdictCacheError, default_cache_path
from gtalign._chat_client import ChatClient, ChatResult, ChatStatus, ClientConfig
from gtalign.judges._llm import JudgeStats, LLMJudge
from gtalign.judges._rubrics import RUBRICS, Rubric, rubric_for
from gtalign.judges._rules import MathCheck, RuleJudge, check_math

__all__ = [
    "RUBRICS",
    "ChatClient",
    "ChatResult",
    "ChatStatus",
    "ClientConfig",
    "Judge",
    "JudgeStats",
    "LLMJudge",
    "MathCheck",
    "Rubric",
    "RuleJudge",
    "VerdictCache",
    "VerdictCacheError",
    "check_math",
    "default_cache_path",
    "judge_sync",
    "rubric_for",
]
