"""Point estimates with bootstrap 95% intervals over prompts, and over epochs when K > 1.

Two resampling schemes, both giving the pooled mean (or ratio of sums) over the rows drawn:

- ``two-level`` (the default, what issue 8 asks for): draw prompts with replacement, then within
  each drawn prompt draw its K_p epochs (rows) with replacement. It is conservative: the spread of
  the prompt means already contains the within-prompt (epoch-to-epoch) variance, and resampling
  the epochs again adds it a second time, so its interval is at least as wide as ``cluster``'s on
  average, and equal when the epochs of a prompt agree.
- ``cluster``: the standard one-level cluster bootstrap; draw prompts with replacement and keep
  every epoch of a drawn prompt.

With one epoch per prompt both are the ordinary bootstrap, and they draw the same prompts: the
epochs are drawn from a child generator (`numpy.random.Generator.spawn`), which leaves the
prompt draws' stream untouched.

A resample is a row of weights (how often each prompt, or each row, was drawn), so all statistics
of a group come out of one matrix product: 1,000 resamples of 3,000 prompts take milliseconds.
When a group has more than one epoch, each `Estimate` also carries its per-epoch means, whose
spread across epochs (`Estimate.epoch_sd`) is the seed-to-seed variation a reader asks about.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "BOOTSTRAPS",
    "EMPTY",
    "Bootstrap",
    "Estimate",
    "bootstrap_mean",
    "check_bootstrap",
    "cluster_index",
    "cluster_sums",
    "finite_or_none",
    "group_rng",
    "ratio_estimates",
    "row_estimates",
]

Bootstrap = Literal["two-level", "cluster"]
BOOTSTRAPS: tuple[str, ...] = get_args(Bootstrap)
_CHUNK = 2_000_000  # weights materialised at once (resamples x prompts or rows), ~16 MB


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined number is null."""
    return float(value) if math.isfinite(value) else None


def check_bootstrap(method: str) -> Bootstrap:
    """``method`` if it names a bootstrap, else an error listing the valid names."""
    if method not in BOOTSTRAPS:
        raise ValueError(f"unknown bootstrap {method!r}; expected one of {', '.join(BOOTSTRAPS)}")
    return method  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A mean with its bootstrap 95% percentile interval.

    ``n`` counts the rows the mean is over, ``prompts`` the distinct prompts they come from (the
    resampled clusters). With no rows every number is NaN (``None`` in JSON). The interval is
    widened to contain ``mean`` when rounding puts it a hair outside (constant data).
    ``epoch_means`` holds the mean of each epoch that has a value, by epoch number, when the group
    has more than one epoch (empty otherwise): their spread is the seed-to-seed variation.
    """

    mean: float
    low: float
    high: float
    n: int
    prompts: int = 0
    epoch_means: tuple[float, ...] = ()

    @property
    def defined(self) -> bool:
        return self.n > 0 and math.isfinite(self.mean)

    @property
    def epoch_sd(self) -> float | None:
        """Sample standard deviation of the per-epoch means; None with fewer than two epochs."""
        if len(self.epoch_means) < 2:
            return None
        return float(np.std(self.epoch_means, ddof=1))

    def to_json(self) -> dict[str, Any]:
        return {"mean": finite_or_none(self.mean), "low": finite_or_none(self.low),
                "high": finite_or_none(self.high), "n": self.n, "prompts": self.prompts,
                "epoch_means": [finite_or_none(m) for m in self.epoch_means], "epoch_sd": self.epoch_sd}

    def format(self, digits: int = 3, *, spread: bool = False) -> str:
        """``0.512 [0.498, 0.527]``; ``n/a`` without rows. ``spread`` appends ``sd 0.010`` (the
        per-epoch means' standard deviation) where there is one."""
        if not self.defined:
            return "n/a"
        text = f"{self.mean:.{digits}f}"
        if math.isfinite(self.low) and math.isfinite(self.high):
            text += f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        sd = self.epoch_sd
        if spread and sd is not None:
            text += f" sd {sd:.{digits}f}"
        return text

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


def _row_weights(clusters: np.ndarray, prompts: int, resamples: int, rng: np.random.Generator,
                 inner: np.random.Generator) -> np.ndarray:
    """Two-level weights (resamples x rows): how often each row was drawn. Prompts come from
    ``rng`` exactly as `_multiplicities` draws them; each drawn prompt p then fills its K_p slots
    with rows of p picked uniformly (from ``inner``)."""
    rows = len(clusters)
    sizes = np.bincount(clusters, minlength=prompts)
    order = np.argsort(clusters, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    draws = rng.integers(0, prompts, size=(resamples, prompts)).ravel()
    owner = np.repeat(np.arange(resamples), prompts)
    reps = sizes[draws]
    slot_prompt = np.repeat(draws, reps)
    slot_owner = np.repeat(owner, reps)
    picked = order[starts[slot_prompt] + inner.integers(0, sizes[slot_prompt])]
    flat = slot_owner * rows + picked
    return np.bincount(flat, minlength=resamples * rows).reshape(resamples, rows).astype(np.float64)


def _ratios(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)


def _estimates(means: np.ndarray, boot: np.ndarray | None, n_rows: np.ndarray, n_prompts: np.ndarray,
               epoch_means: list[tuple[float, ...]] | None) -> list[Estimate]:
    """`Estimate`s from the point estimates and the (resamples x statistics) bootstrap values; a
    resample without a value (denominator 0) is left out."""
    width = len(means)
    low, high = np.full(width, np.nan), np.full(width, np.nan)
    if boot is not None:
        for column in range(width):
            values = boot[:, column]
            values = values[np.isfinite(values)]
            if len(values) and math.isfinite(means[column]):
                lo, hi = np.percentile(values, [2.5, 97.5])
                low[column], high[column] = min(lo, means[column]), max(hi, means[column])
    return [
        Estimate(float(means[c]), float(low[c]), float(high[c]), int(n_rows[c]), int(n_prompts[c]),
                 epoch_means[c] if epoch_means is not None else ()) if n_rows[c] > 0 else EMPTY
        for c in range(width)
    ]


def ratio_estimates(
    num: np.ndarray, den: np.ndarray, rows: np.ndarray, *, resamples: int, rng: np.random.Generator,
) -> list[Estimate]:
    """One `Estimate` per column of ``sum(num) / sum(den)``, resampling the prompts (matrix rows):
    the one-level ``cluster`` bootstrap on per-prompt sums.

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
    means = _ratios(num.sum(axis=0), den.sum(axis=0))
    boot = None
    if resamples > 0 and prompts > 0 and width > 0:
        boot = np.empty((resamples, width))
        step = max(1, _CHUNK // prompts)
        for start in range(0, resamples, step):
            weights = _multiplicities(prompts, min(step, resamples - start), rng)
            boot[start:start + len(weights)] = _ratios(weights @ num, weights @ den)
    return _estimates(means, boot, rows.sum(axis=0), (rows > 0).sum(axis=0), None)


def _epoch_means(num: np.ndarray, den: np.ndarray, epochs: np.ndarray | None) -> list[tuple[float, ...]] | None:
    """Per column, the ratio of sums within each epoch that has a value, by epoch number; None
    when there is at most one epoch."""
    if epochs is None:
        return None
    labels = np.unique(epochs)
    if len(labels) < 2:
        return None
    top = np.stack([num[epochs == e].sum(axis=0) for e in labels])
    bottom = np.stack([den[epochs == e].sum(axis=0) for e in labels])
    means = _ratios(top, bottom)
    return [tuple(float(v) for v in means[:, c] if math.isfinite(v)) for c in range(num.shape[1])]


def row_estimates(
    values: np.ndarray, dens: np.ndarray, clusters: np.ndarray, prompts: int, *, resamples: int,
    rng: np.random.Generator, bootstrap: Bootstrap = "two-level", epochs: np.ndarray | None = None,
) -> list[Estimate]:
    """One `Estimate` per column of ``sum(value) / sum(den)`` over rows, with a ``bootstrap``
    interval (see the module's docstring) and, given each row's epoch, the per-epoch means.

    ``values`` and ``dens`` are (rows x statistics), NaN meaning "no value" (its denominator is
    then ignored); ``clusters`` gives each row's prompt as 0..prompts-1 (`cluster_index`).
    """
    check_bootstrap(bootstrap)
    values = np.asarray(values, dtype=np.float64)
    dens = np.asarray(dens, dtype=np.float64)
    clusters = np.asarray(clusters, dtype=np.int64)
    if values.ndim != 2 or values.shape != dens.shape or len(clusters) != len(values):
        raise ValueError(f"values and dens must be 2-d arrays of one shape with a cluster per row, got "
                         f"{values.shape}, {dens.shape}, {clusters.shape}")
    present = np.isfinite(values)
    row_num = np.where(present, values, 0.0)
    row_den = np.where(present, dens, 0.0)
    num = np.zeros((prompts, values.shape[1]))
    den = np.zeros_like(num)
    count = np.zeros(num.shape, dtype=np.int64)
    np.add.at(num, clusters, row_num)
    np.add.at(den, clusters, row_den)
    np.add.at(count, clusters, present.astype(np.int64))
    epoch_means = _epoch_means(row_num, row_den, None if epochs is None else np.asarray(epochs))
    if bootstrap == "cluster":
        out = ratio_estimates(num, den, count, resamples=resamples, rng=rng)
        return out if epoch_means is None else [
            Estimate(e.mean, e.low, e.high, e.n, e.prompts, m) if e.n else e for e, m in zip(out, epoch_means, strict=True)]
    width, rows = values.shape[1], len(values)
    boot = None
    if resamples > 0 and prompts > 0 and width > 0:
        inner = rng.spawn(1)[0]
        boot = np.empty((resamples, width))
        step = max(1, _CHUNK // max(rows, prompts))
        for start in range(0, resamples, step):
            weights = _row_weights(clusters, prompts, min(step, resamples - start), rng, inner)
            boot[start:start + len(weights)] = _ratios(weights @ row_num, weights @ row_den)
    return _estimates(_ratios(num.sum(axis=0), den.sum(axis=0)), boot, count.sum(axis=0), (count > 0).sum(axis=0),
                      epoch_means)


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
    bootstrap: Bootstrap = "two-level", epochs: Sequence[int] | None = None,
) -> Estimate:
    """The mean of ``values`` (None and NaN left out) with a bootstrap 95% interval.

    ``clusters`` names each value's prompt (default: each value is its own prompt); ``epochs``,
    each value's epoch (for `Estimate.epoch_means`).

    >>> bootstrap_mean([1.0, 0.0, 1.0, 1.0], seed=1).mean
    0.75
    """
    data = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64).reshape(-1, 1)
    index, prompts = cluster_index(list(range(len(data))) if clusters is None else list(clusters))
    if len(index) != len(data):
        raise ValueError(f"{len(data)} values but {len(index)} cluster keys")
    if epochs is not None and len(epochs) != len(data):
        raise ValueError(f"{len(data)} values but {len(epochs)} epochs")
    return row_estimates(data, np.ones_like(data), index, prompts, resamples=resamples, rng=np.random.default_rng(seed),
                         bootstrap=bootstrap, epochs=None if epochs is None else np.asarray(epochs, dtype=np.int64))[0]
