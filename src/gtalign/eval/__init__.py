"""Evaluation: run a model over benchmarks into a versioned, resumable run log
(`gtalign.eval._log`), from which metrics and reports are computed.

An `EvalConfig` says what a run is; everything else reads the log (`read_run_log`).
"""

from gtalign.eval._answer import answer_parse
from gtalign.eval._config import SAMPLED_TEMPERATURE, EvalConfig, EvalSetupError
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
    "SAMPLED_TEMPERATURE",
    "SCHEMA_VERSION",
    "AnswerParse",
    "EvalConfig",
    "EvalSetupError",
    "LogProblem",
    "RecordStatus",
    "RunHeader",
    "RunLog",
    "SampleRecord",
    "answer_parse",
    "config_hash",
    "read_run_log",
    "records_of",
    "write_records",
]
