"""`write_report`: one or more runs in, report.md, report.json, PNG figures and report.html out.

The numbers are the metrics package's (`summarize` per run, `compare` of the first run against
each other one); this module only lays them out. A log's bad lines never stop a report: they are
listed in its problems section, as are runs without a header or without records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gtalign import __version__
from gtalign.metrics import Bootstrap, LoadedRun, compare, load_run, summarize
from gtalign.metrics._bootstrap import check_bootstrap
from gtalign.metrics._readers import Labels, labels_benchmark
from gtalign.report._content import (
    advbench_lines,
    comparison_tables,
    detail_tables,
    metric_tables,
    runs_table,
)
from gtalign.report._html import render_html
from gtalign.report._plots import Plot, colour, draw_all
from gtalign.report._tables import Table, md_text
from gtalign.report._viewer import _clean, viewer_data

__all__ = ["REPORT_SCHEMA", "ReportFiles", "write_report"]

REPORT_SCHEMA = 1
"""Version of report.json's layout."""

_BOOTSTRAP_TEXT = {
    "two-level": "two-level bootstrap (prompts, then the epochs of each drawn prompt; conservative)",
    "cluster": "cluster bootstrap over prompts (each drawn prompt keeps all its epochs)",
}


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """What `write_report` wrote, and the problems it found in the runs (also in the report)."""

    out_dir: Path
    markdown: Path
    json: Path
    html: Path
    plots: tuple[Path, ...]
    problems: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.markdown, self.json, self.html, *self.plots)


def _default_out(first: Path) -> Path:
    return (first if first.is_dir() else first.parent) / "report"


def _unique_names(runs: Sequence[LoadedRun]) -> list[str]:
    """Run names as labels: a repeated name gets its position, so two runs never share a row."""
    seen: dict[str, int] = {}
    names = []
    for run in runs:
        count = seen[run.name] = seen.get(run.name, 0) + 1
        names.append(run.name if count == 1 else f"{run.name} ({count})")
    return names


def _run_entry(name: str, run: LoadedRun) -> dict[str, Any]:
    return {"name": name, "path": str(run.path), "kind": run.kind,
            "header": None if run.header is None else run.header.to_json(), "records": len(run.records),
            "problems": [{"line": p.line, "reason": p.reason} for p in run.problems],
            "labels": None if run.labels is None else run.labels.to_json()}


def _problems(names: Sequence[str], runs: Sequence[LoadedRun]) -> list[str]:
    out = []
    for name, run in zip(names, runs, strict=True):
        out += [f"{name} ({run.path}): line {p.line}: {p.reason}" for p in run.problems]
        if not run.records:
            out.append(f"{name} ({run.path}): no records: nothing of this run is measured")
        if run.labels is not None and (run.labels.unmatched or run.labels.ambiguous):
            out.append(f"{name} ({run.path}): {run.labels.describe()}")
    return out


def _md(title: str, meta: str, sections: Sequence[tuple[str, Sequence[Table], str]], plots: Sequence[Plot],
        advbench: Sequence[str], problems: Sequence[str]) -> str:
    parts = [f"# {title}", "", meta, ""]
    for heading, tables, note in sections:
        parts += [f"## {heading}", ""]
        if note:
            parts += [md_text(note), ""]
        parts += [t.to_markdown() for t in tables]
    parts += ["## advbench scoring", "", *[f"- {md_text(line)}" for line in advbench], ""]
    parts += ["## Plots", ""]
    for plot in plots:
        parts += [f"### {plot.title}", "", f"![{plot.title}]({plot.path.name})", "", md_text(plot.caption), ""]
    parts += ["## Problems", ""]
    parts += [f"- {md_text(p)}" for p in problems] if problems else ["None: every line of every run log was read."]
    return "\n".join(parts).rstrip() + "\n"


def write_report(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None, *, seed: int = 0,
                 resamples: int = 1000, epsilon: float = 0.1, bootstrap: Bootstrap = "two-level",
                 labels: Labels | None = None, labels_data: str | os.PathLike[str] | None = None) -> ReportFiles:
    """Write report.md, report.json, the figures and report.html for ``run_dirs`` (run folders, run
    logs or verl validation dumps) into ``out_dir`` (default: ``report/`` in the first run's folder).

    The first run is the baseline the others are compared with. ``seed``, ``resamples`` and
    ``bootstrap`` (``two-level`` or ``cluster``, see `gtalign.metrics.summarize`) set the bootstrap
    intervals, ``epsilon`` the Pareto coverage. ``labels`` (and ``labels_data``) label verl dumps
    without ground truth from their benchmark, as `gtalign.metrics.load_run` does; rows it cannot
    match are listed as problems. Raises ``FileNotFoundError`` for a
    path that is not there; a bad line in a log is a reported problem, not an error.
    """
    check_bootstrap(bootstrap)
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise ValueError("write_report needs at least one run folder")
    benchmark = labels_benchmark(labels, labels_data)
    runs = [load_run(p, benchmark) for p in paths]
    names = _unique_names(runs)
    out = Path(out_dir) if out_dir is not None else _default_out(paths[0])
    out.mkdir(parents=True, exist_ok=True)
    problems = _problems(names, runs)

    metrics: dict[str, Any] = {}
    for name, run in zip(names, runs, strict=True):
        try:
            metrics[name] = summarize(run.records, resamples=resamples, seed=seed, bootstrap=bootstrap).to_json()
        except ValueError as exc:  # e.g. a data source named like the overall group
            problems.append(f"{name}: no metrics: {exc}")
    comparisons = []
    for name, run in zip(names[1:], runs[1:], strict=True):
        try:
            result = compare(runs[0].records, run.records, epsilon=epsilon, resamples=resamples, seed=seed,
                             bootstrap=bootstrap)
        except ValueError as exc:
            problems.append(f"{name} vs {names[0]}: no comparison: {exc}")
            continue
        comparisons.append({"a": names[0], "b": name, "comparison": result.to_json()})

    entries = [_run_entry(name, run) for name, run in zip(names, runs, strict=True)]
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    plots = draw_all(out, names, [run.records for run in runs], metrics, comparisons)
    advbench = advbench_lines(entries, metrics)
    report = {
        "schema": REPORT_SCHEMA, "gtalign": __version__, "created": created, "seed": seed, "resamples": resamples,
        "bootstrap": bootstrap,
        "epsilon": epsilon, "runs": entries, "metrics": metrics, "comparisons": comparisons, "advbench": advbench,
        "plots": {p.name: p.path.name for p in plots}, "problems": problems,
    }

    title = "gtalign report: " + " vs ".join(names)
    meta = (f"Generated {created} by gtalign {__version__}. Intervals: {_BOOTSTRAP_TEXT[bootstrap]}, {resamples} "
            f"resamples, seed {seed}. Pareto coverage: ε = {epsilon:g}.")
    sections: list[tuple[str, Sequence[Table], str]] = [
        ("Runs", [runs_table(entries)], ""),
        ("Metrics per task", metric_tables(entries, metrics), "Runs as rows, tasks (data sources) as columns, "
         "the mean with its bootstrap 95% interval; with more than one epoch, \"sd\" is the standard deviation "
         "of the per-epoch means (the seed-to-seed spread; report.json lists the means as epoch_means)."),
        ("Failures, actions and classification", detail_tables(entries, metrics), ""),
    ]
    if comparisons:
        sections.append((f"Comparisons: {names[0]} against each other run",
                         [t for c in comparisons for t in comparison_tables(c)],
                         "On the (prompt, epoch) rows both runs scored; ranges and the reference point are taken "
                         "over both runs' points together."))

    markdown, json_path, html_path = out / "report.md", out / "report.json", out / "report.html"
    # A NaN can still come in through a hand-edited header config: it becomes null, never a crash.
    json_path.write_text(json.dumps(_clean(report), indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    markdown.write_text(_md(title, meta, sections, plots, advbench, problems), encoding="utf-8")
    viewer_runs = [{"name": e["name"], "path": e["path"], "color": colour(i), "problems": e["problems"]}
                   for i, e in enumerate(entries)]
    page = render_html(title=title, meta=meta, sections=sections, plots=plots, advbench=advbench, problems=problems,
                       data=viewer_data(viewer_runs, [run.records for run in runs], report))
    html_path.write_text(page, encoding="utf-8")
    return ReportFiles(out, markdown, json_path, html_path, tuple(p.path for p in plots), tuple(problems))

