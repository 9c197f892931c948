"""Self-distillation for ``gtalign data sft``: the base model's own plain answer to a bare question.

A row whose labels give no response (a clear question without a reference answer, an unharmful
request, an unknown data source) gets the answer a `ChatBackend` writes to the question alone:
the row's conversation without the four-block instruction, after a short system message that asks
for a direct answer (a target's response must read as the DA it is labelled with). The answers
then go through `gtalign.training._targets.build_target` like any other response.

Calls run concurrently up to a limit; a backend's failure is an outcome of its row (``failed``,
with the backend's reason), never an exception that stops the others. `DistillCache` keeps every
answer in an append-only JSONL file, keyed by the backend, the model, the messages and the
sampling settings, so an interrupted build asks again only for the rows it had not finished.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gtalign.backends._base import ChatBackend, Generation, SamplingParams
from gtalign.benchmarks._types import BenchmarkRow
from gtalign.training._targets import SftTarget, SkippedRow, bare_conversation, build_target

__all__ = ["DISTILL_SYSTEM", "DistillCache", "Distilled", "DistillStatus", "distill", "distill_messages", "distilled_target"]

DISTILL_SYSTEM = (
    "Answer the user's message directly and helpfully, in plain prose. Do not ask the user any question."
)
"""The system message of every distillation call: a plain, direct answer (the target's action is DA)."""

DistillStatus = Literal["ok", "failed", "cut_off", "no_question"]


@dataclass(frozen=True, slots=True)
class Distilled:
    """What the model answered for one row: ``ok`` with the text; ``cut_off`` (the answer hit
    ``max_tokens``), ``failed`` (the call failed: ``reason`` says why, a rerun asks again) or
    ``no_question`` (the row has no bare question to ask)."""

    row_id: str
    status: DistillStatus
    text: str = ""
    reason: str = ""
    cached: bool = False


def distill_messages(row: BenchmarkRow, system: str | None = DISTILL_SYSTEM) -> list[dict[str, str]] | None:
    """The bare conversation to ask for ``row``'s plain answer (`bare_conversation`: the row's own
    conversation without the four-block instruction) after ``system``, or None when it has none."""
    messages = bare_conversation(row)
    if messages is None:
        return None
    return ([{"role": "system", "content": system}] if system else []) + messages


def _key(backend: tuple[str, str], messages: Sequence[Mapping[str, str]], params: SamplingParams) -> str:
    payload = [*backend, list(messages), params.max_tokens, params.temperature, params.top_p, params.seed]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()


class DistillCache:
    """Answers already written, in an append-only JSONL file (one line per answer, flushed as it
    comes). A line torn by a kill is ignored; a later line for the same key wins."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._answers: dict[str, dict[str, str]] = {}
        if self.path.exists():
            with open(self.path, "rb") as handle:
                for raw in handle:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue  # a torn last line
                    if isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("text"), str):
                        self._answers[entry["key"]] = entry
        self._handle: Any = None

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> dict[str, str] | None:
        return self._answers.get(key)

    def put(self, key: str, row_id: str, generation: Generation) -> None:
        entry = {"key": key, "id": row_id, "text": generation.text, "finish_reason": generation.finish_reason}
        self._answers[key] = entry
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "ab")
            if self._handle.tell() and not self._ends_with_newline():
                self._handle.write(b"\n")
        self._handle.write(json.dumps(entry, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n")
        self._handle.flush()

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


def _outcome(row_id: str, generation: Generation, cached: bool) -> Distilled:
    if not generation.ok:
        return Distilled(row_id, "failed", reason=f"{generation.status}: {generation.reason or 'no reason given'}")
    if generation.finish_reason == "length":
        return Distilled(row_id, "cut_off", generation.text, "the answer was cut off at --max-tokens", cached)
    return Distilled(row_id, "ok", generation.text, cached=cached)


async def distill(
    rows: Sequence[BenchmarkRow],
    backend: ChatBackend,
    *,
    params: SamplingParams = SamplingParams(),
    concurrency: int = 4,
    system: str | None = DISTILL_SYSTEM,
    cache: DistillCache | None = None,
    on_result: Callable[[Distilled], None | Awaitable[None]] | None = None,
) -> list[Distilled]:
    """Ask ``backend`` for each row's plain answer, at most ``concurrency`` calls at once; one
    `Distilled` per row, in row order. Answers in ``cache`` are reused (and new ones added);
    ``on_result`` hears of each row as it finishes (e.g. for progress)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    gate = asyncio.Semaphore(concurrency)
    # Taken once, before any call: a backend may rename its model when it loads (the embedded one
    # does), and every key of this run and of a rerun must name the backend the same way.
    identity = (str(getattr(backend, "name", type(backend).__name__)), str(getattr(backend, "model", "")))

    async def one(row: BenchmarkRow) -> Distilled:
        messages = distill_messages(row, system)
        if messages is None:
            result = Distilled(row.id, "no_question", reason="the row's question is empty")
        else:
            key = _key(identity, messages, params)
            known = cache.get(key) if cache is not None else None
            if known is not None:
                result = _outcome(row.id, Generation(known["text"], known.get("finish_reason", "stop")), True)
            else:
                async with gate:
                    try:
                        generation = await backend.generate(messages, params=params)
                    except Exception as exc:  # a bad argument or a backend bug: this row's outcome, not the batch's
                        generation = Generation("", "error", status="failed", reason=f"{type(exc).__name__}: {exc}")
                if generation.ok and cache is not None:
                    cache.put(key, row.id, generation)
                result = _outcome(row.id, generation, False)
        if on_result is not None:
            maybe = on_result(result)
            if asyncio.iscoroutine(maybe):
                await maybe
        return result

    return list(await asyncio.gather(*(one(row) for row in rows)))


_SENTENCE_END = re.compile(r"(?<![\n\s]\d)(?<![\n\s]\d\d)(?<!^\d)[.!?][\"')\]]*(?=\s|$)")
MIN_TRIMMED_CHARS = 80
"""A cut-off answer is kept up to its last full sentence only when at least this much is left."""


def trim_to_sentence(text: str, min_chars: int = MIN_TRIMMED_CHARS) -> str | None:
    """``text`` (an answer cut off mid-sentence) up to the end of its last complete sentence, or
    None when less than ``min_chars`` would be left. A list number ("2.") is not a sentence end, and
    an unclosed code fence is cut off with what follows it.

    >>> trim_to_sentence("Paris is the capital of France. It has about two million inhabitants and a", 10)
    'Paris is the capital of France.'
    """
    if text.count("```") % 2:
        text = text[:text.rfind("```")]
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    if not ends:
        return None
    trimmed = text[:ends[-1]].rstrip()
    return trimmed if len(trimmed) >= min_chars else None


def distilled_target(row: BenchmarkRow, distilled: Distilled, *, seed: int = 0) -> SftTarget | SkippedRow:
    """``row``'s target from its distilled answer, or why there is none. An answer cut off at the
    token budget is kept up to its last complete sentence (`trim_to_sentence`) when enough is left:
    small models ramble past any budget, and dropping them all leaves almost no helpful answers."""
    if distilled.status == "ok":
        return build_target(row, seed=seed, response=distilled.text)
    if distilled.status == "cut_off":
        trimmed = trim_to_sentence(distilled.text)
        if trimmed is not None:
            return build_target(row, seed=seed, response=trimmed)
    reason = {"failed": "distill_failed", "cut_off": "distilled_unusable", "no_question": "no_question"}[distilled.status]
    return SkippedRow(row.id, row.data_source, reason, distilled.reason)  # type: ignore[arg-type]
