"""Qualitative evaluation panels: RGB | ground truth | prediction | error, one PNG each.

Numbers hide failure modes (a prediction can have a decent AbsRel and still
miss every object boundary), so the evaluation also writes a few pictures.
Figures are built with matplotlib's object API on the Agg canvas, never through
``pyplot``, so no global figure state or GUI backend is touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from depthcore.io import atomic_path


def save_panel(
    path: str | Path,
    rgb_HW3: np.ndarray,
    gt_HW: np.ndarray,
    valid_HW: np.ndarray,
    pred_HW: np.ndarray,
    title: str = "",
) -> Path:
    """Write the four-column panel of one aligned prediction to ``path`` (PNG, atomically).

    Ground truth and prediction share one colour scale (the valid ground-truth
    2..98 percentiles) so they can be compared by eye; the error column is the
    absolute relative error on valid pixels, capped at 0.5.
    """
    valid = np.asarray(valid_HW, dtype=bool)
    gt = np.asarray(gt_HW, dtype=np.float64)
    pred = np.asarray(pred_HW, dtype=np.float64)
    if valid.any():
        vmin, vmax = np.percentile(gt[valid], [2, 98])
    else:
        vmin, vmax = float(np.nanmin(pred)), float(np.nanmax(pred))
    if not vmax > vmin:
        vmax = vmin + 1e-6
    gt_shown = np.where(valid, gt, np.nan)
    err_shown = np.where(valid, np.abs(pred - gt) / np.maximum(gt, 1e-6), np.nan)

    # Fixed axes rectangles (figure fractions): a layout engine costs ~0.4 s a panel.
    fig = Figure(figsize=(13, 3.4), dpi=80)
    FigureCanvasAgg(fig)
    ax_rgb, ax_gt, ax_pred, ax_err = (
        fig.add_axes((left, 0.03, 0.2, 0.8)) for left in (0.005, 0.215, 0.425, 0.7)
    )
    ax_rgb.imshow(np.asarray(rgb_HW3, dtype=np.uint8))
    ax_rgb.set_title("RGB")
    ax_gt.imshow(gt_shown, cmap="Spectral_r", vmin=vmin, vmax=vmax)
    ax_gt.set_title("ground truth")
    im = ax_pred.imshow(pred, cmap="Spectral_r", vmin=vmin, vmax=vmax)
    ax_pred.set_title("prediction (aligned)")
    fig.colorbar(im, cax=fig.add_axes((0.63, 0.1, 0.01, 0.66)), label="depth [m]")
    im = ax_err.imshow(err_shown, cmap="magma", vmin=0.0, vmax=0.5)
    ax_err.set_title("|pred - gt| / gt")
    fig.colorbar(im, cax=fig.add_axes((0.905, 0.1, 0.01, 0.66)))
    for ax in (ax_rgb, ax_gt, ax_pred, ax_err):
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


__all__ = ["save_panel"]
