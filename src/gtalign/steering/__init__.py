"""Inference-time steering by pricing policy (SPEC section 4).

The model writes its answer up to ``</payoff>``; a `PricingPolicy` transforms its payoff matrix;
the welfare rule chooses on the result; and the model continues the SAME assistant turn from an
``<analyze>`` that already names the chosen key, writing the rest of the analysis and the response.

>>> from gtalign.steering import load_policy
>>> load_policy("research-llm-shift", s=2).kind
'research-llm-shift'
"""

from __future__ import annotations

from gtalign._lazy import lazy_exports

# Imported on first use, so that `gtalign.steering._modes` (the --on-ignored vocabulary) is light.
_EXPORTS = {
    "ANALYZE_OPEN": "gtalign.steering._steps",
    "AffinePolicy": "gtalign.steering._policy",
    "BILLING_MODELS": "gtalign.steering._policy",
    "Billing": "gtalign.steering._policy",
    "DEFAULT_ON_IGNORED": "gtalign.steering._modes",
    "EXAMPLES_DIR": "gtalign.steering._policy",
    "EconomicPolicy": "gtalign.steering._policy",
    "Fallback": "gtalign.steering._engine",
    "FallbackEvent": "gtalign.steering._result",
    "IGNORED_PROTOCOL": "gtalign.steering._modes",
    "IdentityPolicy": "gtalign.steering._policy",
    "IgnoredProtocol": "gtalign.steering._modes",
    "MIN_CONTINUATION_TOKENS": "gtalign.steering._engine",
    "PolicyError": "gtalign.steering._policy",
    "PolicySpec": "gtalign.steering._policy",
    "PricingPolicy": "gtalign.steering._policy",
    "RECORD_VERSION": "gtalign.steering._result",
    "ResearchShiftPolicy": "gtalign.steering._policy",
    "Stage": "gtalign.steering._result",
    "SteeringEngine": "gtalign.steering._engine",
    "SteeringResult": "gtalign.steering._result",
    "SteeringStatus": "gtalign.steering._result",
    "TokenEstimate": "gtalign.steering._policy",
    "approximate_tokens": "gtalign.steering._policy",
    "check_policy": "gtalign.steering._policy",
    "decision_sentence": "gtalign.steering._steps",
    "default_sentence": "gtalign.steering._steps",
    "estimate_output_tokens": "gtalign.steering._policy",
    "load_policy": "gtalign.steering._policy",
    "policy_from_dict": "gtalign.steering._policy",
    "read_question_type": "gtalign.steering._steps",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
