"""Protocol-constrained decoding for the embedded backend: llguidance matchers as a logits processor.

llguidance (no dependencies, 3 MB) masks a step in 0.7-2.7 ms for SmolLM2's vocabulary on this
project's CPUs, 1-2.5% of a decoding step; xgrammar pulls in triton (1 GB) and is kept out. The mask
is applied in plain torch: ``llguidance.torch`` compiles its kernel with ``torch.compile``, which
makes the first step slow. torch and llguidance are imported only when a constraint is used.

One matcher per row, since rows of a batch carry different constraints (or none). Things the
research session met, each handled here:

- llguidance's ``is_stopped`` turns true right after ``</response>``, before the end-of-turn token;
  a row released then writes on unconstrained. Rows stay masked (only EOS allowed) until their EOS
  was consumed.
- transformers feeds a finished row pad tokens; the backend's own ends (stop strings, limits) do not
  tell the matcher. Finished rows are skipped, never fed.
- The processor must come before the backend's row sampler, which turns scores one-hot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from gtalign.backends._base import Constraint

__all__ = ["INSTALL_HINT", "GrammarMask", "RowGrammar", "Vocabulary", "import_llguidance", "row_matcher"]

INSTALL_HINT = "pip install 'gtalign[constrain]'"


def import_llguidance() -> ModuleType | None:
    """llguidance with its Hugging Face tokenizer bridge, or None when it is not installed
    (the one place the import happens, so tests can simulate its absence)."""
    try:
        import llguidance
        import llguidance.hf
    except ImportError:
        return None
    return llguidance


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """llguidance's view of a tokenizer (built once per loaded model: it walks the whole vocabulary)."""

    llg: ModuleType
    tokenizer: Any
    handle: Any
    size: int

    @classmethod
    def build(cls, llg: ModuleType, tokenizer: Any, size: int) -> Vocabulary:
        return cls(llg, tokenizer, llg.hf.from_tokenizer(tokenizer, n_vocab=size), size)

    def count(self, text: str) -> int:
        """Tokens of ``text`` as the tokenizer writes it."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True, slots=True)
class RowGrammar:
    """What one row decodes under: the stage's Lark grammar, and the prefill text a whole-answer or
    stage-1 grammar must first read (stage 2's grammar starts after the prefill by construction).

    ``caps``: the token caps the grammar carries (`ProtocolGrammar.fit` to the row's ``max_tokens``,
    so the answer closes within its budget), or None when the budget cannot hold the structure and
    the row is decoded without caps (it may then end at ``max_tokens`` unclosed)."""

    lark: str
    prefill: str = ""
    caps: dict[str, int | None] | None = None

    @classmethod
    def of(cls, constraint: Constraint, prefill: str, budget: int, vocabulary: Vocabulary) -> RowGrammar:
        grammar = constraint.grammar.fit(budget, vocabulary.count, constraint.stage, answer_budget=constraint.answer_budget)
        caps = None if grammar is None else {"thinking": grammar.thinking_tokens, "analyze": grammar.analyze_tokens,
                                              "response": grammar.response_tokens}
        lark = (grammar or constraint.grammar).lark(constraint.stage)
        return cls(lark, "" if constraint.stage == "response" else prefill, caps)

    def note(self, budget: int) -> str:
        """Why the answer may end unclosed, or "" when its caps fit the budget."""
        if self.caps is not None:
            return ""
        return f"max_tokens {budget} cannot hold the protocol's fixed structure, so the answer may end at the limit unclosed"


def row_matcher(vocabulary: Vocabulary, row: RowGrammar) -> Any:
    """A fresh matcher for one row, past its prefill; ValueError when the grammar does not compile
    or the prefill is not in it (that row fails, not its batch)."""
    llg = vocabulary.llg
    matcher = llg.LLMatcher(vocabulary.handle, llg.grammar_from("lark", row.lark), log_level=0)
    if matcher.is_error():
        raise ValueError(f"the grammar does not compile: {matcher.get_error()[:300]}")
    if row.prefill:
        ids = vocabulary.tokenizer(row.prefill, add_special_tokens=False)["input_ids"]
        if not matcher.consume_tokens(ids):
            raise ValueError(f"the prefill is not in the grammar: {matcher.get_error()[:300]}")
    return matcher


class GrammarMask:
    """A logits processor for one batched ``generate``: rows with a matcher (`row_matcher`) may only
    take tokens their grammar allows; rows without one (None) pass untouched.

    ``done`` is the backend's per-row end (a list it updates after each step: a row's index holds
    not-None once it ended), so rows it ended are skipped. After the call: ``errors`` (per row, why
    its matcher stopped early, or None), ``mask_seconds`` and ``steps`` (time spent masking).
    """

    def __init__(self, matchers: Sequence[Any | None], eos_ids: frozenset[int], done: Sequence[object | None]) -> None:
        import torch

        self.torch = torch
        self.eos_ids = eos_ids
        self.done = done
        self.matchers = list(matchers)
        self.errors: list[str | None] = [None] * len(self.matchers)
        self.finished = [matcher is None for matcher in self.matchers]
        self.mask_seconds = 0.0
        self.steps = 0
        self._started = False
        self._bits = torch.arange(32, dtype=torch.int32)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        torch = self.torch
        started = time.perf_counter()
        rows: list[int] = []
        masks: list[Any] = []
        for i, matcher in enumerate(self.matchers):
            if self.finished[i]:
                continue
            if self.done[i] is not None:  # the backend ended it (stop string, limit, cancelled)
                self.finished[i] = True
                continue
            if self._started:
                token = int(input_ids[i, -1])
                if not matcher.consume_token(token):
                    self.finished[i] = True
                    self.errors[i] = f"the grammar refused token {token}: {matcher.get_error()[:300]}"
                    continue
                if token in self.eos_ids:
                    self.finished[i] = True
                    continue
            rows.append(i)
            masks.append(torch.frombuffer(bytearray(matcher.compute_bitmask()), dtype=torch.int32))
        self._started = True
        if rows:
            index = torch.tensor(rows, device=scores.device)
            words = torch.stack(masks)
            allowed = ((words.unsqueeze(-1) >> self._bits) & 1).bool().reshape(len(rows), -1)
            width = scores.shape[1]
            if allowed.shape[1] < width:
                allowed = torch.cat([allowed, allowed.new_zeros(len(rows), width - allowed.shape[1])], dim=1)
            sub = scores[index]
            sub.masked_fill_(~allowed[:, :width].to(scores.device), float("-inf"))
            scores[index] = sub
            self.steps += 1
        self.mask_seconds += time.perf_counter() - started
        return scores
