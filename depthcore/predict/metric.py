"""From affine-invariant output to metric depth, with a few points whose depth you know.

``depthart predict`` writes depth up to an unknown affine map *in the model's space*
(``sqrt_disparity`` by default: ``sqrt(1/z)``), fixed by a display convention. Two or
more pixels of known depth (a tape measure, a LiDAR return, a known object) pin that
map down: the output and the known depths are both moved into the model's space,
a scale and shift are fitted by least squares there (as the evaluation aligns to
ground truth, :func:`depthcore.alignment.align_lsq`), and the result is
moved back to metres. ``depthart align`` is the command-line form.

Points are a CSV with the columns ``x,y,depth``: 0-based pixel column and row in the
predicted map, and the depth there in metres (planar, along the optical axis).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthcore.alignment import fit_scale_shift
from depthcore.errors import DataError
from depthcore.spaces import depth_to_space, space_to_depth


@dataclass(frozen=True)
class KnownPoints:
    """Pixels of known metric depth: ``x`` (column), ``y`` (row), ``depth`` (metres)."""

    x: np.ndarray
    y: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class MetricAlignment:
    """The aligned map and the fit: scale/shift in the model's space, residual in metres."""

    depth_HW: np.ndarray  # noqa: N815 - float32 metres
    scale: float
    shift: float
    rms_error_m: float  # at the known points, after alignment


def read_points(path: str | Path) -> KnownPoints:
    """Read ``x,y,depth`` rows; a missing column or a bad value names the file and row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: points file not found")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"x", "y", "depth"} <= set(rows[0]):
        raise DataError(f"{path}: expected a CSV with columns x,y,depth and at least one row")
    values = []
    for i, row in enumerate(rows, start=2):
        try:
            values.append((int(row["x"]), int(row["y"]), float(row["depth"])))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: line {i}: {exc}") from exc
        if not (math.isfinite(values[-1][2]) and values[-1][2] > 0):
            raise DataError(
                f"{path}: line {i}: depth must be positive metres, got {row['depth']!r}"
            )
    x, y, depth = (np.asarray(col) for col in zip(*values, strict=True))
    return KnownPoints(x, y, depth.astype(np.float64))


def align_to_points(
    depth_HW: np.ndarray, points: KnownPoints, space: str = "sqrt_disparity",
    max_depth: float = 1000.0,
) -> MetricAlignment:  # fmt: skip
    """Metric depth from a ``depthart predict`` map and known points (see the module doc).

    ``space`` must be the space of the model that made ``depth_HW`` (``depthart predict``
    prints it). Needs at least two points at different depths.
    """
    depth_HW = np.asarray(depth_HW, dtype=np.float64)
    if depth_HW.ndim != 2:
        raise DataError(f"expected an HxW depth map, got shape {depth_HW.shape}")
    height, width = depth_HW.shape
    inside = (points.x >= 0) & (points.x < width) & (points.y >= 0) & (points.y < height)
    if not inside.all():
        bad = [(int(x), int(y)) for x, y in zip(points.x[~inside], points.y[~inside], strict=True)]
        raise DataError(f"points {bad} lie outside the {width}x{height} map")
    if not (np.isfinite(points.depth).all() and (points.depth > 0).all()):
        raise DataError("known depths must be positive metres")
    if len(np.unique(points.depth)) < 2:
        raise DataError("need at least two points at different depths to fix scale and shift")
    at_points = depth_HW[points.y, points.x]
    if not (np.isfinite(at_points) & (at_points > 0)).all():
        bad = [(int(x), int(y)) for x, y, d in zip(points.x, points.y, at_points, strict=True)
               if not (np.isfinite(d) and d > 0)]  # fmt: skip
        raise DataError(f"the map has no valid depth (NaN, inf or <= 0) at the points {bad}")
    pred_P = depth_to_space(at_points, space)
    scale, shift = fit_scale_shift(pred_P, depth_to_space(points.depth, space))
    if not (np.isfinite(scale) and np.isfinite(shift)):
        raise DataError(f"no finite scale/shift fits the points (scale {scale}, shift {shift})")
    if scale <= 0:
        raise DataError(
            f"the known points contradict the predicted ordering (scale {scale:.3g} <= 0): "
            "check their x,y (column,row) order and the --space"
        )
    aligned_HW = space_to_depth(
        scale * depth_to_space(depth_HW, space) + shift, space, 1e-3, max_depth
    )
    residual = aligned_HW[points.y, points.x] - points.depth
    return MetricAlignment(
        aligned_HW.astype(np.float32), scale, shift, float(np.sqrt(np.mean(residual**2)))
    )
