"""Aligning an affine-invariant prediction to metric ground truth before scoring.

A generative depth model predicts depth only up to an unknown scale (and, for
the normalised targets, an unknown shift) in the space it was trained in, so
every benchmark number depends on how that ambiguity is removed. Two
conventions are offered and both are reported by the evaluation:

* :func:`align_lsq` (Marigold): least-squares scale and shift in the model's
  own space, then back to depth;
* :func:`align_median` (DepthART paper): one scale, ``median(gt / pred)``, on a
  prediction first brought to depth by :func:`to_relative_depth`.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

Space = Literal["depth", "disparity", "sqrt_disparity", "scale_depth"]
SPACES: tuple[str, ...] = get_args(Space)

#: Smallest depth any aligned prediction may take (keeps logs and ratios finite).
MIN_ALIGNED_DEPTH = 1e-6

#: Assumed far/near depth ratio of a scene (98th over 2nd depth percentile), used
#: only to turn a normalised sqrt-disparity prediction (whose offset is lost) into
#: depth for the scale-only median alignment. 10 is a typical indoor range
#: (0.6 m .. 6 m) and the same convention as ``depthcore.predict`` uses for users.
MEDIAN_NEAR_FAR_RATIO = 10.0


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise ValueError(f"unknown prediction space {space!r}; expected one of {list(SPACES)}")


def check_shapes(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> None:
    """Prediction, ground truth and mask must be pixel-aligned maps of one shape."""
    if pred.shape != gt.shape or mask.shape != gt.shape:
        raise ValueError(
            f"shape mismatch: pred {pred.shape}, gt {gt.shape}, mask {mask.shape} must be equal"
        )


def depth_to_space(depth: np.ndarray, space: str) -> np.ndarray:
    """Map metric depth into ``space`` (where a model's prediction is affine to the truth).

    ``scale_depth`` is depth up to an affine map, so it is treated as ``depth``.
    """
    _check_space(space)
    depth = np.asarray(depth, dtype=np.float64)
    if space in ("depth", "scale_depth"):
        return depth
    safe = np.maximum(depth, MIN_ALIGNED_DEPTH)
    if space == "disparity":
        return 1.0 / safe
    return np.sqrt(1.0 / safe)


def space_to_depth(
    values: np.ndarray, space: str, min_depth: float, max_depth: float
) -> np.ndarray:
    """Inverse of :func:`depth_to_space`, clipped to ``[min_depth, max_depth]`` and >= 1e-6.

    The clip is applied in the space first (a negative disparity has no depth),
    then again in depth so that all spaces end in the same range.
    """
    _check_space(space)
    lo = max(float(min_depth), MIN_ALIGNED_DEPTH)
    hi = float(max_depth)
    if not hi > lo:
        raise ValueError(f"empty depth range [{min_depth}, {max_depth}]")
    values = np.asarray(values, dtype=np.float64)
    if space in ("depth", "scale_depth"):
        depth = values
    elif space == "disparity":
        depth = 1.0 / np.clip(values, 1.0 / hi, 1.0 / lo)
    else:
        depth = 1.0 / np.clip(values, np.sqrt(1.0 / hi), np.sqrt(1.0 / lo)) ** 2
    return np.clip(depth, lo, hi)


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
    _check_space(space)
    s, t = fit_scale_shift(pred[mask], depth_to_space(gt[mask], space))
    return space_to_depth(s * pred + t, space, min_depth, max_depth)


def to_relative_depth(pred: np.ndarray, space: str) -> np.ndarray:
    """Turn a prediction in ``space`` into positive depth up to an unknown scale.

    The rule per space (a scale factor is free, the median alignment fixes it):

    * ``depth``: unchanged (clipped to >= 1e-6);
    * ``scale_depth`` (``2 z / q98(z) - 1``): ``(p + 1) / 2``, exact up to scale;
    * ``disparity`` (positive, affine-invariant): ``1 / p``;
    * ``sqrt_disparity`` (percentiles 2..98 of ``sqrt(1/z)`` mapped to [-1, 1]):
      the offset is lost, so we assume the far end ``p = -1`` lies
      :data:`MEDIAN_NEAR_FAR_RATIO` (``R``) times deeper than the near end
      ``p = +1``: ``y = 1 + (sqrt(R) - 1)(p + 1) / 2`` and depth ``1 / y^2``, with
      ``y`` clipped to >= 0.1 (depth <= 100 x the far end) for ``p`` below -1.
    """
    _check_space(space)
    p = np.asarray(pred, dtype=np.float64)
    if space == "depth":
        rel = p
    elif space == "scale_depth":
        rel = (p + 1.0) / 2.0
    elif space == "disparity":
        rel = 1.0 / np.maximum(p, MIN_ALIGNED_DEPTH)
    else:
        r = np.sqrt(MEDIAN_NEAR_FAR_RATIO)
        y = np.maximum(1.0 + (r - 1.0) * (p + 1.0) / 2.0, 0.1)
        rel = 1.0 / y**2
    return np.maximum(rel, MIN_ALIGNED_DEPTH)


def align_median(
    pred_depth: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    min_depth: float | None = None,
    max_depth: float | None = None,
) -> np.ndarray:
    """Scale-only alignment ``s * pred_depth`` with ``s = median(gt / pred_depth)`` on ``mask``.

    ``pred_depth`` must already be depth up to scale (see :func:`to_relative_depth`).
    When a range is given the result is clipped to it, as :func:`align_lsq` does;
    it is always kept >= 1e-6.
    """
    pred_depth = np.asarray(pred_depth, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    check_shapes(pred_depth, gt, mask)
    if not mask.any():
        raise ValueError("cannot align on zero valid pixels")
    p = np.maximum(pred_depth, MIN_ALIGNED_DEPTH)
    aligned = p * float(np.median(gt[mask] / p[mask]))
    lo = MIN_ALIGNED_DEPTH if min_depth is None else max(float(min_depth), MIN_ALIGNED_DEPTH)
    hi = np.inf if max_depth is None else float(max_depth)
    return np.clip(aligned, lo, hi)


__all__ = [
    "MEDIAN_NEAR_FAR_RATIO",
    "MIN_ALIGNED_DEPTH",
    "SPACES",
    "Space",
    "align_lsq",
    "align_median",
    "check_shapes",
    "depth_to_space",
    "fit_scale_shift",
    "space_to_depth",
    "to_relative_depth",
]
