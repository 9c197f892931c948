"""The four-block answer protocol: prompts, the structural parser, and the research code's rules.

`parse_answer` is the robust, positioned parse used by our own presets; the ``paper_*`` functions
reproduce the research code's regex-based extraction exactly (in linear time) for the ``paper``
preset. `classify_act` and `detect_refusal` say what a response actually does. `ProtocolGrammar` renders
the protocol for constrained decoding (GBNF, regex, the payoff's JSON schema).
"""

from gtalign.protocol._acts import ActReport, RefusalReport, classify_act, detect_refusal
from gtalign.protocol._paper import (
    PAPER_KEYS,
    PaperParse,
    paper_block,
    paper_format_matches,
    paper_parse,
    paper_parse_payoff,
    paper_reasoning,
)
from gtalign.protocol._grammar import STAGES, GrammarError, PayoffNumbers, ProtocolGrammar, Stage
from gtalign.protocol._parser import parse_answer
from gtalign.protocol._prompt import (
    ACTION_DESCRIPTIONS,
    DEFAULT_SYSTEM,
    QUESTION_TYPE_DESCRIPTIONS,
    build_instruction,
    build_messages,
    describe_rule,
    messages_from_row,
    render_answer,
)
from gtalign.protocol._types import BLOCK_NAMES, Block, BlockName, ParsedAnswer, Problem, ProblemCode

__all__ = [
    "ACTION_DESCRIPTIONS",
    "BLOCK_NAMES",
    "DEFAULT_SYSTEM",
    "PAPER_KEYS",
    "QUESTION_TYPE_DESCRIPTIONS",
    "STAGES",
    "ActReport",
    "Block",
    "BlockName",
    "GrammarError",
    "PaperParse",
    "ParsedAnswer",
    "PayoffNumbers",
    "Problem",
    "ProblemCode",
    "ProtocolGrammar",
    "RefusalReport",
    "Stage",
    "build_instruction",
    "build_messages",
    "classify_act",
    "describe_rule",
    "detect_refusal",
    "messages_from_row",
    "paper_block",
    "paper_format_matches",
    "paper_parse",
    "paper_parse_payoff",
    "paper_reasoning",
    "parse_answer",
    "render_answer",
]
