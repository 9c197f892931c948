"""Evaluation: run a model over benchmarks into a versioned, resumable run log
(`gtalign.eval._log`), from which metrics and reports are computed.

`run_eval` runs an `EvalConfig` into a folder (``gtalign eval`` is its command line); a rerun on the
same folder resumes it. Everything else reads the log (`read_run_log`).
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
from gtalign.eval._progress import EvalProgress
from gtalign.eval._resume import LOG_NAME, ResumeRefused
from gtalign.eval._runner import run_eval
from gtalign.eval._summary import FAILURE_KINDS, EvalSummary, FailureKind, SourceSummary, failure_kind

__all__ = [
    "FAILURE_KINDS",
    "LOG_NAME",
    "SAMPLED_TEMPERATURE",
    "SCHEMA_VERSION",
    "AnswerParse",
    "EvalConfig",
    "EvalProgress",
    "EvalSetupError",
    "EvalSummary",
    "FailureKind",
    "LogProblem",
    "RecordStatus",
    "ResumeRefused",
    "RunHeader",
    "RunLog",
    "SampleRecord",
    "SourceSummary",
    "answer_parse",
    "config_hash",
    "failure_kind",
    "read_run_log",
    "records_of",
    "run_eval",
    "write_records",
]
