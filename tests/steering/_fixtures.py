"""Shared matrices and texts for the steering tests."""

from __future__ import annotations

import json

from gtalign.game import PayoffMatrix

# The research code's shifts flip these (sum rule, DQ row): raw DQ_DA; +1 for AQ on the user side
# after an LLM-side shift makes DQ_AQ win.
LLM_SHIFT_FLIPS = PayoffMatrix.from_arrays(
    user=[[3.4, 0.8, 3.2], [2.4, 0.9, 2.2]],
    llm=[[3.1, 1.1, 3.0], [2.6, 1.0, 2.0]],
)
# Raw DQ_CQ (sum 4.6 against DA's 4.0); the user-side shift's +1 for DA on the LLM side flips to DQ_DA.
USER_SHIFT_FLIPS = PayoffMatrix.from_arrays(
    user=[[2.0, 2.4, 1.8], [1.0, 1.5, 1.2]],
    llm=[[2.0, 2.2, 2.0], [1.0, 1.5, 1.1]],
)
# Cobb-Douglas (positive matrix): raw DQ_DA. An expensive DA charged to the user keeps DA (the user
# is well off); charged to the provider, whose payoff is small, it flips to DQ_AQ.
PAYER_FLIPS = PayoffMatrix.from_arrays(
    user=[[4.5, 1.0, 2.6], [1.5, 2.0, 1.8]],
    llm=[[2.0, 1.0, 2.6], [2.0, 1.8, 1.6]],
)

THINKING = (
    "The question is definite (DQ): it asks for one fact. A direct answer is cheap; a clarifying "
    "question wastes a turn; a follow-up adds a little reading."
)


def first_stage(matrix: PayoffMatrix, thinking: str = THINKING) -> str:
    """What a cooperative model writes up to (not including) ``</payoff>``."""
    return f"<thinking>{thinking}</thinking>\n<payoff>{json.dumps(matrix.to_dict())}"
