"""Depth metrics, their direction, and the rank metric that orders candidate models.

Pure numpy functions, one image at a time; the evaluation averages them over
images. Alignment lives in :mod:`depthcore.alignment` and the iBims-1
geometric metrics in :mod:`depthcore.planarity`; both are re-exported here so
``depthcore.metrics`` is the one place to look for "how is a number computed".

Which delta is shown: we report ``delta1..3`` (fraction of *good* pixels,
higher is better) and also ``bad_pixel = 1 - delta1`` (lower is better), the
complement the DepthART paper's table prints as "d1".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from depthcore.alignment import align_lsq, align_median, check_shapes, to_relative_depth
from depthcore.planarity import boundary_errors, canny, planarity

Direction = Literal["lower", "higher"]

#: Every metric the project reports and whether lower or higher is better.
#: Look-ups go through :func:`metric_direction`, so a misspelt name fails loudly.
METRICS: dict[str, Direction] = {
    "abs_rel": "lower",
    "sq_rel": "lower",
    "rmse": "lower",
    "rmse_log": "lower",
    "log10": "lower",
    "delta1": "higher",
    "delta2": "higher",
    "delta3": "higher",
    "bad_pixel": "lower",
    "pe_fla": "lower",
    "pe_ori": "lower",
    "dbe_acc": "lower",
    "dbe_com": "lower",
}

#: The per-image metrics :func:`compute_metrics` returns, in table order.
DEPTH_METRICS: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "delta1",
    "delta2",
    "delta3",
    "bad_pixel",
)


def metric_direction(name: str) -> Direction:
    """``"lower"`` or ``"higher"`` (is better) for ``name``; an unknown name raises KeyError."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {sorted(METRICS)}") from None


def compute_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The standard depth metrics of one aligned prediction on the ``mask`` pixels.

    ``pred`` and ``gt`` are positive metric depths of the same shape; ``mask``
    selects the valid ground-truth pixels (``gt > 0`` is also required).
    Keys: abs_rel, sq_rel, rmse, rmse_log, log10, delta1, delta2, delta3, bad_pixel.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    check_shapes(pred, gt, mask)
    valid = mask & (gt > 0) & np.isfinite(gt)
    if not valid.any():
        raise ValueError("no valid pixels to score (mask empty or gt <= 0 everywhere)")
    p, g = pred[valid], gt[valid]
    if not np.all(p > 0) or not np.all(np.isfinite(p)):
        raise ValueError("predictions must be finite and > 0 on the valid pixels (align first)")
    err = p - g
    ratio = np.maximum(p / g, g / p)
    delta1 = float(np.mean(ratio < 1.25))
    return {
        "abs_rel": float(np.mean(np.abs(err) / g)),
        "sq_rel": float(np.mean(err**2 / g)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        "delta1": delta1,
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "bad_pixel": 1.0 - delta1,
    }


def average_ranks(scores_M: np.ndarray) -> np.ndarray:
    """Ranks 1..M of ``scores_M`` (lowest first); tied scores share the mean of their ranks."""
    _, inverse_M, counts_U = np.unique(scores_M, return_inverse=True, return_counts=True)
    first_U = np.cumsum(counts_U) - counts_U + 1  # rank of the first member of each tie group
    return (first_U + (counts_U - 1) / 2.0)[inverse_M]


def rank_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str],
) -> dict[str, float]:
    """Mean rank of each model over all (benchmark, metric) pairs; 1 is best.

    ``results[model][benchmark][metric]``. For every benchmark present for all
    models and every metric in ``metrics``, the models are ranked (lower or
    higher is better per :data:`METRICS`; ties share the mean of their ranks;
    a NaN counts as worse than any number); the ranks are then averaged.
    A metric missing from a shared benchmark raises KeyError naming it.
    """
    if not results:
        raise ValueError("rank_table needs at least one model")
    if not metrics:
        raise ValueError("rank_table needs at least one metric")
    directions = {m: metric_direction(m) for m in metrics}
    models = list(results)
    benchmarks = [b for b in results[models[0]] if all(b in results[m] for m in models)]
    if not benchmarks:
        raise ValueError(f"the models {models} share no benchmark to rank on")
    ranks_MP = []
    for bench in benchmarks:
        for metric, direction in directions.items():
            values = []
            for model in models:
                if metric not in results[model][bench]:
                    raise KeyError(f"model {model!r} has no {metric!r} on benchmark {bench!r}")
                values.append(float(results[model][bench][metric]))
            v = np.asarray(values, dtype=np.float64)
            score = v if direction == "lower" else -v
            score = np.where(np.isnan(score), np.inf, score)
            ranks_MP.append(average_ranks(score))
    mean_rank_M = np.mean(np.stack(ranks_MP, axis=1), axis=1)
    return {model: float(r) for model, r in zip(models, mean_rank_M, strict=True)}


__all__ = [
    "DEPTH_METRICS",
    "METRICS",
    "align_lsq",
    "align_median",
    "average_ranks",
    "boundary_errors",
    "canny",
    "compute_metrics",
    "metric_direction",
    "planarity",
    "rank_table",
    "to_relative_depth",
]
