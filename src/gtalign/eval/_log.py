"""The evaluation run log: one versioned JSONL file that is the run's record, its resume state, and
the only input of metrics, reports and the viewer.

Line 1 is a `RunHeader` (schema version first, gtalign's version, the full config and its hash,
the backend's and judge's ids). Every further line is one finished `SampleRecord`: one prompt of
one benchmark at one epoch, with the raw answer, its parse, the steering record, every reward
component and the judge's reply. A record is written once its row is finished (scored, or failed
with the reason), so a killed run loses at most the rows in flight; resuming keeps records whose
``status`` is final and re-runs the others.

Reading never raises on a bad line: a corrupt or truncated line is reported (`RunLog.problems`)
and skipped, so a report can always be made from what is there.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "SCHEMA_VERSION",
    "AnswerParse",
    "LogProblem",
    "RecordStatus",
    "RunHeader",
    "RunLog",
    "SampleRecord",
    "config_hash",
    "read_run_log",
    "records_of",
    "write_records",
]

SCHEMA_VERSION = 1
RecordStatus = Literal["scored", "unscored", "generation_failed", "error"]
"""``scored``: a reward was computed (a parse failure scored 0 included). ``unscored``: the judge
gave no usable verdict (the reward's reason says why). ``generation_failed``: the model call failed
(server error, context overflow, timeout). ``error``: the row itself could not be run (bad prompt,
unknown data source). What a resume keeps: `SampleRecord.final`."""
_STATUSES: tuple[str, ...] = ("scored", "unscored", "generation_failed", "error")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable hash of a JSON-ready config (keys sorted): what resume compares."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _block_tokens(value: Any) -> Mapping[str, int]:
    """Per-block token counts as read: non-negative integers only (an older log has none)."""
    if not isinstance(value, Mapping):
        return _EMPTY
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0}


@dataclass(frozen=True, slots=True)
class RunHeader:
    """What produced a run: enough to refuse a resume with another config and to label reports."""

    config: Mapping[str, Any]
    config_hash: str
    gtalign: str
    created: str
    backend: str = ""
    judge: str = ""
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"kind": "header", "schema": self.schema, "gtalign": self.gtalign, "created": self.created,
                "config_hash": self.config_hash, "backend": self.backend, "judge": self.judge,
                "config": dict(self.config)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunHeader:
        if data.get("kind") != "header":
            raise ValueError("the first line is not a run header (kind != 'header')")
        schema = data.get("schema")
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise ValueError(f"run log schema {schema!r} is newer than this gtalign reads ({SCHEMA_VERSION}); upgrade gtalign")
        config = data.get("config")
        if not isinstance(config, Mapping):
            raise ValueError("run header has no config object")
        return cls(config=dict(config), config_hash=str(data.get("config_hash", "")), gtalign=str(data.get("gtalign", "")),
                   created=str(data.get("created", "")), backend=str(data.get("backend", "")),
                   judge=str(data.get("judge", "")), schema=schema)


@dataclass(frozen=True, slots=True)
class AnswerParse:
    """What the structural parse (`parse_answer`) found in the final answer, and the consistency
    checks the metrics need: ``welfare_key`` is the decision rule's choice on the model's own
    matrix (None without a matrix), ``response_act`` what the response carries out (`classify_act`).
    """

    format_ok: bool = False
    well_formed: bool = False
    blocks: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    matrix: Mapping[str, Mapping[str, float]] | None = None
    chosen_key: str | None = None
    welfare_key: str | None = None
    question_type: str | None = None
    action: str | None = None
    response_act: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def chosen_is_welfare_choice(self) -> bool | None:
        """None when there is nothing to check (no matrix or no chosen key)."""
        if self.chosen_key is None or self.welfare_key is None:
            return None
        return self.chosen_key == self.welfare_key

    @property
    def response_carries_out_choice(self) -> bool | None:
        if self.action is None or self.response_act is None:
            return None
        return self.action == self.response_act

    def to_json(self) -> dict[str, Any]:
        return {
            "format_ok": self.format_ok, "well_formed": self.well_formed, "blocks": dict(self.blocks),
            "matrix": None if self.matrix is None else {k: dict(v) for k, v in self.matrix.items()},
            "chosen_key": self.chosen_key, "welfare_key": self.welfare_key, "question_type": self.question_type,
            "action": self.action, "response_act": self.response_act, "problems": list(self.problems),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnswerParse:
        matrix = data.get("matrix")
        return cls(
            format_ok=bool(data.get("format_ok", False)),
            well_formed=bool(data.get("well_formed", False)),
            blocks={str(k): str(v) for k, v in (data.get("blocks") or {}).items()},
            matrix=None if not isinstance(matrix, Mapping) else {str(k): dict(v) for k, v in matrix.items()},
            chosen_key=data.get("chosen_key"),
            welfare_key=data.get("welfare_key"),
            question_type=data.get("question_type"),
            action=data.get("action"),
            response_act=data.get("response_act"),
            problems=tuple(str(p) for p in data.get("problems") or ()),
        )


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One finished row: one prompt of one benchmark at one epoch.

    ``id`` is stable across runs (``benchmark/row-index`` of the source data, or the row's own id),
    so two runs on the same prompts join on ``(id, epoch)``. ``label`` is the ground-truth class the
    action mix and classification metrics group by: ``ambiguous`` / ``clear`` (ambiguity tasks),
    ``harmful`` / ``unharmful`` (safety tasks), ``""`` elsewhere. ``reward`` is
    `RewardResult.to_log()` (score, user_reward, llm_reward, answer_reward, utility, ...).
    ``steering`` is `SteeringResult.to_record()` for a steered run, else None. ``seconds`` holds
    wall seconds: ``generate``; ``judge``, the row's share of its scoring batch (the batch's time
    over its rows, so a sum over rows is the time spent judging); ``judge_batch``, that batch's
    whole time (logs before it have only ``judge``, which was then the batch's time).
    ``tokens_by_block`` counts the answer's tokens per four-block block it has (``thinking``,
    ``payoff``, ``analyze``, ``response``; an empty block is 0) with the backend's own tokenizer,
    where the backend can count (empty otherwise, and when counting failed).
    """

    id: str
    epoch: int
    benchmark: str
    data_source: str
    status: RecordStatus
    label: str = ""
    prompt: tuple[Mapping[str, str], ...] = ()
    ground_truth: str = ""
    answer: str = ""
    parse: AnswerParse = field(default_factory=AnswerParse)
    reward: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    steering: Mapping[str, Any] | None = None
    judge_raw: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    seconds: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    error: str = ""
    tokens_by_block: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    constraint: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}, got {self.status!r}")

    @property
    def key(self) -> tuple[str, int]:
        return self.id, self.epoch

    @property
    def scored(self) -> bool:
        return self.status == "scored"

    @property
    def final(self) -> bool:
        """Kept on resume: scored rows and rows that cannot succeed by asking again (an unusable
        verdict the judge did give, an unknown data source). Generation failures, error rows and
        judge failures (``judge_status == "failed"``) are run again."""
        if self.status in ("scored", "unscored"):
            # A failed judge (scored 0 for it under unscored_as_zero, or unscored) may answer next time.
            return self.reward.get("judge_status") != "failed"
        # Generation failures and error rows run again: an error may come from scoring (a bug fixed
        # since) or from writing the record, and a row whose input is broken fails again at once.
        return False

    def metric(self, name: str) -> float | None:
        """A reward component as a finite float (None when absent or not a number)."""
        return _finite(self.reward.get(name))

    @property
    def user_reward(self) -> float | None:
        return self.metric("user_reward")

    @property
    def llm_reward(self) -> float | None:
        return self.metric("llm_reward")

    @property
    def welfare(self) -> float | None:
        """The Cobb-Douglas welfare ``sqrt(U*L)``, whatever the preset's score: the reward's
        ``utility``, else computed from U and L (a result that logs no utility, or an older log),
        so no average of welfare drops a row that has U and L."""
        utility = self.metric("utility")
        if utility is not None:
            return utility
        user, llm = self.user_reward, self.llm_reward
        if user is None or llm is None or user < 0 or llm < 0:
            return None
        return math.sqrt(user * llm)

    @property
    def response(self) -> str:
        return self.parse.blocks.get("response", "")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "sample", "id": self.id, "epoch": self.epoch, "benchmark": self.benchmark,
            "data_source": self.data_source, "label": self.label, "status": self.status, "error": self.error,
            "prompt": [dict(m) for m in self.prompt], "ground_truth": self.ground_truth, "answer": self.answer,
            "parse": self.parse.to_json(), "reward": dict(self.reward),
            "steering": None if self.steering is None else dict(self.steering), "judge_raw": self.judge_raw,
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "seconds": dict(self.seconds),
            "tokens_by_block": dict(self.tokens_by_block),
            **({"constraint": dict(self.constraint)} if self.constraint is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SampleRecord:
        if data.get("kind") != "sample":
            raise ValueError(f"not a sample record (kind={data.get('kind')!r})")
        for key in ("id", "epoch", "benchmark", "data_source", "status"):
            if key not in data:
                raise ValueError(f"sample record without {key!r}")
        epoch = data["epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        return cls(
            id=str(data["id"]), epoch=epoch, benchmark=str(data["benchmark"]), data_source=str(data["data_source"]),
            status=data["status"], label=str(data.get("label") or ""),
            prompt=tuple({str(k): str(v) for k, v in m.items()} for m in data.get("prompt") or ()),
            ground_truth=str(data.get("ground_truth") or ""), answer=str(data.get("answer") or ""),
            parse=AnswerParse.from_json(data.get("parse") or {}), reward=dict(data.get("reward") or {}),
            steering=data.get("steering"), judge_raw=data.get("judge_raw"),
            tokens_in=data.get("tokens_in"), tokens_out=data.get("tokens_out"),
            seconds={str(k): float(v) for k, v in (data.get("seconds") or {}).items()},
            error=str(data.get("error") or ""),
            tokens_by_block=_block_tokens(data.get("tokens_by_block")),
            constraint=dict(data["constraint"]) if isinstance(data.get("constraint"), Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class LogProblem:
    """A line of a run log that was skipped, and why (1-based line number)."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RunLog:
    """A run log as read: its header, its records (the last record per ``(id, epoch)`` wins, so a
    re-run row replaces its failed attempt), and the lines that were skipped."""

    path: Path
    header: RunHeader | None
    records: tuple[SampleRecord, ...]
    problems: tuple[LogProblem, ...] = ()

    @property
    def name(self) -> str:
        """The run's label in reports: the config's ``name`` when set, else the folder's name."""
        name = self.header.config.get("name") if self.header is not None else None
        return str(name) if name else self.path.parent.name or self.path.stem

    def by_key(self) -> dict[tuple[str, int], SampleRecord]:
        return {record.key: record for record in self.records}


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            yield number, raw


def read_run_log(path: str | Path) -> RunLog:
    """Read a run log (a ``run.jsonl`` path, or a run folder holding one). Never raises on a bad
    line: it is skipped and reported; a missing or unreadable header is a problem, not an error."""
    path = Path(path)
    if path.is_dir():
        path = path / "run.jsonl"
    header: RunHeader | None = None
    records: dict[tuple[str, int], SampleRecord] = {}
    problems: list[LogProblem] = []
    for number, raw in _lines(path):
        if not raw.strip():
            continue
        if not raw.endswith(b"\n"):
            problems.append(LogProblem(number, "truncated line (no newline at the end): a run was killed while writing it"))
            continue
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            problems.append(LogProblem(number, f"not JSON: {exc}"))
            continue
        if not isinstance(data, Mapping):
            problems.append(LogProblem(number, f"a JSON {type(data).__name__}, not an object"))
            continue
        try:
            if data.get("kind") == "header":
                if header is not None:
                    raise ValueError("a second header")
                header = RunHeader.from_json(data)
            else:
                record = SampleRecord.from_json(data)
                records.pop(record.key, None)  # the later attempt replaces it, at the end
                records[record.key] = record
        except (ValueError, TypeError, AttributeError) as exc:
            problems.append(LogProblem(number, str(exc)))
    if header is None:
        problems.insert(0, LogProblem(1, "no run header"))
    return RunLog(path, header, tuple(records.values()), tuple(problems))


def write_records(lines: Iterable[RunHeader | SampleRecord], handle: Any) -> None:
    """Append header/records as JSON lines (the runner flushes and fsyncs after each batch)."""
    for item in lines:
        handle.write(json.dumps(item.to_json(), ensure_ascii=False, allow_nan=False) + "\n")


def records_of(logs: Sequence[RunLog]) -> list[SampleRecord]:
    """Every record of several logs, in order."""
    return [record for log in logs for record in log.records]
