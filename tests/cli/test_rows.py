"""Row I/O: streaming readers, the row -> Sample mapping, the append-only writer, torn-tail repair."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtalign.data import (
    MAX_NESTING,
    JsonlWriter,
    NestingError,
    Row,
    RowError,
    RowSource,
    SourceError,
    parse_verdict,
    plain,
    read_dataset,
    read_jsonl,
    read_parquet,
    row_to_sample,
    too_deep,
    truncate_torn_tail,
)

GOOD = {"data_source": "math-hard", "completion": "<response>4</response>", "ground_truth": "4"}


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(line if isinstance(line, bytes) else line.encode("utf-8"))
            handle.write(b"\n")
    return path


# --- JSONL -----------------------------------------------------------------------------------


def test_jsonl_malformed_lines_become_error_rows_and_the_stream_goes_on(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rows.jsonl", [
        json.dumps({"id": 1}),
        '{"id": 2, oops}',
        "",
        "[1, 2]",
        b'{"id": "\xff"}',
        json.dumps({"id": 6}),
    ])
    rows = list(read_jsonl(path))
    assert [r.number for r in rows] == [1, 2, 3, 4, 5]
    assert [r.line for r in rows] == [1, 2, 4, 5, 6]
    assert rows[0].ok and rows[0].fields == {"id": 1}
    assert not rows[1].ok and rows[1].error.startswith("line 2: invalid JSON") and rows[1].fields is None
    assert "must be a JSON object, got list" in rows[2].error and rows[2].line == 4
    assert "not valid UTF-8" in rows[3].error
    assert rows[4].fields == {"id": 6}
    assert rows[4].where == "row 5 (line 6)"


def test_jsonl_skip_does_not_parse_the_skipped_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "rows.jsonl", ["not json", "{also not", json.dumps({"id": 3})])
    rows = list(read_jsonl(path, skip=2))
    assert len(rows) == 1 and rows[0].ok and rows[0].number == 3


def test_jsonl_accepts_a_byte_order_mark_and_a_binary_stream() -> None:
    data = "\ufeff" + json.dumps({"id": 1}) + "\n" + json.dumps({"id": 2}) + "\n"
    rows = list(read_jsonl(io.BytesIO(data.encode("utf-8"))))
    assert [r.fields for r in rows] == [{"id": 1}, {"id": 2}]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), st.one_of(st.none(), st.integers(), st.text(max_size=20), st.floats(allow_nan=False)), max_size=4), max_size=8))
def test_writer_then_reader_round_trips_rows_in_order(tmp_path_factory: pytest.TempPathFactory, rows: list[dict]) -> None:
    path = tmp_path_factory.mktemp("rt") / "out.jsonl"
    with JsonlWriter(path, append=False) as writer:
        writer.write_many(rows)
    assert [r.fields for r in read_jsonl(path)] == rows


def test_writer_flushes_every_call_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.jsonl"
    writer = JsonlWriter(path)
    writer.write({"a": 1})
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n'  # visible before close
    writer.write_many([{"b": "é"}, {"c": None}])
    writer.close()
    with JsonlWriter(path) as again:
        again.write({"d": 2})
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == [{"a": 1}, {"b": "é"}, {"c": None}, {"d": 2}]
    with pytest.raises(ValueError, match="closed"):
        writer.write({"e": 3})


def test_lone_surrogates_round_trip_as_json_escapes(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", ['{"k\\udc80": "a\\ud800b"}'])
    fields = next(read_jsonl(path)).fields
    assert fields == {"k\udc80": "a\ud800b"}
    with JsonlWriter(tmp_path / "out.jsonl", append=False) as writer:
        writer.write(fields)
    assert next(read_jsonl(tmp_path / "out.jsonl")).fields == fields


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", b""),
        (b'{"a": 1}\n', b'{"a": 1}\n'),
        (b'{"a": 1}\n{"b": 2', b'{"a": 1}\n'),
        (b'{"torn', b""),
        (b'{"a": 1}\n{"b": 2}\n' + b"x" * 100, b'{"a": 1}\n{"b": 2}\n'),
    ],
)
def test_truncate_torn_tail(tmp_path: Path, content: bytes, expected: bytes) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    assert truncate_torn_tail(path, chunk=7) == len(content) - len(expected)
    assert path.read_bytes() == expected


# --- parquet ---------------------------------------------------------------------------------


def _paper_table(n: int) -> pa.Table:
    return pa.table({
        "data_source": ["ambig_qa"] * n,
        "completion": [f"<response>r{i}</response>" for i in range(n)],
        "reward_model": [{"ground_truth": f"singleAnswer###a{i}", "style": "rule"} for i in range(n)],
        "extra_info": [{"index": i, "chat_history": [{"role": "user", "content": f"q{i}"}]} for i in range(n)],
        "judge_verdict": [1.0] * n,
    })


def test_parquet_rows_are_plain_and_skip_whole_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(_paper_table(10), path, row_group_size=3)
    rows = list(read_parquet(path, batch_size=2))
    assert [r.number for r in rows] == list(range(1, 11))
    assert rows[4].fields["extra_info"] == {"index": 4, "chat_history": [{"role": "user", "content": "q4"}]}
    sample = row_to_sample(rows[4])
    assert sample.ground_truth == "singleAnswer###a4" and sample.verdict is not None and sample.verdict.value == 1.0
    skipped = list(read_parquet(path, skip=7, batch_size=2))
    assert [r.number for r in skipped] == [8, 9, 10]
    assert skipped[0].fields["completion"] == "<response>r7</response>"
    assert list(read_parquet(path, skip=10)) == []


def test_parquet_that_is_not_parquet_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_text("nope")
    with pytest.raises(SourceError, match="cannot read as parquet"):
        list(read_parquet(path))


def test_plain_converts_numpy_and_friends() -> None:
    np = pytest.importorskip("numpy")
    value = {"a": np.array([1, 2]), "b": (np.int64(3), np.float32(0.5)), "c": b"hi", "d": [np.array(["x"])]}
    assert plain(value) == {"a": [1, 2], "b": [3, 0.5], "c": "hi", "d": [["x"]]}
    json.dumps(plain(value))


# --- row -> Sample ---------------------------------------------------------------------------


def test_row_to_sample_maps_the_fields_and_aliases() -> None:
    sample = row_to_sample(Row(1, {**GOOD, "extra_info": {"k": 1}, "judge_verdict": 1}))
    assert (sample.data_source, sample.completion, sample.ground_truth) == ("math-hard", GOOD["completion"], "4")
    assert dict(sample.extra_info) == {"k": 1} and sample.verdict is not None and sample.verdict.value == 1.0
    alias = {"data_source": "wildguard", "solution_str": "x", "reward_model": {"ground_truth": "harmful"}}
    sample = row_to_sample(Row(2, alias))
    assert (sample.completion, sample.ground_truth, sample.verdict) == ("x", "harmful", None)


@pytest.mark.parametrize(
    ("fields", "key", "message"),
    [
        ({"completion": "x", "ground_truth": "1"}, "data_source", "missing key 'data_source'"),
        ({**GOOD, "data_source": 3}, "data_source", "must be a string, got int"),
        ({**GOOD, "data_source": " "}, "data_source", "is empty"),
        ({"data_source": "m", "ground_truth": "1"}, "completion", "missing key 'completion' or 'solution_str'"),
        ({"data_source": "m", "completion": ["x"], "ground_truth": "1"}, "completion", "must be a string, got list"),
        ({"data_source": "m", "completion": "x"}, "ground_truth", "'reward_model.ground_truth'"),
        ({"data_source": "m", "completion": "x", "reward_model": "gt"}, "reward_model", "must be an object"),
        ({"data_source": "m", "completion": "x", "reward_model": {}}, "reward_model.ground_truth", "missing key 'reward_model.ground_truth'"),
        ({"data_source": "m", "completion": "x", "reward_model": {"ground_truth": 5}}, "reward_model.ground_truth", "must be a string, got int"),
        ({**GOOD, "ground_truth": 5}, "ground_truth", "must be a string"),
        ({**GOOD, "extra_info": [1]}, "extra_info", "must be an object, got list"),
        ({**GOOD, "judge_verdict": "1"}, "judge_verdict", "must be a number or an object"),
        ({**GOOD, "judge_verdict": True}, "judge_verdict", "must be a number or an object"),
        ({**GOOD, "judge_verdict": float("nan")}, "judge_verdict", "finite"),
        ({**GOOD, "judge_verdict": {"value": 1, "status": "great"}}, "judge_verdict.status", "must be one of ok"),
        ({**GOOD, "judge_verdict": {"status": "ok"}}, "judge_verdict.value", "is required"),
        ({**GOOD, "judge_verdict": {"value": 1, "status": "failed"}}, "judge_verdict.value", "must be null"),
        ({**GOOD, "judge_verdict": {"value": 1, "why": "x"}}, "judge_verdict", "unknown keys ['why']"),
    ],
)
def test_row_to_sample_errors_name_the_row_and_the_key(fields: dict, key: str, message: str) -> None:
    with pytest.raises(RowError) as caught:
        row_to_sample(Row(7, fields, line=9))
    assert caught.value.row == 7 and caught.value.key == key
    assert str(caught.value).startswith("row 7 (line 9)") and message in str(caught.value)


def test_unreadable_row_keeps_its_parse_error() -> None:
    with pytest.raises(RowError, match="invalid JSON"):
        row_to_sample(Row(3, None, "line 3: invalid JSON: x", 3))


def test_verdict_objects_carry_status_and_reason() -> None:
    failed = parse_verdict({"value": None, "status": "failed", "reason": "timeout"})
    assert failed is not None and (failed.status, failed.value, failed.reason) == ("failed", None, "timeout")
    ok = parse_verdict({"value": 0.5, "reason": "refused with an alternative"})
    assert ok is not None and ok.ok and ok.value == 0.5
    assert parse_verdict(None) is None


# --- sources ---------------------------------------------------------------------------------


def test_resolve_picks_the_reader_by_extension_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    jsonl = write_lines(tmp_path / "a.jsonl", [json.dumps(GOOD)])
    assert RowSource.resolve(jsonl).kind == "jsonl"
    assert RowSource.resolve(jsonl).count() == 1
    with pytest.raises(SourceError, match="no such file"):
        RowSource.resolve(tmp_path / "missing.parquet")
    other = tmp_path / "a.csv"
    other.write_text("x")
    with pytest.raises(SourceError, match="unknown file type '.csv'"):
        RowSource.resolve(other)
    with pytest.raises(SourceError, match="--split applies to datasets"):
        RowSource.resolve(jsonl, split="test")
    assert RowSource.resolve("owner/name", split="test") == RowSource("dataset", "owner/name", "test")
    assert RowSource.resolve(tmp_path).kind == "dataset"
    with pytest.raises(SourceError, match="not a dataset hub id"):
        RowSource.resolve("no such/thing here")


def test_datasets_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(SourceError, match=r"gtalign\[hub\]"):
        list(read_dataset("owner/name"))


class _Stream:
    def __init__(self, records: list[dict]) -> None:
        self.records = records

    def skip(self, n: int) -> _Stream:
        return _Stream(self.records[n:])

    def __iter__(self):
        return iter(self.records)


def test_datasets_are_streamed_with_split_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    np = pytest.importorskip("numpy")
    calls: list[tuple] = []

    def load_dataset(location: str, split: str | None = None, streaming: bool = False):
        calls.append((location, split, streaming))
        splits = {"test": _Stream([{**GOOD, "extra_info": {"v": np.array([1, 2])}}, {**GOOD, "ground_truth": "5"}]), "train": _Stream([])}
        return splits if split is None else splits[split]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    rows = list(read_dataset("owner/name", "test"))
    assert calls == [("owner/name", "test", True)]
    assert rows[0].fields["extra_info"] == {"v": [1, 2]} and [r.number for r in rows] == [1, 2]
    assert [r.number for r in read_dataset("owner/name", "test", skip=1)] == [2]
    with pytest.raises(SourceError, match=r"has splits \['test', 'train'\]: choose one with --split"):
        list(read_dataset("owner/name"))


# --- deep nesting (issue 7) --------------------------------------------------------------------


def nested(depth: int) -> str:
    """A row whose ``extra_info.a`` makes it ``depth`` levels of objects and arrays deep."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return '{"data_source": "math-hard", "completion": "x", "ground_truth": "4", "extra_info": {"a": ' + inner + "}}"


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1000, 100_000])
def test_a_row_nested_too_deep_is_an_error_row_and_the_stream_goes_on(tmp_path: Path, depth: int) -> None:
    path = write_lines(tmp_path / "deep.jsonl", [json.dumps(GOOD), nested(depth), json.dumps(GOOD)])
    rows = list(read_jsonl(path))
    assert [r.ok for r in rows] == [True, False, True]
    assert rows[1].fields is None and rows[1].error == f"line 2: JSON nested deeper than {MAX_NESTING} levels of objects and arrays"


def test_a_row_at_the_nesting_limit_is_read_and_written_back(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "limit.jsonl", [nested(MAX_NESTING)])
    (found,) = read_jsonl(path)
    assert found.ok and not too_deep(found.fields) and too_deep(found.fields, MAX_NESTING - 1)
    with JsonlWriter(tmp_path / "out.jsonl") as writer:
        writer.write(found.fields)
    assert list(read_jsonl(tmp_path / "out.jsonl"))[0].fields == found.fields


def test_plain_refuses_values_nested_too_deep() -> None:
    value: list = []
    for _ in range(1000):
        value = [value]
    with pytest.raises(NestingError, match=f"deeper than {MAX_NESTING} levels"):
        plain({"extra_info": value})
    ok: list = []
    for _ in range(MAX_NESTING - 2):
        ok = [ok]
    assert plain({"a": ok}) == {"a": ok}  # MAX_NESTING levels: the dict and MAX_NESTING - 1 lists
    with pytest.raises(NestingError):
        plain({"a": [ok]})


def test_a_dataset_record_nested_too_deep_is_an_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    deep: list = []
    for _ in range(1000):
        deep = [deep]
    records = [GOOD, {**GOOD, "extra_info": {"a": deep}}, GOOD]
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=lambda *a, **k: _Stream(records)))
    rows = list(read_dataset("owner/name", "test"))
    assert [r.ok for r in rows] == [True, False, True]
    assert rows[1].error == f"row 2: nested deeper than {MAX_NESTING} levels"


# --- input paths (issue 7) ---------------------------------------------------------------------


def test_a_missing_path_is_not_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for spec in ("foo", "foo.jsonl", "./data/x", "data/x", str(tmp_path / "x"), "../x", "a/b/c"):
        with pytest.raises(SourceError, match="no such file"):
            RowSource.resolve(spec)
    with pytest.raises(SourceError, match=r"data/ is a local folder, so data/x is not read as a dataset hub id"):
        RowSource.resolve("data/x")
    hub = RowSource.resolve("owner/name")
    assert hub == RowSource("dataset", "owner/name") and hub.is_hub
    assert not RowSource.resolve(tmp_path / "data").is_hub


# --- the writer on standard output (issue 7) ---------------------------------------------------


def test_writer_on_stdout_writes_utf8_and_leaves_stdout_open(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with JsonlWriter("-") as writer:
        writer.write_many([{"a": "é"}, {"b": "\ud800"}])
    assert not sys.stdout.closed
    assert capsysbinary.readouterr().out == '{"a": "é"}\n{"b": "\\ud800"}\n'.encode()
