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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gtalign._registry import REGISTRY, RegistryError
from gtalign.game import PayoffMatrix, pareto_frontier
from gtalign.protocol._paper import paper_block, paper_scan
from gtalign.reward._bleu import char_bleu
from gtalign.reward._components import batch_word_counts, clamp, payoff_asymmetry_reward, window
from gtalign.reward._preset import Prepared, judge_failure, scale_violation, unscored_result, zero_result
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
    real = max(0, min(1, value))  # clamp(value, 0, 1), spelled out on the per-row path
    if spec.task == "safety":
        helpful = 1 if real > 0 else 0
        if not spec.always_harmful and ground_truth == "harmful":
            user_term = 1 if max(0, min(1, 1 - real)) > 0 else 0  # clamp(1 - real, 0, 1) > 0
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


@dataclass(slots=True)  # not frozen: private, and a frozen dataclass costs 0.5 us more per row
class _PaperState:
    """What `finish` needs from a scorable sample's parse (`paper_scan`)."""

    spec: TaskSpec
    payoff: dict[str, dict[str, Any]]
    format: float  # the research code's format term: the pattern matches (the payoff parses)
    cut: int  # the first "<response>": the reasoning is completion[:cut]
    end: int  # the response block is completion[cut + 10:end].strip()
    analyze: str | None
    completion_words: int = 0  # words of the completion and of its response block (str.split
    response_words: int = 0  # counts), filled in for the whole batch at once

    def response(self, completion: str) -> str:
        return completion[self.cut + 10:self.end].strip()


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
        return self.tasks.get("task", data_source, paths=False)  # a name from the data never imports

    def prepare(self, sample: Sample) -> Prepared:
        return self.prepare_batch((sample,))[0]

    def prepare_batch(self, samples: Sequence[Sample]) -> list[Prepared]:
        """`prepare` for every sample of a batch: the registry is asked once per data source, and
        the word counts `finish` needs are taken for all scorable rows together (`batch_word_counts`)."""
        name, ablation = self.name, self.ablation
        specs: dict[str, TaskSpec | str] = {}  # a data source's spec, or why it has none
        prepared: list[Prepared] = []
        states: list[_PaperState] = []
        completions: list[str] = []
        for sample in samples:
            spec = specs.get(sample.data_source)
            if spec is None:
                try:
                    spec = self.spec_for(sample.data_source)
                except RegistryError as exc:
                    spec = f"unknown data_source: {exc}"
                specs[sample.data_source] = spec
            if isinstance(spec, str):
                prepared.append(Prepared(sample, None, None, unscored_result(name, sample, spec)))
                continue
            if sample.verdict is not None and (violation := scale_violation(spec, sample)):
                refused = unscored_result(name, sample, violation, Verdict.failure("invalid", violation))
                prepared.append(Prepared(sample, None, None, refused))
                continue
            completion = sample.completion
            format_matches, cut, end, _, payoff, error = paper_scan(completion)
            analyze = paper_block(completion, "analyze") if ablation else None
            if end < 0 or payoff is None or (ablation and analyze is None):
                reason = f"parse failure scored 0: {error or 'missing <analyze> block'}"
                zero = zero_result(name, sample, reason, answer_reward=0.0, payoff_reward=0.0, utility=0.0, reward_gap=0.0)
                prepared.append(Prepared(sample, None, None, zero))
                continue
            state = _PaperState(spec, payoff, 1.0 if format_matches else 0.0, cut, end, analyze)
            request = None
            if sample.verdict is None:
                request = spec.request(state.response(completion), sample.ground_truth, sample.extra_info, sample.data_source)
            prepared.append(Prepared(sample, request, state, None))
            states.append(state)
            completions.append(completion)
        # Words of the stripped response == words of its unstripped span: both counted in one pass.
        completion_words, response_words = batch_word_counts(completions, [(state.cut + 10, state.end) for state in states])
        for state, completion_count, response_count in zip(states, completion_words, response_words):
            state.completion_words = completion_count
            state.response_words = response_count
        return prepared

    def finish(self, prepared: Prepared, verdict: Verdict | None) -> RewardResult:
        if prepared.early is not None:
            return prepared.early
        sample, state = prepared.sample, prepared.state
        assert isinstance(state, _PaperState)
        verdict = sample.verdict or verdict
        reason = ""
        if verdict is None or verdict.status != "ok":  # not verdict.ok
            why = judge_failure(verdict)
            if not self.unscored_as_zero:
                return unscored_result(self.name, sample, why, verdict)
            value = 0.0
            reason = f"{why}; scored as verdict 0 (unscored_as_zero, the research code's behaviour)"
        else:
            value = float(verdict.value)  # type: ignore[arg-type]
        spec = state.spec
        # Only the writing task reads the response (BLEU): the others skip copying it.
        response = state.response(sample.completion) if spec.task == "writing" else ""
        a_user, a_llm, answer = paper_answer_terms(spec, value, response, sample.ground_truth)
        fmt = state.format
        payoff_reward = payoff_asymmetry_reward(state.payoff)
        reasoning_chars = state.cut if state.cut >= 0 else len(sample.completion)
        decay = math.exp(-reasoning_chars / 500)  # reason_decay(reasoning, 500)
        user = EPSILON + 0.5 * a_user + 0.2 * window(state.response_words, 20, 500) + 0.3 * decay
        consistency = None
        if self.ablation:
            consistency = self._consistency(sample, state.payoff, state.analyze or "")
            llm = (EPSILON + 0.2 * consistency + 0.2 * payoff_reward + 0.2 * fmt + 0.35 * a_llm
                   + 0.05 * window(state.completion_words, 500, 1000))
            logged_format = fmt
        else:
            llm = (EPSILON + 0.2 * fmt + 0.2 * payoff_reward + 0.4 * a_llm
                   + 0.2 * window(state.completion_words, 500, 1000))
            logged_format = 0.1 * fmt + 0.15 * payoff_reward
        score = self._combine(user, llm)
        return RewardResult(
            preset=self.name,
            data_source=sample.data_source,
            status="scored",
            score=score,
            user_reward=user,
            llm_reward=llm,
            answer_reward=answer,
            format_reward=logged_format,
            format=fmt,
            payoff_reward=payoff_reward,
            consistency=consistency,
            a_user=float(a_user),
            a_llm=float(a_llm),
            # The research code logs the Cobb-Douglas welfare as utility whatever the score is
            # (its baselines score U, L or (U+L)/2 but log sqrt(U*L)).
            utility=score if self.combine == "cobb_douglas" else (user * llm) ** 0.5,
            reward_gap=abs(user - llm),
            judge_status=None if verdict is None else verdict.status,
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

    def _consistency(self, sample: Sample, payoff: dict[str, dict[str, Any]], analyze: str) -> float:
        given = sample.extra_info.get("consistency_verdict")
        if given is not None:
            return float(given)
        return paper_consistency(payoff, analyze)


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
