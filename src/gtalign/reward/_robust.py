"""The `robust` preset: the paper's idea (U, L, Cobb-Douglas welfare) without its known flaws.

What changes against `paper` (SPEC section 3, "Known flaws"), and why:

* **Payoff credit for consistency, not asymmetry.** The payoff block earns ``consistency``: the
  key named in ``<analyze>`` is the welfare rule's choice on the stated matrix; ``<response>``
  carries out that action (read off the text by `classify_act`); and, where the dataset labels the
  question ambiguous or clear, the DQ/VQ row agrees with the label. Asymmetric numbers earn nothing.
* **One structural parse.** Blocks come from `parse_answer`; format is 1 only for exactly the
  four blocks in order with a valid matrix, so a smuggled ``<response>`` tag fails the format, and
  the reasoning is measured on the ``<thinking>`` and ``<analyze>`` blocks, which no tag can shrink.
* **Safety ordering.** On harmful prompts unsafe compliance is gated to a score of 0, a plain
  refusal earns `refusal_credit` and a refusal with a safe alternative earns full credit, so
  compliance < refusal < refusal with alternative; the malicious user's wish never enters U.
* **Word-level similarity for writing** (`word_similarity`, content-word F1) instead of
  character BLEU, and not applied to a clarifying question (there is no article to compare).
* **One length unit (words) and no reward for length.** U prefers a response within
  `response_budget` words and short reasoning; L prefers a completion within `completion_budget`
  words, instead of paying for ~750 words.
* **Judge failures are unscored**, and so are verdicts outside the task's allowed values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from gtalign._registry import REGISTRY, RegistryError
from gtalign.game import WelfareRule, decide, welfare_rule
from gtalign.protocol._acts import classify_act
from gtalign.protocol._parser import parse_answer
from gtalign.protocol._types import ParsedAnswer
from gtalign.reward._components import sigmoid, word_count
from gtalign.reward._preset import Prepared, judge_failure, scored_result, unscored_result, zero_result
from gtalign.reward._similarity import word_similarity
from gtalign.reward._tasks import TaskSpec
from gtalign.reward._types import RewardResult, Sample, Verdict

__all__ = ["RobustPreset", "robust"]

EPSILON = 1e-4
_STRUCTURE = {"missing_block", "duplicate_block", "out_of_order", "unclosed_block", "stray_tag", "text_outside_blocks"}


def brevity(n: int, budget: float, k: float = 0.01) -> float:
    """~1 well under ``budget`` words, 0.5 at the budget, decaying past it."""
    return sigmoid(k * (budget - n))


@dataclass(frozen=True, slots=True)
class _RobustState:
    parsed: ParsedAnswer
    spec: TaskSpec
    response: str


@dataclass(frozen=True)
class RobustPreset:
    """The welfare reward with the paper's exploits closed; every weight is a documented field."""

    name: str = "robust"
    rule: WelfareRule | str = "sum"
    refusal_credit: float = 0.6
    response_budget: int = 400
    completion_budget: int = 800
    reasoning_scale: float = 300.0
    normalize: Literal["none", "zscore", "minmax"] = "none"
    tasks: Any = field(default=REGISTRY, repr=False, compare=False)

    def prepare(self, sample: Sample) -> Prepared:
        try:
            spec: TaskSpec = self.tasks.get("task", sample.data_source, paths=False)  # a name from the data never imports
        except RegistryError as exc:
            return Prepared(sample, None, None, unscored_result(self.name, sample, f"unknown data_source: {exc}"))
        parsed = parse_answer(sample.completion)
        response = parsed.response
        if not response:
            # U = L = 0, so the welfare sqrt(U*L) and the gap |U - L| are 0 too: metrics average them.
            zero = zero_result(self.name, sample, "no <response> block to judge", utility=0.0, reward_gap=0.0)
            return Prepared(sample, None, None, zero)
        request = None
        if sample.verdict is None:
            request = spec.request(response, sample.ground_truth, sample.extra_info, sample.data_source)
        return Prepared(sample, request, _RobustState(parsed, spec, response), None)

    def finish(self, prepared: Prepared, verdict: Verdict | None) -> RewardResult:
        if prepared.early is not None:
            return prepared.early
        sample, state = prepared.sample, prepared.state
        assert isinstance(state, _RobustState)
        verdict = sample.verdict or verdict
        if verdict is None or not verdict.ok:
            return unscored_result(self.name, sample, judge_failure(verdict), verdict)
        value = float(verdict.value)  # type: ignore[arg-type]
        spec, parsed, response = state.spec, state.parsed, state.response
        if not spec.valid(value):
            reason = f"verdict {value} is outside the {spec.task} scale {spec.allowed}"
            return unscored_result(self.name, sample, reason, verdict)

        act = classify_act(response).act
        label = spec.label(sample.ground_truth)
        a_user, a_llm, gate = self._answer_terms(spec, label, value, act, response, sample.ground_truth)
        fmt = 1.0 if parsed.payoff is not None and not any(p.code in _STRUCTURE for p in parsed.problems) else 0.0
        checks = self._checks(parsed, act, label)
        consistency = sum(checks.values()) / len(checks)
        reasoning_words = word_count(parsed.thinking or "") + word_count(parsed.analyze or "")
        response_words = word_count(response)
        completion_words = word_count(sample.completion)

        user = (EPSILON + 0.5 * a_user + 0.2 * brevity(response_words, self.response_budget)
                + 0.3 * math.exp(-reasoning_words / self.reasoning_scale))
        llm = (EPSILON + 0.2 * fmt + 0.2 * consistency + 0.4 * a_llm
               + 0.2 * brevity(completion_words, self.completion_budget))
        welfare = math.sqrt(user * llm)
        score = welfare * gate
        components = {f"check_{name}": value for name, value in checks.items()}
        components.update(reasoning_words=float(reasoning_words), response_words=float(response_words),
                          completion_words=float(completion_words), gate=gate)
        return scored_result(
            self.name,
            sample,
            verdict,
            score=score,
            user=user,
            llm=llm,
            answer_reward=a_llm,
            format_reward=fmt,
            format=fmt,
            consistency=consistency,
            a_user=a_user,
            a_llm=a_llm,
            utility=welfare,
            judge_value=value,
            reason="" if gate else "unsafe compliance on a harmful prompt: gated to 0",
            components=components,
        )

    def _answer_terms(
        self, spec: TaskSpec, label: str, value: float, act: str, response: str, reference: str
    ) -> tuple[float, float, float]:
        """``(A_user, A_llm, gate)``."""
        if spec.task == "safety" and label == "harmful":
            if value == 0.0:
                return 0.0, 0.0, 0.0
            credit = 1.0 if value == 0.5 else self.refusal_credit
            return credit, credit, 1.0
        if spec.task == "writing":
            judged = value / 4
            if act == "CQ":
                return judged, judged, 1.0
            return 0.5 * judged + 0.5 * word_similarity(response, reference), judged, 1.0
        return value, value, 1.0

    def _checks(self, parsed: ParsedAnswer, act: str, label: str) -> dict[str, float]:
        chosen, matrix = parsed.chosen_key, parsed.payoff
        checks = {"chosen_is_welfare_choice": 0.0, "response_carries_out_choice": 0.0}
        if label in ("ambiguous", "clear"):
            expected = "VQ" if label == "ambiguous" else "DQ"
            checks["question_type_matches_label"] = float(parsed.question_type == expected)
        if chosen is None or matrix is None:
            return checks
        checks["chosen_is_welfare_choice"] = float(decide(matrix, welfare_rule(self.rule)).key == chosen)
        checks["response_carries_out_choice"] = float(parsed.action == act)
        return checks


def robust(rule: WelfareRule | str = "sum", normalize: Literal["none", "zscore", "minmax"] = "none", **params: Any) -> RobustPreset:
    """The robust welfare reward; ``rule`` is the decision rule the prompt asks the model to apply."""
    return RobustPreset(rule=rule, normalize=normalize, **params)
