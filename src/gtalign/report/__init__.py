"""Reports of evaluation runs: tables laid out like the paper's (runs as rows, tasks as columns),
figures, report.json, and one self-contained report.html with a per-sample viewer.

Needs the ``eval`` extra: matplotlib (figures) and moocore (the hypervolume the metrics report).
"""

from gtalign.report._report import REPORT_SCHEMA, ReportFiles, write_report

__all__ = ["REPORT_SCHEMA", "ReportFiles", "write_report"]
