"""The parse a record keeps of its final answer: the blocks, the matrix and the consistency checks
the metrics need, computed once when the row is written so reports never parse again."""

from __future__ import annotations

from gtalign.eval._log import AnswerParse
from gtalign.game import DEFAULT_SPACE, PayoffError, StrategySpace, WelfareRule, decide, welfare_rule
from gtalign.protocol import classify_act, parse_answer

__all__ = ["answer_parse"]


def answer_parse(text: str, rule: str | WelfareRule = "sum", space: StrategySpace = DEFAULT_SPACE) -> AnswerParse:
    """`AnswerParse` of ``text``: ``format_ok`` is `ParsedAnswer.ok` (four blocks in order, a valid
    matrix and a chosen key), ``welfare_key`` the key ``rule`` picks on the model's own matrix (over
    every cell), ``response_act`` what the ``<response>`` block carries out (None without one).

    >>> answer_parse("no blocks at all").format_ok
    False
    """
    parsed = parse_answer(text, space)
    problems = [str(problem) for problem in parsed.problems]
    welfare_key = None
    if parsed.payoff is not None:
        try:
            welfare_key = decide(parsed.payoff, welfare_rule(rule)).key
        except PayoffError as exc:  # e.g. a product rule on a matrix it cannot handle
            problems.append(f"welfare: rule {rule if isinstance(rule, str) else rule.name!r} cannot choose on this matrix: {exc}")
    response = parsed.response
    return AnswerParse(
        format_ok=parsed.ok,
        well_formed=parsed.well_formed,
        blocks={name: block.content for name, block in parsed.blocks.items()},
        matrix=None if parsed.payoff is None else parsed.payoff.to_dict(),
        chosen_key=parsed.chosen_key,
        welfare_key=welfare_key,
        question_type=parsed.question_type,
        action=parsed.action,
        response_act=None if response is None else classify_act(response).act,
        problems=tuple(problems),
    )
