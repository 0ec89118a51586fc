"""Intervals on a difference of two methods scored on the same cases.

A paired bootstrap: the cases are resampled with replacement, the same draw for both
methods, and the mean difference recomputed each time; the 2.5th and 97.5th percentiles
of those means bound it. Pairing removes what the cases share (an easy test month lifts
both), so the interval measures the noise of the difference itself, not of either score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 1_000
_CHUNK = 100


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    cases: int

    def as_dict(self) -> dict[str, float | int]:
        return {"difference": self.mean, "low": self.low, "high": self.high, "cases": self.cases}


def paired(
    a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95
) -> Interval:
    """The mean of ``a - b`` over cases and its bootstrap interval (seeded: the same
    cases give the same interval)."""
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("a paired comparison needs two scores per case, in the same order")
    diff = a.astype(np.float64) - b.astype(np.float64)
    n = diff.size
    if n == 0:
        return Interval(0.0, 0.0, 0.0, 0)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        rows = min(_CHUNK, resamples - start)
        means[start : start + rows] = diff[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(diff.mean()), float(low), float(high), n)


def mean(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95
) -> Interval:
    """A metric's mean over cases and its bootstrap interval (one method's score)."""
    return paired(values, np.zeros_like(values, dtype=np.float64), resamples, seed, level)


def verdict(low: float, high: float) -> str:
    """What an interval of a difference (served minus another) allows one to say."""
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "level within the noise"
