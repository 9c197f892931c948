"""Two runs on the same prompts: Pareto coverage, regret and hypervolume of their (U, L) points,
and paired welfare comparisons (SPEC §5).

Rows are joined on ``(id, epoch)``; a pair counts when both rows are scored with finite U and L.
Per group (each data source, and ``all``; a joined row whose data source differs between the runs
is an error, since the runs are then not on the same prompts): ranges ``R_u, R_l`` over
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
from gtalign.metrics._bootstrap import Bootstrap, Estimate, check_bootstrap, cluster_index, group_rng, row_estimates
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
    bootstrap: Bootstrap = "two-level"

    @property
    def overall(self) -> PairMetrics:
        return self.sources[OVERALL]

    def __getitem__(self, source: str) -> PairMetrics:
        return self.sources[source]

    def to_json(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "joined": self.joined, "only_a": self.only_a, "only_b": self.only_b,
                "unpaired": self.unpaired, "resamples": self.resamples, "seed": self.seed, "bootstrap": self.bootstrap,
                "note": self.note,
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


def _welfare(name: str, keys: Sequence[tuple[str, int]], wa: np.ndarray, wb: np.ndarray, *, resamples: int, seed: int,
             bootstrap: Bootstrap) -> PairedWelfare:
    both = np.isfinite(wa) & np.isfinite(wb)
    diff = (wb - wa)[both]
    kept = [k for k, ok in zip(keys, both, strict=True) if ok]
    clusters, prompts = cluster_index([k[0] for k in kept])
    epochs = np.fromiter((k[1] for k in kept), dtype=np.int64, count=len(kept))
    estimate = row_estimates(diff.reshape(-1, 1), np.ones((len(diff), 1)), clusters, prompts, resamples=resamples,
                             rng=group_rng(seed, f"paired:{name}"), bootstrap=bootstrap, epochs=epochs)[0]
    return PairedWelfare(int((diff > _TIE).sum()), int((np.abs(diff) <= _TIE).sum()), int((diff < -_TIE).sum()), estimate)


def _group(name: str, keys: Sequence[tuple[str, int]], pa: np.ndarray, pb: np.ndarray, wa: np.ndarray, wb: np.ndarray,
           *, epsilon: float, resamples: int, seed: int, bootstrap: Bootstrap) -> PairMetrics:
    welfare = _welfare(name, keys, wa, wb, resamples=resamples, seed=seed, bootstrap=bootstrap)
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


def _check_sources(joined: Sequence[tuple[str, int]], by_key_a: Mapping[tuple[str, int], SampleRecord],
                   by_key_b: Mapping[tuple[str, int], SampleRecord]) -> None:
    """Rows joined on (id, epoch) must be the same prompt: a different data source means the two
    runs are not on the same data (e.g. verl dumps, joined by line number, of two validation sets),
    so every paired number would be wrong. That is an error naming the rows, never a silent guess."""
    clashes = [(key, by_key_a[key].data_source, by_key_b[key].data_source) for key in joined
               if by_key_a[key].data_source != by_key_b[key].data_source]
    if clashes:
        shown = "; ".join(f"id {rid!r} epoch {epoch}: {sa!r} in a, {sb!r} in b" for (rid, epoch), sa, sb in clashes[:5])
        more = f"; and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise ValueError(
            f"{len(clashes)} of {len(joined)} rows joined on (id, epoch) have a different data source in the two runs "
            f"({shown}{more}): the runs are not on the same prompts. Compare runs of the same benchmark rows (verl dumps "
            "join by line number, so they must be dumps of the same validation set in the same order)"
        )


def compare(a: Iterable[SampleRecord], b: Iterable[SampleRecord], *, epsilon: float = 0.1,
            resamples: int = 1000, seed: int = 0, bootstrap: Bootstrap = "two-level") -> Comparison:
    """Compare run ``b`` with run ``a`` on the prompts they share (see the module's docstring).

    ``bootstrap`` draws the paired welfare interval as `summarize` does. Raises ``ValueError``
    when a joined (id, epoch) has a different data source in the two runs.
    """
    if not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if resamples < 0:
        raise ValueError(f"resamples must be >= 0, got {resamples}")
    check_bootstrap(bootstrap)
    by_key_a = {r.key: r for r in a}
    by_key_b = {r.key: r for r in b}
    joined = [k for k in by_key_a if k in by_key_b]
    _check_sources(joined, by_key_a, by_key_b)
    only_a = len(by_key_a) - len(joined)
    only_b = len(by_key_b) - len(joined)
    points: list[tuple[str, tuple[str, int], tuple[float, float], tuple[float, float], float, float]] = []
    for key in joined:
        ra, rb = by_key_a[key], by_key_b[key]
        pa, pb = _point(ra), _point(rb)
        if pa is not None and pb is not None:
            points.append((ra.data_source, ra.key, pa, pb, _welfare_of(ra), _welfare_of(rb)))
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
        groups[name] = _group(name, [p[1] for p in rows], pa, pb, wa, wb, epsilon=epsilon, resamples=resamples, seed=seed,
                              bootstrap=bootstrap)
    unpaired = len(joined) - len(points)
    return Comparison(float(epsilon), len(joined), only_a, only_b, unpaired, groups, resamples, seed, bootstrap=bootstrap)
