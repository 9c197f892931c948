"""The rows a training run reads, as TRL wants them.

SFT: TRL's conversational prompt-completion rows (``prompt``: the messages before the answer,
``completion``: one assistant message), read from prompt-completion files (what ``gtalign data
sft`` writes; a string prompt is one user message, a string completion one assistant message) or
from ``messages`` conversations (the last assistant turn is the completion, the turns before it
the prompt). Only ``prompt`` and ``completion`` are kept, so the loss is on the completion alone.

GRPO: prompts with what the reward needs, read by `gtalign.benchmarks.load_benchmark` (benchmark
names such as ``ambig_qa``, from their train split unless ``split`` says otherwise, never silently
from the test split that is their default elsewhere; or files in the paper's format, a completion
column ignored): ``prompt`` (messages), ``data_source``, ``ground_truth``, ``extra_info`` (as JSON
text: rows of different data sources hold different keys, which one Arrow column cannot) and
``id``.

A row that cannot be used is skipped with its place and the reason, never dropped silently.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gtalign.training._config import TrainConfig, TrainSetupError

__all__ = ["TrainRows", "grpo_rows", "load_rows", "sft_example", "sft_rows"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


@dataclass(frozen=True)
class TrainRows:
    """The usable rows, the skipped ones (``where: reason``) and notes on what was read."""

    rows: tuple[Mapping[str, Any], ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    per_source: Mapping[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        sources = ", ".join(f"{name} {count}" for name, count in sorted(self.per_source.items()))
        text = f"{len(self.rows)} training rows" + (f" ({sources})" if sources else "")
        if self.skipped:
            reasons = Counter(reason.split(": ", 1)[1] if ": " in reason else reason for reason in self.skipped)
            top = "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common(3))
            text += f"; {len(self.skipped)} skipped: {top}"
        return text


def _text(content: Any) -> str | None:
    """A message's content as text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                return None
        return "".join(parts)
    return None


def _messages(value: Any, key: str, default_role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise ValueError(f"{key!r} must be a string or a list of messages, got {type(value).__name__}")
    messages = []
    for number, message in enumerate(value):
        if not isinstance(message, Mapping):
            raise ValueError(f"{key}[{number}] is not a message ({{role, content}}), got {type(message).__name__}")
        role, content = message.get("role"), _text(message.get("content"))
        if role not in _ROLES:
            raise ValueError(f"{key}[{number}].role must be one of {', '.join(sorted(_ROLES))}, got {role!r}")
        if content is None:
            raise ValueError(f"{key}[{number}].content must be text, got {type(message.get('content')).__name__}")
        messages.append({"role": role, "content": content})
    return messages


def sft_example(fields: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """One row as ``{"prompt": [...], "completion": [assistant message]}``; `ValueError` says why not."""
    if "prompt" in fields and "completion" in fields:
        prompt = _messages(fields["prompt"], "prompt", "user")
        completion = _messages(fields["completion"], "completion", "assistant")
    elif "messages" in fields:
        messages = _messages(fields["messages"], "messages", "user")
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            raise ValueError("'messages' has no assistant turn to learn")
        prompt, completion = messages[:last], [messages[last]]
    else:
        raise ValueError(f"no 'prompt' and 'completion', and no 'messages' (keys: {', '.join(sorted(fields)) or 'none'})")
    if not prompt:
        raise ValueError("the prompt is empty: nothing comes before the answer")
    if len(completion) != 1 or completion[0]["role"] != "assistant":
        raise ValueError("the completion must be one assistant message")
    if not completion[0]["content"].strip():
        raise ValueError("the completion is empty")
    return {"prompt": prompt, "completion": completion}


def sft_rows(config: TrainConfig) -> TrainRows:
    """The SFT rows of ``config.data`` (files, dataset folders or hub ids), ``limit`` usable rows each."""
    from gtalign.data import RowSource, SourceError

    kept: list[Mapping[str, Any]] = []
    skipped: list[str] = []
    per_source: Counter[str] = Counter()
    for entry in config.data:
        try:
            source = RowSource.resolve(entry, config.split)
            rows = source.rows()
            count = 0
            for row in rows:
                where = f"{entry} {row.where}"
                if not row.ok or row.fields is None:
                    skipped.append(f"{where}: {row.error or 'unreadable'}")
                    continue
                try:
                    kept.append(sft_example(row.fields))
                except ValueError as exc:
                    skipped.append(f"{where}: {exc}")
                    continue
                per_source[str(row.fields.get("data_source") or entry)] += 1
                count += 1
                if config.limit is not None and count >= config.limit:
                    break
        except SourceError as exc:
            raise TrainSetupError(f"data {entry!r}: {exc}") from None
    return TrainRows(tuple(kept), tuple(skipped), (), dict(per_source))


def grpo_rows(config: TrainConfig) -> TrainRows:
    """The GRPO prompts of ``config.data`` (benchmark names or files), read by `load_benchmark`."""
    from gtalign.benchmarks import load_benchmark
    from gtalign.benchmarks._specs import BenchmarkError

    kept: list[Mapping[str, Any]] = []
    skipped: list[str] = []
    notes: list[str] = []
    per_source: Counter[str] = Counter()
    for entry in config.data:
        split = config.split
        if split is None and _in_paper_layout(entry):
            split = "train"
            notes.append(f"{entry}: its train split (a benchmark name defaults to its test split elsewhere; set split to "
                         "choose another)")
        try:
            benchmark = load_benchmark(entry, data=config.data_dir, limit=config.limit, sources=config.sources,
                                       prompt=config.prompt, split=split)  # type: ignore[arg-type]
        except BenchmarkError as exc:
            raise TrainSetupError(f"data {entry!r}: {exc}") from None
        notes.extend(f"{entry}: {note}" for note in benchmark.warnings)
        skipped.extend(f"{entry} row {row.index + 1}: {row.reason}" for row in benchmark.skipped)
        for row in benchmark.rows:
            kept.append({
                "prompt": [dict(message) for message in row.messages],
                "data_source": row.data_source,
                "ground_truth": row.ground_truth,
                "extra_info": json.dumps(dict(row.extra_info), sort_keys=True, default=str),
                "id": row.id,
            })
            per_source[row.data_source] += 1
    return TrainRows(tuple(kept), tuple(skipped), tuple(notes), dict(per_source))


def _in_paper_layout(entry: str) -> bool:
    """Whether ``entry`` names a benchmark read from the paper's folder layout (``ambig_qa``, ...),
    whose default split is its test split: training reads its train split unless told otherwise."""
    from gtalign.benchmarks._load import resolve_spec
    from gtalign.benchmarks._specs import BenchmarkError

    try:
        return resolve_spec(entry).path is None
    except (BenchmarkError, ValueError, LookupError):
        return False


def load_rows(config: TrainConfig) -> TrainRows:
    """The rows of the run; no usable row at all is a `TrainSetupError` with the first reasons."""
    rows = sft_rows(config) if config.kind == "sft" else grpo_rows(config)
    if not rows.rows:
        first = "; ".join(rows.skipped[:3]) or "the data holds no rows"
        raise TrainSetupError(f"no usable training row in {', '.join(config.data)}: {first}")
    return rows
