"""Inference-time steering by pricing policy (SPEC section 4).

The model writes its answer up to ``</payoff>``; a `PricingPolicy` transforms its payoff matrix;
the welfare rule chooses on the result; and the model continues the SAME assistant turn from an
``<analyze>`` that already names the chosen key, writing the rest of the analysis and the response.

>>> from gtalign.steering import load_policy
>>> load_policy("research-llm-shift", s=2).kind
'research-llm-shift'
"""

from gtalign.steering._engine import IGNORED_PROTOCOL, MIN_CONTINUATION_TOKENS, Fallback, IgnoredProtocol, SteeringEngine
from gtalign.steering._policy import (
    BILLING_MODELS,
    EXAMPLES_DIR,
    AffinePolicy,
    Billing,
    EconomicPolicy,
    IdentityPolicy,
    PolicyError,
    PolicySpec,
    PricingPolicy,
    ResearchShiftPolicy,
    TokenEstimate,
    approximate_tokens,
    check_policy,
    estimate_output_tokens,
    load_policy,
    policy_from_dict,
)
from gtalign.steering._result import RECORD_VERSION, FallbackEvent, Stage, SteeringResult, SteeringStatus
from gtalign.steering._steps import ANALYZE_OPEN, decision_sentence, default_sentence, read_question_type

__all__ = [
    "ANALYZE_OPEN",
    "BILLING_MODELS",
    "EXAMPLES_DIR",
    "IGNORED_PROTOCOL",
    "MIN_CONTINUATION_TOKENS",
    "RECORD_VERSION",
    "AffinePolicy",
    "Billing",
    "EconomicPolicy",
    "Fallback",
    "FallbackEvent",
    "IdentityPolicy",
    "IgnoredProtocol",
    "PolicyError",
    "PolicySpec",
    "PricingPolicy",
    "ResearchShiftPolicy",
    "Stage",
    "SteeringEngine",
    "SteeringResult",
    "SteeringStatus",
    "TokenEstimate",
    "approximate_tokens",
    "check_policy",
    "decision_sentence",
    "default_sentence",
    "estimate_output_tokens",
    "load_policy",
    "policy_from_dict",
    "read_question_type",
]
