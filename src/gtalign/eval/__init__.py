"""Evaluation: run a model over benchmarks into a versioned, resumable run log
(`gtalign.eval._log`), from which metrics and reports are computed."""

from gtalign.eval._log import (
    SCHEMA_VERSION,
    AnswerParse,
    LogProblem,
    RecordStatus,
    RunHeader,
    RunLog,
    SampleRecord,
    config_hash,
    read_run_log,
    records_of,
    write_records,
)

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
