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

Held-out questions: unless ``allow_eval_data`` is set, a training row whose question (normalised:
lower case, whitespace collapsed; `question_keys`) is one of the held-out evaluation's is dropped
and counted in the notes. The held-out evaluation is the test split of every paper benchmark the
data names (a GRPO benchmark name) or its rows' ``data_source`` names, and the ``eval``
benchmarks. The paper's train splits repeat test questions verbatim (about 400 math-hard train rows
ask one of its test questions).

``limit``: N usable rows of each data entry (after the held-out rows are dropped), drawn with
``random.Random(sample_seed)`` and kept in file order.

Before training, `fit_to_length` drops SFT rows longer than TRL's ``max_length`` (TRL would cut
them from the end, and with them the answer's closing tags) and `prompt_length_percentiles`
describes GRPO's prompts; both count tokens with a function the caller passes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gtalign.benchmarks._load import sample_indices
from gtalign.training._config import TrainConfig, TrainSetupError

__all__ = [
    "HeldOut",
    "HeldOutSet",
    "TrainRows",
    "drop_eval_overlap",
    "fit_to_length",
    "grpo_rows",
    "held_out_questions",
    "load_rows",
    "normalise_question",
    "prompt_length_percentiles",
    "question_keys",
    "row_question_keys",
    "sample_indices",
    "sft_example",
    "sft_rows",
]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
_PROMPT_MODES = ("stored", "builder")
_T = TypeVar("_T")


@dataclass(frozen=True)
class TrainRows:
    """The usable rows, the skipped ones (``where: reason``) and notes on what was read.

    per_source: rows per data source. row_sources: each row's data source, in row order (SFT rows
    keep only ``prompt`` and ``completion``). prompt_mode: the prompt mode every row was built for
    (``stored`` or ``builder``: GRPO's ``prompt``, SFT rows' ``prompt_mode`` as ``gtalign data
    sft`` records it), None when the rows do not say or differ. dropped_eval: per data entry, the
    rows dropped because their question is a held-out one.
    """

    rows: tuple[Mapping[str, Any], ...]
    skipped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    per_source: Mapping[str, int] = field(default_factory=dict)
    row_sources: tuple[str, ...] = ()
    prompt_mode: str | None = None
    dropped_eval: Mapping[str, int] = field(default_factory=dict)

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


@dataclass(frozen=True)
class _Candidate:
    """A usable row before the held-out questions are dropped and ``limit`` is drawn."""

    row: Mapping[str, Any]
    source: str
    keys: frozenset[str]
    data_source: str | None = None
    prompt_mode: str | None = None


def sft_rows(config: TrainConfig) -> TrainRows:
    """The SFT rows of ``config.data`` (files, dataset folders or hub ids), ``limit`` usable rows each."""
    from gtalign.data import RowSource, SourceError

    entries: list[tuple[str, list[_Candidate]]] = []
    skipped: list[str] = []
    notes: list[str] = []
    for entry in config.data:
        candidates: list[_Candidate] = []
        odd_modes: Counter[str] = Counter()
        try:
            source = RowSource.resolve(entry, config.split)
            for row in source.rows():
                where = f"{entry} {row.where}"
                if not row.ok or row.fields is None:
                    skipped.append(f"{where}: {row.error or 'unreadable'}")
                    continue
                try:
                    example = sft_example(row.fields)
                except ValueError as exc:
                    skipped.append(f"{where}: {exc}")
                    continue
                data_source = row.fields.get("data_source")
                data_source = data_source if isinstance(data_source, str) and data_source else None
                mode = row.fields.get("prompt_mode")
                if mode is not None and mode not in _PROMPT_MODES:
                    odd_modes[str(mode)] += 1
                    mode = None
                candidates.append(_Candidate(example, data_source or entry,
                                             question_keys(example["prompt"], _extra_info(row.fields.get("extra_info"))),
                                             data_source, mode))
        except SourceError as exc:
            raise TrainSetupError(f"data {entry!r}: {exc}") from None
        notes.extend(f"{entry}: {count} rows give prompt_mode {mode!r} (not {' or '.join(_PROMPT_MODES)}); ignored"
                     for mode, count in odd_modes.items())
        entries.append((entry, candidates))
    return _finish(config, entries, skipped, notes)


def grpo_rows(config: TrainConfig) -> TrainRows:
    """The GRPO prompts of ``config.data`` (benchmark names or files), read by `load_benchmark`."""
    from gtalign.benchmarks import load_benchmark
    from gtalign.benchmarks._specs import BenchmarkError

    entries: list[tuple[str, list[_Candidate]]] = []
    skipped: list[str] = []
    notes: list[str] = []
    for entry in config.data:
        split = config.split
        if split is None and _in_paper_layout(entry):
            split = "train"
            notes.append(f"{entry}: its train split (a benchmark name defaults to its test split elsewhere; set split to "
                         "choose another)")
        try:
            benchmark = load_benchmark(entry, data=config.data_dir, sources=config.sources,
                                       prompt=config.prompt, split=split)  # type: ignore[arg-type]
        except BenchmarkError as exc:
            raise TrainSetupError(f"data {entry!r}: {exc}") from None
        notes.extend(f"{entry}: {note}" for note in (_game_note(text, config) for text in benchmark.warnings) if note)
        skipped.extend(f"{entry} row {row.index + 1}: {row.reason}" for row in benchmark.skipped)
        candidates = [
            _Candidate({
                "prompt": [dict(message) for message in row.messages],
                "data_source": row.data_source,
                "ground_truth": row.ground_truth,
                "extra_info": json.dumps(dict(row.extra_info), sort_keys=True, default=str),
                "id": row.id,
            }, row.data_source, row_question_keys(row), row.data_source, config.prompt)
            for row in benchmark.rows
        ]
        entries.append((entry, candidates))
    return _finish(config, entries, skipped, notes)


_UNKNOWN_TASK = re.compile(r"^data source (['\"])(?P<name>.*?)\1 \((?P<rows>[^)]*)\) is not a registered task")
_GAME_SOURCE = "game/"  # gtalign.training._games.DATA_SOURCE_PREFIX (not imported: that module imports the games)


def _game_note(note: str, config: TrainConfig) -> str | None:
    """The loader's note on a data source no preset can score, as it applies to game rows: none
    for a game's decision rows (``game/...``) under ``reward.mode: game``; another one for game rows
    in another mode (only the game reward scores them) and for other rows in ``game`` mode."""
    found = _UNKNOWN_TASK.match(note)
    if found is None:
        return note
    game_mode = config.reward is not None and config.reward.mode == "game"
    name, rows = found["name"], found["rows"]
    if name.startswith(_GAME_SOURCE):
        return None if game_mode else (f"data source {name!r} ({rows}) holds a game's decisions: only reward mode game "
                                       "(gtalign games train) scores them, so they stay unscored here")
    if game_mode:
        return f"data source {name!r} ({rows}) is not a game's: reward mode game leaves its rows unscored"
    return note


def _finish(config: TrainConfig, entries: Sequence[tuple[str, Sequence[_Candidate]]], skipped: Sequence[str],
            notes: Sequence[str]) -> TrainRows:
    """Drop the held-out questions (unless ``allow_eval_data``), draw ``limit`` rows of each
    entry, and count what is left."""
    notes = list(notes)
    dropped: dict[str, int] = {}
    if not config.allow_eval_data:
        data_sources = dict.fromkeys(c.data_source for _, candidates in entries for c in candidates if c.data_source)
        held_out = held_out_questions(_held_out_sets(config, [name for name in data_sources if name]))
        notes.extend(held_out.notes)
        if held_out.sets and not held_out.keys:
            notes.append(f"held-out evaluation ({held_out.describe()}): no question read, nothing checked")
        if held_out.keys:
            checked = []
            for entry, candidates in entries:
                kept, gone = drop_eval_overlap(candidates, held_out.keys, keys=lambda c: c.keys)
                checked.append((entry, kept))
                if gone:
                    dropped[entry] = len(gone)
                    notes.append(f"{entry}: {len(gone)} rows dropped: their question is in the held-out evaluation "
                                 f"({held_out.describe()}); allow_eval_data (--allow-eval-data) keeps them")
            entries = checked
            if not dropped:
                notes.append(f"no training row asks a question of the held-out evaluation ({held_out.describe()})")
    rows: list[Mapping[str, Any]] = []
    sources: list[str] = []
    modes: Counter[str | None] = Counter()
    for entry, candidates in entries:
        if config.limit is not None and len(candidates) > config.limit:
            picked = sample_indices(len(candidates), config.limit, config.sample_seed)
            notes.append(f"{entry}: {config.limit} of its {len(candidates)} usable rows, sampled with sample_seed "
                         f"{config.sample_seed} (kept in file order)")
            candidates = [candidates[index] for index in picked]
        for candidate in candidates:
            rows.append(candidate.row)
            sources.append(candidate.source)
            modes[candidate.prompt_mode] += 1
    mode = next(iter(modes)) if len(modes) == 1 else None
    if config.kind == "sft" and mode is not None:
        notes.append(f"the rows were built for the {mode} prompt (their prompt_mode)")
    if len(modes) > 1:
        counts = ", ".join(f"{name or 'not recorded'} {count}" for name, count in modes.most_common())
        notes.append(f"the rows were built for different prompt modes ({counts}): the evaluation uses eval.prompt "
                     "(default stored)")
    return TrainRows(tuple(rows), tuple(skipped), tuple(notes), dict(Counter(sources)), tuple(sources), mode, dropped)


# -- held-out questions ----------------------------------------------------------------------------


def normalise_question(text: str) -> str:
    """``text`` lower-cased with its whitespace collapsed to single spaces (and none at the ends)."""
    return " ".join(text.lower().split())


def _extra_info(value: Any) -> Mapping[str, Any]:
    """A row's ``extra_info``: a mapping, or JSON text of one (GRPO rows); anything else is empty."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


def question_keys(messages: Sequence[Mapping[str, Any]], extra_info: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The normalised forms of the question a prompt asks: the last user turn of the bare
    conversation (`gtalign.training._targets.bare_conversation`: ``extra_info.chat_history``,
    else ``single_turn_prompt``, else the prompt's last user turn after its last ``Question:``),
    ``extra_info.single_turn_prompt``, and the prompt's last user message after its last
    ``Question:`` (all of it when it has none). The stored prompt asks the conversation's last turn
    and gtalign's builder the single-turn question, so a row matches under either prompt mode.
    Empty forms are left out."""
    from gtalign.benchmarks import BenchmarkRow
    from gtalign.training._targets import bare_conversation

    extra = extra_info if isinstance(extra_info, Mapping) else {}
    texts: list[str] = []
    turns = tuple(m for m in messages if isinstance(m, Mapping))
    bare = bare_conversation(BenchmarkRow("", "", "", turns, "", extra_info=extra))
    asked = [m.get("content") for m in bare or () if m.get("role") == "user"]
    if asked and isinstance(asked[-1], str):
        texts.append(asked[-1])
    single = extra.get("single_turn_prompt")
    if isinstance(single, str):
        texts.append(single)
    last = next((m.get("content") for m in reversed(turns) if m.get("role") == "user"), None)
    if isinstance(last, str):
        head, found, tail = last.rpartition("Question:")
        texts.append(tail if found else last)
    return frozenset(key for key in map(normalise_question, texts) if key)


def row_question_keys(row: Any) -> frozenset[str]:
    """`question_keys` of a `gtalign.benchmarks.BenchmarkRow`."""
    return question_keys(row.messages, row.extra_info)


def _row_keys(row: Mapping[str, Any]) -> frozenset[str]:
    """`question_keys` of a TRL row: ``prompt`` (messages, or a string: one user message) or a
    ``messages`` conversation, and ``extra_info`` (a mapping or JSON text) when it has one."""
    prompt = row.get("prompt", row.get("messages"))
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    messages = [m for m in prompt if isinstance(m, Mapping)] if isinstance(prompt, Sequence) else []
    return question_keys(messages, _extra_info(row.get("extra_info")))


def drop_eval_overlap(rows: Iterable[_T], eval_questions: Set[str], *,
                      keys: Callable[[_T], Set[str]] | None = None) -> tuple[list[_T], list[_T]]:
    """``rows`` split into those kept and those dropped because one of their `question_keys` is
    in ``eval_questions`` (normalised questions of the held-out evaluation), each in row order.
    ``keys``: a row's question keys (default: a TRL row's, from its ``prompt`` and
    ``extra_info``)."""
    key_of: Callable[[Any], Set[str]] = _row_keys if keys is None else keys
    kept: list[_T] = []
    dropped: list[_T] = []
    for row in rows:
        (dropped if not eval_questions.isdisjoint(key_of(row)) else kept).append(row)
    return kept, dropped


@dataclass(frozen=True)
class HeldOutSet:
    """One held-out set of questions to load: a benchmark, the folder and split to read it from,
    and how to name it (``math-hard test split``)."""

    name: str
    data: str | None
    split: str | None
    label: str


@dataclass(frozen=True)
class HeldOut:
    """The normalised questions of the held-out evaluation, the sets read (with their row counts),
    and notes on the sets that could not be read."""

    keys: frozenset[str]
    sets: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        return ", ".join(label for label, _ in self.sets)


def _held_out_sets(config: TrainConfig, data_sources: Iterable[str]) -> list[HeldOutSet]:
    """The test split of each paper benchmark in ``config.data`` or ``data_sources``, and the
    ``eval`` benchmarks as the evaluation reads them."""
    sets: dict[tuple[str, str | None, str | None], HeldOutSet] = {}
    from gtalign._registry import REGISTRY

    # data sources are read from rows: only registered benchmark names, never a dotted path that imports
    for name in (*config.data, *(source for source in data_sources if ("benchmark", source) in REGISTRY)):
        if _in_paper_layout(name):
            sets.setdefault((name, config.data_dir, "test"), HeldOutSet(name, config.data_dir, "test", f"{name} test split"))
    evaluation = config.eval or {}
    data = evaluation.get("data") or config.data_dir
    split = evaluation.get("split")
    for name in evaluation.get("benchmarks") or ():
        paper = _in_paper_layout(name)
        key = (name, data, split or ("test" if paper else None))
        label = f"{name} {split} split" if split else (f"{name} test split" if paper else name)
        sets.setdefault(key, HeldOutSet(name, data, split, label))
    return list(sets.values())


def held_out_questions(sets: Iterable[HeldOutSet]) -> HeldOut:
    """The question keys of every row of ``sets`` (read by `load_benchmark`); a set that cannot
    be read (its test split is not there) is left out with a note."""
    from gtalign.benchmarks import load_benchmark
    from gtalign.benchmarks._specs import BenchmarkError

    keys: set[str] = set()
    read: list[tuple[str, int]] = []
    notes: list[str] = []
    for held in sets:
        try:
            benchmark = load_benchmark(held.name, data=held.data, split=held.split)
        except (BenchmarkError, ValueError) as exc:
            notes.append(f"held-out {held.label}: not read, so not checked for training rows asking its questions ({exc})")
            continue
        for row in benchmark.rows:
            keys.update(row_question_keys(row))
        read.append((held.label, len(benchmark.rows)))
    return HeldOut(frozenset(keys), tuple(read), tuple(notes))


# -- lengths ---------------------------------------------------------------------------------------


def fit_to_length(rows: TrainRows, count_tokens: Callable[[Mapping[str, Any]], int], max_length: int | None,
                  kind: str) -> TrainRows:
    """``rows`` fitted to TRL's token budget, with what was done in its notes.

    SFT (``kind="sft"``): rows whose ``count_tokens(row)`` (the prompt and the completion, as the
    trainer tokenises them) exceeds ``max_length`` are dropped: TRL cuts a long row from the end,
    so the model would learn an answer that never closes its tags. GRPO: nothing is dropped; the
    note gives the prompts' token-length percentiles (`prompt_length_percentiles`, with
    ``count_tokens(row)`` the prompt's tokens) and, with a ``max_length`` (TRL's prompt budget),
    how many prompts exceed it. ``max_length`` None: no budget (SFT rows are all kept)."""
    if kind not in ("sft", "grpo"):
        raise ValueError(f"kind must be sft or grpo, got {kind!r}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise ValueError(f"max_length must be an integer >= 1 or None, got {max_length!r}")
    lengths = [_count(count_tokens, row, number) for number, row in enumerate(rows.rows)]
    if kind == "grpo":
        percentiles = prompt_length_percentiles(lengths)
        text = ", ".join(f"p{p} {value}" for p, value in percentiles.items())
        note = f"prompt tokens: {text}" if lengths else "prompt tokens: no rows"
        if max_length is not None:
            over = sum(1 for length in lengths if length > max_length)
            note += f"; {over} of {len(lengths)} prompts longer than max_length={max_length} tokens"
        return dataclasses.replace(rows, notes=(*rows.notes, note))
    if max_length is None:
        return rows
    keep = [number for number, length in enumerate(lengths) if length <= max_length]
    if len(keep) == len(lengths):
        return rows
    longest = max(lengths)
    sources = rows.row_sources if len(rows.row_sources) == len(rows.rows) else ()
    kept_sources = tuple(sources[number] for number in keep) if sources else ()
    note = (f"{len(lengths) - len(keep)} rows dropped: longer than max_length={max_length} tokens (longest {longest}); "
            "TRL would cut them before the answer closes")
    return dataclasses.replace(rows, rows=tuple(rows.rows[number] for number in keep), notes=(*rows.notes, note),
                    row_sources=kept_sources, per_source=dict(Counter(kept_sources)) if sources else rows.per_source)


def prompt_length_percentiles(lengths: Sequence[int], percentiles: Sequence[int] = (50, 90, 95, 99, 100)) -> dict[int, int]:
    """The token lengths at ``percentiles`` (nearest rank: the smallest length at least that share
    of the rows reach), ``{}`` for no rows."""
    ordered = sorted(lengths)
    if not ordered:
        return {}
    out: dict[int, int] = {}
    for p in percentiles:
        if not 0 <= p <= 100:
            raise ValueError(f"percentiles must be in 0..100, got {p!r}")
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        out[p] = ordered[rank - 1]
    return out


def _count(count_tokens: Callable[[Mapping[str, Any]], int], row: Mapping[str, Any], number: int) -> int:
    value = count_tokens(row)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"count_tokens gave {value!r} for row {number + 1}, not a token count")
    return value


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
        if rows.dropped_eval:
            first = (f"{sum(rows.dropped_eval.values())} rows dropped: their question is in the held-out evaluation "
                     "(allow_eval_data, --allow-eval-data, keeps them)" + (f"; {first}" if rows.skipped else ""))
        raise TrainSetupError(f"no usable training row in {', '.join(config.data)}: {first}")
    return rows
