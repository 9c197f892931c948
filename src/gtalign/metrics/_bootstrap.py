"""Point estimates with bootstrap 95% intervals over prompts (clusters of epochs).

The interval is a one-level cluster bootstrap: each resample draws prompts with replacement and
keeps every epoch of a drawn prompt, and the statistic is the pooled mean (or ratio of sums) over
the rows drawn. With one epoch per prompt this is the ordinary bootstrap. Resampling epochs inside
each prompt as well (a two-level bootstrap) would count the within-prompt variance twice, since
the spread of prompt means already contains it; the one-level version is the standard choice.

A resample is a row of multiplicities (how often each prompt was drawn), so all statistics of a
group come out of one matrix product: 1,000 resamples of 3,000 prompts take milliseconds.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EMPTY", "Estimate", "bootstrap_mean", "cluster_index", "cluster_sums", "finite_or_none", "group_rng", "ratio_estimates"]

_CHUNK = 2_000_000  # multiplicities materialised at once (resamples x prompts), ~16 MB


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined number is null."""
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean with its bootstrap 95% percentile interval.

    ``n`` counts the rows the mean is over, ``prompts`` the distinct prompts they come from (the
    resampled clusters). With no rows every number is NaN (``None`` in JSON). The interval is
    widened to contain ``mean`` when rounding puts it a hair outside (constant data).
    """

    mean: float
    low: float
    high: float
    n: int
    prompts: int = 0

    @property
    def defined(self) -> bool:
        return self.n > 0 and math.isfinite(self.mean)

    def to_json(self) -> dict[str, Any]:
        return {"mean": finite_or_none(self.mean), "low": finite_or_none(self.low),
                "high": finite_or_none(self.high), "n": self.n, "prompts": self.prompts}

    def format(self, digits: int = 3) -> str:
        """``0.512 [0.498, 0.527]``; ``n/a`` without rows."""
        if not self.defined:
            return "n/a"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.format()


EMPTY = Estimate(math.nan, math.nan, math.nan, 0, 0)


def group_rng(seed: int, name: str) -> np.random.Generator:
    """A generator per (seed, group name): a group's interval does not move when another source
    is added to or removed from the run."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8", "surrogatepass"))])


def _multiplicities(prompts: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    draws = rng.integers(0, prompts, size=(resamples, prompts))
    flat = draws + (np.arange(resamples) * prompts)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * prompts).reshape(resamples, prompts).astype(np.float64)


def ratio_estimates(
    num: np.ndarray, den: np.ndarray, rows: np.ndarray, *, resamples: int, rng: np.random.Generator,
) -> list[Estimate]:
    """One `Estimate` per column of ``sum(num) / sum(den)``, resampling the prompts (matrix rows).

    ``num``, ``den`` and ``rows`` are (prompts x statistics): per prompt, the sum of the values,
    the sum of the denominators (the row count for a mean, the tokens for a rate) and the number
    of rows with a value. A resample whose denominator is 0 has no value and is left out.
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    rows = np.asarray(rows, dtype=np.int64)
    if num.ndim != 2 or num.shape != den.shape or num.shape != rows.shape:
        raise ValueError(f"num, den and rows must be 2-d arrays of one shape, got {num.shape}, {den.shape}, {rows.shape}")
    prompts, width = num.shape
    total_den = den.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(total_den > 0, num.sum(axis=0) / np.where(total_den > 0, total_den, 1.0), np.nan)
    n_rows = rows.sum(axis=0)
    n_prompts = (rows > 0).sum(axis=0)
    low = np.full(width, np.nan)
    high = np.full(width, np.nan)
    if resamples > 0 and prompts > 0 and width > 0:
        boot = np.empty((resamples, width))
        step = max(1, _CHUNK // prompts)
        for start in range(0, resamples, step):
            weights = _multiplicities(prompts, min(step, resamples - start), rng)
            top, bottom = weights @ num, weights @ den
            with np.errstate(invalid="ignore", divide="ignore"):
                boot[start:start + len(weights)] = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)
        for column in range(width):
            values = boot[:, column]
            values = values[np.isfinite(values)]
            if len(values) and math.isfinite(means[column]):
                lo, hi = np.percentile(values, [2.5, 97.5])
                low[column], high[column] = min(lo, means[column]), max(hi, means[column])
    return [
        Estimate(float(means[c]), float(low[c]), float(high[c]), int(n_rows[c]), int(n_prompts[c])) if n_rows[c] > 0 else EMPTY
        for c in range(width)
    ]


def cluster_sums(clusters: np.ndarray, values: np.ndarray, prompts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-prompt (sum, count, count) of ``values`` (rows x statistics, NaN = no value)."""
    values = np.asarray(values, dtype=np.float64)
    present = np.isfinite(values)
    num = np.zeros((prompts, values.shape[1]))
    rows = np.zeros((prompts, values.shape[1]), dtype=np.int64)
    np.add.at(num, clusters, np.where(present, values, 0.0))
    np.add.at(rows, clusters, present.astype(np.int64))
    return num, rows.astype(np.float64), rows


def cluster_index(keys: Sequence[Any]) -> tuple[np.ndarray, int]:
    """Each row's prompt as an index 0..P-1 (first-seen order), and P."""
    index: dict[Any, int] = {}
    out = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    return out, len(index)


def bootstrap_mean(
    values: Sequence[float | None], clusters: Sequence[Any] | None = None, *, resamples: int = 1000, seed: int = 0,
) -> Estimate:
    """The mean of ``values`` (None and NaN left out) with a cluster-bootstrap 95% interval.

    ``clusters`` names each value's prompt (default: each value is its own prompt).

    >>> bootstrap_mean([1.0, 0.0, 1.0, 1.0], seed=1).mean
    0.75
    """
    data = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64).reshape(-1, 1)
    index, prompts = cluster_index(list(range(len(data))) if clusters is None else list(clusters))
    if len(index) != len(data):
        raise ValueError(f"{len(data)} values but {len(index)} cluster keys")
    num, den, rows = cluster_sums(index, data, prompts)
    return ratio_estimates(num, den, rows, resamples=resamples, rng=np.random.default_rng(seed))[0]
