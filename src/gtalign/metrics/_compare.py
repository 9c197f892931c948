"""Two runs on the same prompts: Pareto coverage, regret and hypervolume of their (U, L) points,
and paired welfare comparisons (SPEC §5).

Rows are joined on ``(id, epoch)``; a pair counts when both rows are scored with finite U and L.
Per group (each data source, by the first run's record, and ``all``): ranges ``R_u, R_l`` over
both runs' points together, the joint frontier ``F`` of those points, and per run

- epsilon-coverage: the share of its points p with some f in F where (f_u - p_u) / R_u <= eps and
  (f_l - p_l) / R_l <= eps, i.e. whose regret is <= eps;
- regret: the mean over its points of min over f in F of max((f_u - p_u)+ / R_u, (f_l - p_l)+ / R_l);
- hypervolume of its own frontier with the reference point (min u, min l) over both runs
  (moocore), beside the one-box value the research code's formula gives (`research_hypervolume`).

A zero range counts as 1 (see `gtalign.metrics._pareto`). A run compared with itself has coverage 1
and regret 0 only when its points are mutually non-dominated: a dominated point keeps its gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gtalign.eval._log import SampleRecord
from gtalign.metrics._bootstrap import Estimate, cluster_index, group_rng, ratio_estimates
from gtalign.metrics._pareto import frontier, hypervolume, point_regret, research_hypervolume, safe_range
from gtalign.metrics._summary import OVERALL

__all__ = ["Comparison", "PairMetrics", "PairedWelfare", "RunFront", "compare"]

_TIE = 1e-9
HYPERVOLUME_NOTE = (
    "hypervolume is the area dominated by the run's own frontier above the reference point (min u, min l), "
    "computed with moocore; research_hypervolume is what the paper's released formula gives, which counts "
    "only one box and so under-counts"
)


def _pairs(points: np.ndarray) -> list[list[float]]:
    return [[float(u), float(l)] for u, l in points]


@dataclass(frozen=True, slots=True)
class RunFront:
    """One run's side of a comparison. ``frontier`` is its own non-dominated points, by u descending."""

    coverage: float
    regret: float
    hypervolume: float
    research_hypervolume: float
    frontier: tuple[tuple[float, float], ...]
    on_joint_frontier: int

    def to_json(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "regret": self.regret, "hypervolume": self.hypervolume,
                "research_hypervolume": self.research_hypervolume, "frontier": [list(p) for p in self.frontier],
                "on_joint_frontier": self.on_joint_frontier}


@dataclass(frozen=True, slots=True)
class PairedWelfare:
    """Welfare of the second run against the first on the same (prompt, epoch): ``wins`` when b's
    is higher, ``ties`` within 1e-9; ``difference`` is the mean of b - a with a paired bootstrap
    interval (prompts resampled), over the paired points whose welfare both runs logged."""

    wins: int
    ties: int
    losses: int
    difference: Estimate

    def to_json(self) -> dict[str, Any]:
        return {"wins": self.wins, "ties": self.ties, "losses": self.losses, "difference": self.difference.to_json()}


@dataclass(frozen=True, slots=True)
class PairMetrics:
    """The comparison on one group of paired points. With no pairs every number is 0 and
    ``n`` says so; the reference point and ranges are then meaningless."""

    source: str
    n: int
    epsilon: float
    range_u: float
    range_l: float
    reference: tuple[float, float]
    frontier: tuple[tuple[float, float], ...]
    a: RunFront
    b: RunFront
    welfare: PairedWelfare

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "n": self.n, "epsilon": self.epsilon, "range_u": self.range_u,
                "range_l": self.range_l, "reference": list(self.reference),
                "frontier": [list(p) for p in self.frontier], "a": self.a.to_json(), "b": self.b.to_json(),
                "welfare": self.welfare.to_json()}


@dataclass(frozen=True, slots=True)
class Comparison:
    """Run b against run a. ``joined`` rows share an (id, epoch); ``only_a``/``only_b`` do not;
    ``unpaired`` rows were joined but are not a point in both runs (a row unscored, failed, or
    without finite U and L), and are left out of the Pareto views."""

    epsilon: float
    joined: int
    only_a: int
    only_b: int
    unpaired: int
    sources: Mapping[str, PairMetrics]
    resamples: int
    seed: int
    note: str = HYPERVOLUME_NOTE

    @property
    def overall(self) -> PairMetrics:
        return self.sources[OVERALL]

    def __getitem__(self, source: str) -> PairMetrics:
        return self.sources[source]

    def to_json(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "joined": self.joined, "only_a": self.only_a, "only_b": self.only_b,
                "unpaired": self.unpaired, "resamples": self.resamples, "seed": self.seed, "note": self.note,
                "sources": {name: pair.to_json() for name, pair in self.sources.items()}}


def _side(points: np.ndarray, joint: np.ndarray, reference: tuple[float, float],
          range_u: float, range_l: float, epsilon: float) -> RunFront:
    if len(points) == 0:
        return RunFront(0.0, 0.0, 0.0, 0.0, (), 0)
    regret = point_regret(points, joint, range_u, range_l)
    own = frontier(points)
    joint_set = {tuple(p) for p in joint.tolist()}
    return RunFront(
        coverage=float(np.mean(regret <= epsilon)),
        regret=float(regret.mean()),
        hypervolume=hypervolume(own, reference),
        research_hypervolume=research_hypervolume(own, reference),
        frontier=tuple((float(u), float(l)) for u, l in own),
        on_joint_frontier=sum(1 for p in own.tolist() if tuple(p) in joint_set),
    )


def _welfare(name: str, keys: Sequence[str], wa: np.ndarray, wb: np.ndarray, *, resamples: int, seed: int) -> PairedWelfare:
    both = np.isfinite(wa) & np.isfinite(wb)
    diff = (wb - wa)[both]
    ids = [k for k, ok in zip(keys, both, strict=True) if ok]
    clusters, prompts = cluster_index(ids)
    num = np.zeros((prompts, 1))
    rows = np.zeros((prompts, 1), dtype=np.int64)
    np.add.at(num[:, 0], clusters, diff)
    np.add.at(rows[:, 0], clusters, 1)
    estimate = ratio_estimates(num, rows.astype(np.float64), rows, resamples=resamples, rng=group_rng(seed, f"paired:{name}"))[0]
    return PairedWelfare(int((diff > _TIE).sum()), int((np.abs(diff) <= _TIE).sum()), int((diff < -_TIE).sum()), estimate)


def _group(name: str, keys: Sequence[str], pa: np.ndarray, pb: np.ndarray, wa: np.ndarray, wb: np.ndarray,
           *, epsilon: float, resamples: int, seed: int) -> PairMetrics:
    welfare = _welfare(name, keys, wa, wb, resamples=resamples, seed=seed)
    if len(pa) == 0:
        empty = RunFront(0.0, 0.0, 0.0, 0.0, (), 0)
        return PairMetrics(name, 0, epsilon, 0.0, 0.0, (0.0, 0.0), (), empty, empty, welfare)
    both = np.concatenate([pa, pb])
    range_u, range_l = safe_range(both[:, 0]), safe_range(both[:, 1])
    reference = (float(both[:, 0].min()), float(both[:, 1].min()))
    joint = frontier(both)
    return PairMetrics(
        source=name, n=len(pa), epsilon=epsilon, range_u=range_u, range_l=range_l, reference=reference,
        frontier=tuple((float(u), float(l)) for u, l in joint),
        a=_side(pa, joint, reference, range_u, range_l, epsilon),
        b=_side(pb, joint, reference, range_u, range_l, epsilon),
        welfare=welfare,
    )


def _point(record: SampleRecord) -> tuple[float, float] | None:
    u, l = record.user_reward, record.llm_reward
    return (u, l) if record.scored and u is not None and l is not None else None


def _welfare_of(record: SampleRecord) -> float:
    value = record.welfare if record.scored else None
    return np.nan if value is None else value


def compare(a: Iterable[SampleRecord], b: Iterable[SampleRecord], *, epsilon: float = 0.1,
            resamples: int = 1000, seed: int = 0) -> Comparison:
    """Compare run ``b`` with run ``a`` on the prompts they share (see the module's docstring)."""
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if resamples < 0:
        raise ValueError(f"resamples must be >= 0, got {resamples}")
    by_key_a = {r.key: r for r in a}
    by_key_b = {r.key: r for r in b}
    joined = [k for k in by_key_a if k in by_key_b]
    only_a = len(by_key_a) - len(joined)
    only_b = len(by_key_b) - len(joined)
    points: list[tuple[str, str, tuple[float, float], tuple[float, float], float, float]] = []
    for key in joined:
        ra, rb = by_key_a[key], by_key_b[key]
        pa, pb = _point(ra), _point(rb)
        if pa is not None and pb is not None:
            points.append((ra.data_source, ra.id, pa, pb, _welfare_of(ra), _welfare_of(rb)))
    sources = sorted({p[0] for p in points})
    if OVERALL in sources:
        raise ValueError(f"a data source is named {OVERALL!r}, the name of the overall group; rename it")
    groups: dict[str, PairMetrics] = {}
    for name in [*sources, OVERALL]:
        rows = [p for p in points if name in (OVERALL, p[0])]
        pa = np.array([p[2] for p in rows], dtype=np.float64).reshape(-1, 2)
        pb = np.array([p[3] for p in rows], dtype=np.float64).reshape(-1, 2)
        wa = np.array([p[4] for p in rows], dtype=np.float64)
        wb = np.array([p[5] for p in rows], dtype=np.float64)
        groups[name] = _group(name, [p[1] for p in rows], pa, pb, wa, wb, epsilon=epsilon, resamples=resamples, seed=seed)
    unpaired = len(joined) - len(points)
    return Comparison(float(epsilon), len(joined), only_a, only_b, unpaired, groups, resamples, seed)
