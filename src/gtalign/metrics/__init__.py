"""Metrics of evaluation runs (SPEC §5, corrected where the research code is wrong).

`summarize` measures one run per data source and overall, with bootstrap intervals over prompts (and their epochs);
`compare` puts two runs on the same prompts side by side (epsilon-Pareto coverage, regret,
hypervolume, paired welfare). Both read `SampleRecord`s: from a run log, or from a verl validation
dump through `records_from_verl_dump` (labelled from its benchmark with ``labels=``); `load_records`
takes either path. Pure apart from the readers;
every result is frozen and has a NaN-free ``to_json()``.
"""

from gtalign.metrics._bootstrap import BOOTSTRAPS, Bootstrap, Estimate, bootstrap_mean
from gtalign.metrics._compare import Comparison, PairedWelfare, PairMetrics, RunFront, compare
from gtalign.metrics._pareto import frontier, hypervolume, point_regret, research_hypervolume
from gtalign.metrics._labels import LabelJoin
from gtalign.metrics._readers import LoadedRun, load_records, load_run, records_from_verl_dump
from gtalign.metrics._summary import (
    ACTS,
    METRICS,
    OVERALL,
    ActionMix,
    Classification,
    ClassScore,
    Counts,
    RunMetrics,
    SourceMetrics,
    answer_quality,
    summarize,
)

__all__ = [
    "ACTS",
    "BOOTSTRAPS",
    "METRICS",
    "OVERALL",
    "ActionMix",
    "Bootstrap",
    "ClassScore",
    "Classification",
    "Comparison",
    "Counts",
    "Estimate",
    "LabelJoin",
    "LoadedRun",
    "PairMetrics",
    "PairedWelfare",
    "RunFront",
    "RunMetrics",
    "SourceMetrics",
    "answer_quality",
    "bootstrap_mean",
    "compare",
    "frontier",
    "hypervolume",
    "load_records",
    "load_run",
    "point_regret",
    "records_from_verl_dump",
    "research_hypervolume",
    "summarize",
]
