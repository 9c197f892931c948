"""Row I/O for scoring: streaming readers (JSONL, parquet, datasets), the row -> `Sample` mapping
and an append-only JSONL writer."""

from gtalign.data._rows import (
    DATASETS_EXTRA,
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    JsonlWriter,
    Row,
    RowError,
    RowSource,
    SourceError,
    SourceKind,
    parse_verdict,
    plain,
    read_dataset,
    read_jsonl,
    read_parquet,
    row_to_sample,
    truncate_torn_tail,
)

__all__ = [
    "DATASETS_EXTRA",
    "JSONL_SUFFIXES",
    "PARQUET_SUFFIXES",
    "JsonlWriter",
    "Row",
    "RowError",
    "RowSource",
    "SourceError",
    "SourceKind",
    "parse_verdict",
    "plain",
    "read_dataset",
    "read_jsonl",
    "read_parquet",
    "row_to_sample",
    "truncate_torn_tail",
]
