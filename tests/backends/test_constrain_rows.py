"""What grammar a constrained row of the embedded backend decodes under (no model needed): its token
caps fitted to the call's budget, or to the whole answer's for a steering stage."""

from __future__ import annotations

from gtalign.backends._base import Constraint
from gtalign.backends._constrain import RowGrammar
from gtalign.protocol import ProtocolGrammar


class ThreeCharacters:
    """A vocabulary stand-in: three characters a token."""

    @staticmethod
    def count(text: str) -> int:
        return len(text) // 3


def test_a_whole_answer_is_capped_to_its_budget() -> None:
    fitted = ProtocolGrammar().fit(512, ThreeCharacters.count)
    row = RowGrammar.of(Constraint(ProtocolGrammar()), "<thinking>", 512, ThreeCharacters())  # type: ignore[arg-type]
    assert fitted is not None and row.caps == {"thinking": fitted.thinking_tokens, "analyze": fitted.analyze_tokens,
                                               "response": fitted.response_tokens}
    assert row.lark == fitted.lark("full") and row.prefill == "<thinking>" and row.note(512) == ""


def test_a_steering_stage_two_keeps_the_whole_answers_caps() -> None:
    whole = ProtocolGrammar().fit(1000, ThreeCharacters.count)
    row = RowGrammar.of(Constraint(ProtocolGrammar(), "response", answer_budget=1000), "<thinking>...", 700, ThreeCharacters())  # type: ignore[arg-type]
    assert whole is not None and row.caps == {"thinking": None, "analyze": whole.analyze_tokens, "response": whole.response_tokens}
    assert row.prefill == ""  # stage 2's grammar starts after the prefill
    alone = RowGrammar.of(Constraint(ProtocolGrammar(), "response"), "<thinking>...", 700, ThreeCharacters())  # type: ignore[arg-type]
    assert alone.caps is not None and alone.caps["response"] > row.caps["response"]  # type: ignore[index,operator]


def test_a_budget_too_small_for_the_structure_decodes_uncapped_and_says_so() -> None:
    row = RowGrammar.of(Constraint(ProtocolGrammar()), "", 60, ThreeCharacters())  # type: ignore[arg-type]
    assert row.caps is None and row.lark == ProtocolGrammar().lark("full")
    assert "max_tokens 60 cannot hold the protocol's fixed structure" in row.note(60)
