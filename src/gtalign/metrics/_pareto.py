"""Pareto views of two runs' (U, L) points: frontier, epsilon-coverage, regret, hypervolume.

Both coordinates are maximised. Ranges ``R_u, R_l`` normalise the gaps; a zero range (every point
has the same coordinate) is taken as 1: every gap in that coordinate is then exactly 0, so the
coordinate neither covers nor penalises anything, instead of dividing 0 by 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frontier", "hypervolume", "point_regret", "research_hypervolume", "safe_range"]


def _points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(points).all():
        raise ValueError("points must be finite (u, l) pairs")
    return points


def frontier(points: np.ndarray) -> np.ndarray:
    """The non-dominated points (no other point is >= in both and > in one), unique, by u descending.

    >>> frontier(np.array([[1, 0], [0.5, 0.5], [0.4, 0.4], [0, 1]])).tolist()
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    points = np.unique(_points(points), axis=0)
    if len(points) == 0:
        return points
    ordered = points[np.lexsort((-points[:, 1], -points[:, 0]))]  # u descending, then l descending
    best_l_before = np.maximum.accumulate(np.concatenate(([-np.inf], ordered[:-1, 1])))
    return ordered[ordered[:, 1] > best_l_before]


def safe_range(values: np.ndarray) -> float:
    """max - min, or 1 when it is 0 (or there are no values): see the module's convention."""
    values = np.asarray(values, dtype=np.float64)
    span = float(values.max() - values.min()) if len(values) else 0.0
    return span if span > 0 else 1.0


def point_regret(points: np.ndarray, front: np.ndarray, range_u: float, range_l: float) -> np.ndarray:
    """Per point p: min over f in ``front`` of max((f_u - p_u)+ / R_u, (f_l - p_l)+ / R_l).

    A point is epsilon-covered exactly when its regret is <= epsilon, so coverage is read off
    this array. Points on the frontier have regret 0.
    """
    points, front = _points(points), _points(front)
    if len(points) == 0:
        return np.zeros(0)
    if len(front) == 0:
        raise ValueError("an empty frontier cannot judge points")
    out = np.empty(len(points))
    step = max(1, 4_000_000 // len(front))
    for start in range(0, len(points), step):
        chunk = points[start:start + step]
        gap_u = np.maximum(front[None, :, 0] - chunk[:, None, 0], 0.0) / range_u
        gap_l = np.maximum(front[None, :, 1] - chunk[:, None, 1], 0.0) / range_l
        out[start:start + step] = np.maximum(gap_u, gap_l).min(axis=1)
    return out


def hypervolume(points: np.ndarray, reference: tuple[float, float]) -> float:
    """The area dominated by ``points`` and dominating ``reference`` (both maximised), by moocore.

    >>> hypervolume(np.array([[1, 0], [0.5, 0.5], [0, 1]]), (0.0, 0.0))
    0.25
    """
    import moocore  # imported here: only comparisons need it

    points = _points(points)
    ref = np.asarray(reference, dtype=np.float64)
    inside = points[(points > ref).all(axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(moocore.hypervolume(-inside, ref=-ref))


def research_hypervolume(points: np.ndarray, reference: tuple[float, float]) -> float:
    """What the research code's hypervolume gives: one box instead of the sum of boxes (SPEC §5).

    SPEC says only that the released code "counts only one box". We read it as the sweep over the
    frontier by increasing u that overwrites its accumulator instead of adding to it, so only the
    last box is left: width (largest u - the previous frontier u, or the reference's u if larger),
    height (that point's l - the reference's l). This reproduces the 0.0 SPEC's example states for the
    frontier (1, 0), (0.5, 0.5), (0, 1) with reference (0, 0), where the true area is 0.25. Kept
    only so reports can show the difference; never use it as a result.

    >>> research_hypervolume(np.array([[1, 0], [0.5, 0.5], [0, 1]]), (0.0, 0.0))
    0.0
    """
    front = frontier(points)
    if len(front) == 0:
        return 0.0
    ref_u, ref_l = float(reference[0]), float(reference[1])
    ascending = front[::-1]
    last_u, last_l = ascending[-1]
    previous_u = max(ascending[-2, 0], ref_u) if len(ascending) > 1 else ref_u
    return float(max(last_u - previous_u, 0.0) * max(last_l - ref_l, 0.0))
