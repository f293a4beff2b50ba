"""Depth metrics and their direction (is lower or higher better).

Pure numpy functions, one image at a time; the evaluation averages them over
images. Alignment lives in :mod:`depthcore.alignment`, the iBims-1
geometric metrics in :mod:`depthcore.evaluation.planarity` and the rank metric in
:mod:`depthcore.evaluation.ranking`.

Which delta is shown: we report ``delta1..3`` (fraction of *good* pixels,
higher is better) and also ``bad_pixel = 1 - delta1`` (lower is better), the
complement the DepthART paper's table prints as "d1". Under ``evaluate.protocol: paper``
``bad_pixel`` is the official D1 itself (fraction > 1.25) and ``mae`` is added
(:mod:`depthcore.evaluation.protocol`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from depthcore.alignment import check_shapes

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
    "mae": "lower",  # the paper protocol's MAE (mean |p - g|, metres)
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


__all__ = [
    "DEPTH_METRICS",
    "METRICS",
    "Direction",
    "compute_metrics",
    "metric_direction",
]
