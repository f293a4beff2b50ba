"""Statistics of a seed study: mean +- std over seeds and a paired DepthART vs VAR-TF test.

Pure functions over plain numbers, so the study's table is checked on synthetic inputs
(tests/bench/test_study_stats.py) without training anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); the std of one value is NaN, not 0:
    one seed says nothing about the spread."""
    if not values:
        raise ValueError("mean_std of no values")
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return float(arr.mean()), std


def band(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """Per-position mean and sample std of equal-length curves (one per seed)."""
    lengths = {len(c) for c in curves}
    if len(lengths) != 1:
        raise ValueError(f"curves of different lengths {sorted(lengths)}: not one model family")
    columns = list(zip(*curves, strict=True))
    pairs = [mean_std(col) for col in columns]
    return [m for m, _ in pairs], [s for _, s in pairs]


@dataclass(frozen=True)
class Paired:
    """``a - b`` over matched pairs (seed x benchmark). ``wins_a`` counts pairs where a is
    better (lower if ``lower_is_better``); ``p`` is the two-sided paired t-test's p-value
    (NaN below 2 pairs or when every difference is equal)."""

    n: int
    mean_diff: float
    std_diff: float
    t: float
    p: float
    wins_a: int


def paired(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True) -> Paired:
    """Paired comparison of ``a`` and ``b`` (same order: the i-th of each is one seed on
    one benchmark). The pairs are not independent across benchmarks of one seed, so the
    p-value is a guide, the win count and the per-benchmark table are the evidence."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired needs equal, non-empty sequences (got {len(a)} and {len(b)})")
    a_N = np.asarray(a, dtype=np.float64)
    b_N = np.asarray(b, dtype=np.float64)
    diff_N = a_N - b_N
    mean, std = mean_std(list(diff_N))
    wins = int(((diff_N < 0) if lower_is_better else (diff_N > 0)).sum())
    if diff_N.size < 2 or not std > 0:
        return Paired(int(diff_N.size), mean, std, math.nan, math.nan, wins)
    t = mean / (std / math.sqrt(diff_N.size))
    p = float(2 * stats.t.sf(abs(t), df=diff_N.size - 1))
    return Paired(int(diff_N.size), mean, std, float(t), p, wins)


def fmt(mean: float, std: float, digits: int = 3) -> str:
    """``0.345 +- 0.012``; a NaN std (one seed) prints as the mean alone."""
    if math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass(frozen=True)
class SeedImageCI:
    """Mean of ``a - b`` over seeds x images and its two-level bootstrap interval."""

    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    seeds: int
    images: int

    def verdict(self, lower_is_better: bool = True) -> str:
        """``a``, ``b`` or ``tie``: who is better when the interval excludes 0."""
        if self.lo <= 0.0 <= self.hi:
            return "tie"
        a_better = self.hi < 0.0 if lower_is_better else self.lo > 0.0
        return "a" if a_better else "b"


def seed_image_ci(
    a_SN: np.ndarray, b_SN: np.ndarray, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> SeedImageCI:
    """Paired interval over seeds (rows) and images (columns): every resample draws seeds
    and images with replacement, independently, and averages ``a - b`` over the drawn
    cells. Both sources of noise widen the interval, so a win must hold across training
    seeds and not only across the images of one lucky run; with one seed it reduces to
    the image bootstrap."""
    a = np.asarray(a_SN, dtype=np.float64)
    b = np.asarray(b_SN, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"need two equal (seeds, images) arrays, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("seed_image_ci got a non-finite value")
    d_SN = a - b
    S, N = d_SN.shape
    rng = np.random.default_rng(seed)
    rows_RS = rng.integers(0, S, size=(resamples, S))
    cols_RN = rng.integers(0, N, size=(resamples, N))
    # mean over drawn (seed, image) cells = mean over drawn seeds of the row means at drawn cols
    means_R = np.array([d_SN[np.ix_(r, c)].mean() for r, c in zip(rows_RS, cols_RN, strict=True)])
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means_R, [tail, 1.0 - tail])
    return SeedImageCI(
        float(a.mean()), float(b.mean()), float(d_SN.mean()), float(lo), float(hi), S, N
    )
