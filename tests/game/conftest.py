"""Shared fixtures for the game tests: the hand-computed matrices used across modules."""

from __future__ import annotations

import pytest

from gtalign.game import PayoffMatrix


@pytest.fixture
def positive() -> PayoffMatrix:
    """A plausible positive matrix: the sum and the product both pick DQ_DA before any pricing.

    sum     DQ: DA 6.0  CQ 2.5  AQ 5.2   VQ: DA 2.0  CQ 4.5  AQ 4.0
    product DQ: DA 9.0  CQ 1.5  AQ 6.75  VQ: DA 1.0  CQ 5.0  AQ 4.0
    """
    return PayoffMatrix.from_dict(
        {
            "DQ_DA": {"LLM": 3.0, "user": 3.0},
            "DQ_CQ": {"LLM": 1.0, "user": 1.5},
            "DQ_AQ": {"LLM": 2.5, "user": 2.7},
            "VQ_DA": {"LLM": 1.0, "user": 1.0},
            "VQ_CQ": {"LLM": 2.0, "user": 2.5},
            "VQ_AQ": {"LLM": 2.0, "user": 2.0},
        }
    )


@pytest.fixture
def signed() -> PayoffMatrix:
    """A matrix with costs, where the rules disagree; minimum payoff -4 (VQ_DA's LLM).

    user  DQ: DA 2  CQ -1  AQ 3     VQ: DA -3  CQ 1  AQ 0
    LLM   DQ: DA 4  CQ  3  AQ 1     VQ: DA -4  CQ 1  AQ 2
    """
    return PayoffMatrix.from_arrays(user=[[2, -1, 3], [-3, 1, 0]], llm=[[4, 3, 1], [-4, 1, 2]])
