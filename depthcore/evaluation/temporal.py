"""Temporal consistency of a video's depth: flicker and the error of frame-to-frame change.

Per-frame AbsRel says nothing about a depth video that jumps between frames: every
frame may be good alone and the clip still flickers. These scores look at the change
between consecutive frames instead. Pure numpy, one clip at a time, ``T x H x W`` maps.

They take depth that is *already aligned once per clip* (one scale/shift for all
frames, :func:`depthcore.alignment.align_lsq` on the whole ``T x H x W`` stack): no
further per-frame alignment happens here, so a per-frame rescaling the model made
counts as change. That is what "alignment-free" means below.
"""

from __future__ import annotations

import numpy as np

from depthcore.alignment import check_shapes
from depthcore.evaluation.metrics import compute_metrics


def _check_clip(depth_THW: np.ndarray) -> np.ndarray:
    depth_THW = np.asarray(depth_THW, dtype=np.float64)
    if depth_THW.ndim != 3 or depth_THW.shape[0] < 2:
        raise ValueError(f"a clip is a T x H x W stack with T >= 2, got shape {depth_THW.shape}")
    return depth_THW


def flicker(depth_THW: np.ndarray) -> np.ndarray:
    """Mean ``|d[t+1] - d[t]|`` per consecutive pair (``T - 1`` values, depth units).

    Only pixels finite in both frames count; a pair with none is NaN. A static camera
    over a static scene should score 0; a moving one scores its true motion too, which
    :func:`temporal_change_error` subtracts.
    """
    depth_THW = _check_clip(depth_THW)
    change_THW = np.abs(np.diff(depth_THW, axis=0))
    finite_THW = np.isfinite(change_THW)
    counts_T = finite_THW.sum(axis=(1, 2))
    sums_T = np.where(finite_THW, change_THW, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts_T > 0, sums_T / np.maximum(counts_T, 1), np.nan)


def temporal_change_error(pred_THW: np.ndarray, gt_THW: np.ndarray, mask_THW: np.ndarray) -> float:
    """Mean relative error of the frame-to-frame change: ``|dp - dg| / g[t]``.

    ``dp = p[t+1] - p[t]`` and ``dg = g[t+1] - g[t]`` at each pixel valid (``mask``,
    ``g > 0``, finite) in both frames, averaged over those pixels and then over pairs.
    0 when the prediction changes exactly as the truth does, whatever its per-frame
    error; a prediction off by a constant factor scores that factor's share of the true
    change, no more. Raises ValueError when no pair has a valid pixel.
    """
    pred_THW, gt_THW = _check_clip(pred_THW), _check_clip(gt_THW)
    mask_THW = np.asarray(mask_THW, dtype=bool)
    check_shapes(pred_THW, gt_THW, mask_THW)
    valid_THW = mask_THW & np.isfinite(gt_THW) & (np.nan_to_num(gt_THW, nan=0.0) > 0)
    valid_THW &= np.isfinite(pred_THW)
    both_THW = valid_THW[1:] & valid_THW[:-1]
    errors = []
    for t in range(both_THW.shape[0]):
        both = both_THW[t]
        if not both.any():
            continue
        dp = pred_THW[t + 1][both] - pred_THW[t][both]
        dg = gt_THW[t + 1][both] - gt_THW[t][both]
        errors.append(float(np.mean(np.abs(dp - dg) / gt_THW[t][both])))
    if not errors:
        raise ValueError("no pixel is valid in two consecutive frames")
    return float(np.mean(errors))


def video_scores(
    pred_THW: np.ndarray, gt_THW: np.ndarray, mask_THW: np.ndarray
) -> dict[str, float]:
    """``abs_rel`` (mean over frames), ``temporal_change`` and ``flicker`` (mean over pairs).

    ``pred_THW``: depth aligned once for the clip; ``flicker`` of the truth is the motion
    baseline a perfect prediction would also show (``flicker_gt``).
    """
    pred_THW, gt_THW = _check_clip(pred_THW), _check_clip(gt_THW)
    mask_THW = np.asarray(mask_THW, dtype=bool)
    check_shapes(pred_THW, gt_THW, mask_THW)
    abs_rel = [
        compute_metrics(p, g, m & np.isfinite(g))["abs_rel"]
        for p, g, m in zip(pred_THW, gt_THW, mask_THW, strict=True)
    ]
    masked_pred = np.where(mask_THW, pred_THW, np.nan)
    masked_gt = np.where(mask_THW, gt_THW, np.nan)
    return {
        "abs_rel": float(np.mean(abs_rel)),
        "temporal_change": temporal_change_error(pred_THW, gt_THW, mask_THW),
        "flicker": float(np.nanmean(flicker(masked_pred))),
        "flicker_gt": float(np.nanmean(flicker(masked_gt))),
    }


__all__ = ["flicker", "temporal_change_error", "video_scores"]
