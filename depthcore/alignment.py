"""Aligning an affine-invariant prediction to metric ground truth before scoring.

A generative depth model predicts depth only up to an unknown scale (and, for
the normalised targets, an unknown shift) in the space it was trained in, so
every benchmark number depends on how that ambiguity is removed. Two
conventions are offered and both are reported by the evaluation:

* :func:`align_lsq` (Marigold): least-squares scale and shift in the model's
  own space, then back to depth;
* :func:`align_median` (DepthART paper): one scale, ``median(gt / pred)``, on a
  prediction first brought to depth up to scale by :func:`median_relative_depth`.
  Defined only where that is exact: ``depth`` and the paper's ``scale_depth``
  (2z/q98-1, back by (p+1)/2). A disparity or sqrt-disparity prediction has lost its
  offset, so no scale-only rule gives depth: :func:`median_not_applicable` says why,
  and the evaluation leaves ``median`` out for such a model instead of scoring the
  display convention of :func:`depthcore.spaces.normalised_to_depth` (an assumed
  near/far ratio, which scored AbsRel 0.47 for the exact ground truth of a 2-4 m scene).

A foundation module: the evaluation and the prediction's metric fit
(:mod:`depthcore.predict.metric`) both align, and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from depthcore.spaces import (
    MIN_DEPTH,
    check_space,
    depth_to_space,
    normalised_to_depth,
    space_to_depth,
)

#: Spaces where a scale-only alignment is exact (the prediction is depth up to scale).
MEDIAN_SPACES: tuple[str, ...] = ("depth", "scale_depth")


def median_not_applicable(space: str) -> str | None:
    """Why the scale-only ``median`` alignment does not apply to ``space`` (None when it does)."""
    check_space(space)
    if space in MEDIAN_SPACES:
        return None
    return (
        f"a {space} prediction is affine-invariant in {space} (its offset is lost), so no "
        "scale-only rule recovers depth from it; median alignment is defined for scale_depth "
        "(and depth) predictions only"
    )


def median_relative_depth(pred: np.ndarray, space: str) -> np.ndarray:
    """Depth up to scale for the median alignment; ValueError where it is not applicable."""
    reason = median_not_applicable(space)
    if reason is not None:
        raise ValueError(f"median alignment is not applicable: {reason}")
    return normalised_to_depth(pred, space).astype(np.float64)


def check_shapes(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> None:
    """Prediction, ground truth and mask must be pixel-aligned maps of one shape."""
    if pred.shape != gt.shape or mask.shape != gt.shape:
        raise ValueError(
            f"shape mismatch: pred {pred.shape}, gt {gt.shape}, mask {mask.shape} must be equal"
        )


def fit_scale_shift(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(s, t)`` minimising ``sum((s*x + t - y)^2)`` over 1-D samples.

    A constant ``x`` has no scale information: the fit is then ``s = 0``,
    ``t = mean(y)`` instead of a singular solve.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("cannot fit scale and shift on zero valid pixels")
    x_mean, y_mean = x.mean(), y.mean()
    dx = x - x_mean
    var = float(np.dot(dx, dx))
    if var <= 1e-12 * max(1.0, x_mean**2) * x.size:
        return 0.0, float(y_mean)
    s = float(np.dot(dx, y - y_mean) / var)
    return s, float(y_mean - s * x_mean)


def align_lsq(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    space: str,
    min_depth: float,
    max_depth: float,
) -> np.ndarray:
    """Align ``pred`` (in ``space``) to ``gt`` depth by least squares in that space.

    Scale and shift are fitted on the ``mask`` pixels between ``pred`` and the
    ground truth mapped into ``space``; the aligned map is converted back to
    depth and clipped to the benchmark range. Returns float64 depth, ``pred``'s shape.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    check_shapes(pred, gt, mask)
    check_space(space)
    s, t = fit_scale_shift(pred[mask], depth_to_space(gt[mask], space))
    return space_to_depth(s * pred + t, space, min_depth, max_depth)


def align_median(
    pred_depth: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    min_depth: float | None = None,
    max_depth: float | None = None,
    median: Callable[[np.ndarray], float] = np.median,
) -> np.ndarray:
    """Scale-only alignment ``s * pred_depth`` with ``s = median(gt / pred_depth)`` on ``mask``.

    ``pred_depth`` must already be depth up to scale (see :func:`median_relative_depth`).
    When a range is given the result is clipped to it, as :func:`align_lsq` does;
    it is always kept >= 1e-6. ``median``: the paper protocol passes torch's lower median.
    """
    pred_depth = np.asarray(pred_depth, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    check_shapes(pred_depth, gt, mask)
    if not mask.any():
        raise ValueError("cannot align on zero valid pixels")
    p = np.maximum(pred_depth, MIN_DEPTH)
    aligned = p * float(median(gt[mask] / p[mask]))
    lo = MIN_DEPTH if min_depth is None else max(float(min_depth), MIN_DEPTH)
    hi = np.inf if max_depth is None else float(max_depth)
    return np.clip(aligned, lo, hi)


__all__ = [
    "MEDIAN_SPACES",
    "align_lsq",
    "align_median",
    "check_shapes",
    "fit_scale_shift",
    "median_not_applicable",
    "median_relative_depth",
]
