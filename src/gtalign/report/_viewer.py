"""The per-sample data the HTML viewer shows, and how it is put inside a ``<script>`` safely.

One dict per record, with what a reviewer needs and nothing the viewer cannot show: the steering
record keeps its game (matrices, decisions, fallbacks, stage timings) but drops what it repeats
(the whole turn, the blocks and each stage's text, which the record's answer and parse hold; each
decision's payoffs, which the matrices hold).
Message texts are interned: the system prompt every sample shares is stored once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gtalign.eval import SampleRecord

__all__ = ["json_for_script", "sample_action", "viewer_data"]

_STEERING_REPEATS = ("text", "blocks", "response")
_STAGE_REPEATS = ("text",)
_DECISION_REPEATS = ("payoffs",)


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null, so the file always parses."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def json_for_script(data: Any) -> str:
    """JSON that cannot end the ``<script>`` element holding it: every ``<`` is written ``\\u003c``,
    so no sample text (``</script>``, ``<!--``) is read as markup. ``JSON.parse`` gives the text back."""
    text = json.dumps(_clean(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def sample_action(record: SampleRecord) -> str:
    """The action the answer took: the parsed ``<analyze>`` choice, else the steering's chosen key's."""
    if record.parse.action:
        return record.parse.action
    steering = record.steering or {}
    key = steering.get("chosen_key")
    if isinstance(key, str) and "_" in key:
        return key.partition("_")[2]
    return ""


def _steering(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if record is None:
        return None
    out = {k: v for k, v in record.items() if k not in _STEERING_REPEATS}
    for name in ("decision", "unsteered"):
        if isinstance(out.get(name), Mapping):
            out[name] = {k: v for k, v in out[name].items() if k not in _DECISION_REPEATS}
    stages = record.get("stages")
    if isinstance(stages, list):
        out["stages"] = [{k: v for k, v in s.items() if k not in _STAGE_REPEATS} if isinstance(s, Mapping) else s
                         for s in stages]
    return out


class _Texts:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, text: str) -> int:
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.items)
            self.items.append(text)
        return found


def _sample(run: int, record: SampleRecord, texts: _Texts) -> dict[str, Any]:
    parse = record.parse.to_json()
    parse.pop("blocks", None)
    return {
        "run": run, "id": record.id, "epoch": record.epoch, "benchmark": record.benchmark,
        "source": record.data_source, "label": record.label, "status": record.status, "error": record.error,
        "action": sample_action(record),
        "prompt": [[str(m.get("role", "")), texts.add(str(m.get("content", "")))] for m in record.prompt],
        "ground_truth": record.ground_truth, "answer": record.answer, "blocks": dict(record.parse.blocks),
        "parse": parse, "reward": dict(record.reward), "steering": _steering(record.steering),
        "judge_raw": record.judge_raw, "tokens_in": record.tokens_in, "tokens_out": record.tokens_out,
        "seconds": dict(record.seconds),
    }


def viewer_data(runs: Sequence[Mapping[str, Any]], records: Sequence[Sequence[SampleRecord]],
                report: Mapping[str, Any]) -> dict[str, Any]:
    """What the page's JavaScript reads: the runs (name, config, problems), every record of every
    run (``records[i]`` belongs to ``runs[i]``), the interned texts and the report's numbers."""
    texts = _Texts()
    samples = [_sample(i, record, texts) for i, run_records in enumerate(records) for record in run_records]
    return {"runs": list(runs), "samples": samples, "texts": texts.items, "report": report}
