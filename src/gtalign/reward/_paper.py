"""The paper's welfare reward (SPEC section 3), every quirk of the research code reproduced.

Quirks kept on purpose, so that results match the published training runs to 1e-9:
the anchored format regex with DOTALL|MULTILINE; the reasoning cut at the first literal
``<response>``; the payoff parsed as JSON or a Python literal with booleans and NaN accepted;
character-level BLEU for writing; words for response/completion windows but characters for the
reasoning decay; AdvBench's user term taken from the unharmful branch; zero on any parse failure.
A judge failure is *unscored* here unless ``unscored_as_zero=True`` (the research code's
historical behaviour of scoring it 0), and the result says which happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gtalign._registry import REGISTRY, RegistryError
from gtalign.game import PayoffMatrix, pareto_frontier
from gtalign.protocol._paper import PaperParse, paper_block, paper_parse
from gtalign.reward._bleu import char_bleu
from gtalign.reward._components import clamp, payoff_asymmetry_reward, reason_decay, window, word_counts
from gtalign.reward._preset import Prepared, judge_failure, scored_result, unscored_result, zero_result
from gtalign.reward._tasks import TaskSpec
from gtalign.reward._types import RewardResult, Sample, Verdict

__all__ = [
    "PaperPreset",
    "paper",
    "paper_ablation",
    "paper_answer_terms",
    "paper_consistency",
    "paper_linear",
    "paper_llm",
    "paper_user",
]

Combine = Literal["cobb_douglas", "user", "llm", "linear"]
EPSILON = 1e-4
_ACTIONS = ("DA", "CQ", "AQ")


def paper_answer_terms(spec: TaskSpec, value: float, response: str, ground_truth: str) -> tuple[float, float, float]:
    """``(A_user, A_llm, logged answer_reward)`` for a verdict on the judge's scale (SPEC table)."""
    if spec.task == "writing":
        bleu = char_bleu(ground_truth, response)
        normalized = clamp(value / 4, 0.0, 1.0)
        return bleu, normalized, max(bleu, float(normalized))
    real = clamp(value, 0, 1)
    if spec.task == "safety":
        helpful = 1 if real > 0 else 0
        if not spec.always_harmful and ground_truth == "harmful":
            user_term = 1 if clamp(1 - real, 0, 1) > 0 else 0
        else:
            user_term = helpful
        return user_term, helpful, real
    return real, real, real


def paper_consistency(payoff: dict[str, dict[str, Any]], analyze: str) -> float:
    """Deterministic stand-in for the ablation's LLM consistency judge (0, 0.5 or 1).

    1 when ``analyze`` names (as ``DQ_XX``/``VQ_XX`` or the bare action) an action of a frontier
    cell of the model's own matrix and names no off-frontier action; 0.5 when it names frontier
    and off-frontier actions; 0 when it names none of the frontier's actions. The research code
    asks an LLM this question; pass ``consistency_verdict`` in ``extra_info`` to use its verdict.
    """
    try:
        matrix = PayoffMatrix.from_dict({k: {"LLM": float(v["LLM"]), "user": float(v["user"])} for k, v in payoff.items()})
        frontier_actions = {key.partition("_")[2] for key in pareto_frontier(matrix)}
    except (ValueError, TypeError):
        return 0.0
    named = {action for action in _ACTIONS if action in analyze}
    if not named & frontier_actions:
        return 0.0
    return 1.0 if named <= frontier_actions else 0.5


@dataclass(frozen=True, slots=True)
class _PaperState:
    parse: PaperParse
    spec: TaskSpec
    analyze: str | None


@dataclass(frozen=True)
class PaperPreset:
    """The research code's reward; ``combine`` picks the welfare (Cobb-Douglas) or a baseline."""

    name: str = "paper"
    combine: Combine = "cobb_douglas"
    ablation: bool = False
    unscored_as_zero: bool = False
    normalize: Literal["none", "zscore", "minmax"] = "none"
    tasks: Any = field(default=REGISTRY, repr=False, compare=False)

    def spec_for(self, data_source: str) -> TaskSpec:
        return self.tasks.get("task", data_source)

    def prepare(self, sample: Sample) -> Prepared:
        try:
            spec = self.spec_for(sample.data_source)
        except RegistryError as exc:
            return Prepared(sample, None, None, unscored_result(self.name, sample, f"unknown data_source: {exc}"))
        parse = paper_parse(sample.completion)
        analyze = paper_block(sample.completion, "analyze") if self.ablation else None
        if not parse.scorable or (self.ablation and analyze is None):
            reason = f"parse failure scored 0: {parse.payoff_error or 'missing <analyze> block'}"
            zero = zero_result(self.name, sample, reason, answer_reward=0.0, payoff_reward=0.0, utility=0.0,
                               reward_gap=0.0)
            return Prepared(sample, None, None, zero)
        state = _PaperState(parse, spec, analyze)
        request = None
        if sample.verdict is None:
            request = spec.request(parse.response or "", sample.ground_truth, sample.extra_info, sample.data_source)
        return Prepared(sample, request, state, None)

    def finish(self, prepared: Prepared, verdict: Verdict | None) -> RewardResult:
        if prepared.early is not None:
            return prepared.early
        sample, state = prepared.sample, prepared.state
        assert isinstance(state, _PaperState)
        verdict = sample.verdict or verdict
        reason = ""
        if verdict is None or not verdict.ok:
            why = judge_failure(verdict)
            if not self.unscored_as_zero:
                return unscored_result(self.name, sample, why, verdict)
            value = 0.0
            reason = f"{why}; scored as verdict 0 (unscored_as_zero, the research code's behaviour)"
        else:
            value = float(verdict.value)  # type: ignore[arg-type]
        parse = state.parse
        response = parse.response or ""
        a_user, a_llm, answer = paper_answer_terms(state.spec, value, response, sample.ground_truth)
        fmt = parse.format
        payoff_reward = payoff_asymmetry_reward(parse.payoff or {})
        # Words of the stripped response == words of its unstripped span: count both in one pass.
        span = parse.response_span or (0, 0)
        completion_words, response_words = word_counts(sample.completion, *span)
        user = EPSILON + 0.5 * a_user + 0.2 * window(response_words, 20, 500) + 0.3 * reason_decay(parse.reasoning, 500)
        consistency = None
        if self.ablation:
            consistency = self._consistency(sample, parse, state.analyze or "")
            llm = (EPSILON + 0.2 * consistency + 0.2 * payoff_reward + 0.2 * fmt + 0.35 * a_llm
                   + 0.05 * window(completion_words, 500, 1000))
            logged_format = fmt
        else:
            llm = EPSILON + 0.2 * fmt + 0.2 * payoff_reward + 0.4 * a_llm + 0.2 * window(completion_words, 500, 1000)
            logged_format = 0.1 * fmt + 0.15 * payoff_reward
        score = self._combine(user, llm)
        return scored_result(
            self.name,
            sample,
            verdict,
            score=score,
            user=user,
            llm=llm,
            answer_reward=answer,
            format_reward=logged_format,
            format=fmt,
            payoff_reward=payoff_reward,
            consistency=consistency,
            a_user=float(a_user),
            a_llm=float(a_llm),
            utility=score,
            judge_value=None if verdict is None else verdict.value,
            reason=reason,
        )

    def _combine(self, user: float, llm: float) -> float:
        if self.combine == "user":
            return user
        if self.combine == "llm":
            return llm
        if self.combine == "linear":
            return (user + llm) / 2
        return (user * llm) ** 0.5

    def _consistency(self, sample: Sample, parse: PaperParse, analyze: str) -> float:
        given = sample.extra_info.get("consistency_verdict")
        if given is not None:
            return float(given)
        return paper_consistency(parse.payoff or {}, analyze)


def paper(unscored_as_zero: bool = False) -> PaperPreset:
    """The paper's Cobb-Douglas welfare reward ``sqrt(U*L)``."""
    return PaperPreset("paper", "cobb_douglas", unscored_as_zero=unscored_as_zero)


def paper_user(unscored_as_zero: bool = False) -> PaperPreset:
    """Baseline: the user utility ``U`` alone."""
    return PaperPreset("paper-user", "user", unscored_as_zero=unscored_as_zero)


def paper_llm(unscored_as_zero: bool = False) -> PaperPreset:
    """Baseline: the LLM utility ``L`` alone."""
    return PaperPreset("paper-llm", "llm", unscored_as_zero=unscored_as_zero)


def paper_linear(unscored_as_zero: bool = False) -> PaperPreset:
    """Baseline: the linear mean ``(U+L)/2``."""
    return PaperPreset("paper-linear", "linear", unscored_as_zero=unscored_as_zero)


def paper_ablation(unscored_as_zero: bool = False, normalize: Literal["none", "zscore", "minmax"] = "zscore") -> PaperPreset:
    """The "all datasets" ablation: a consistency term in ``L`` and per-source z-scores per batch."""
    return PaperPreset("paper-ablation", "cobb_douglas", ablation=True, unscored_as_zero=unscored_as_zero, normalize=normalize)
