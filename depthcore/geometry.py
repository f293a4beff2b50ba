"""Pinhole camera geometry: one back-projection for the metrics and the point clouds.

Points are in the OpenCV camera frame (x right, y down, z forward), pixel
``(u, v)`` at integer coordinates with the principal point from the intrinsics,
as the iBims-1 evaluation script does. The PLY writer converts to the OpenGL
frame itself.
"""

from __future__ import annotations

import numpy as np


def intrinsics_from_fov(height: int, width: int, fov_deg: float = 60.0) -> np.ndarray:
    """3x3 intrinsics for a horizontal field of view, square pixels, centred principal point.

    The usual guess when a photo's intrinsics are unknown.
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov_deg}")
    f = (width / 2.0) / np.tan(np.deg2rad(fov_deg) / 2.0)
    return np.array(
        [[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]],
        dtype=np.float64,
    )


def backproject(depth_HW: np.ndarray, intrinsics_33: np.ndarray) -> np.ndarray:
    """Camera-frame points ``(H, W, 3)`` of a planar (z) depth map."""
    K = np.asarray(intrinsics_33, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got {K.shape}")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    H, W = depth_HW.shape
    v_HW, u_HW = np.mgrid[0:H, 0:W].astype(np.float64)
    z = np.asarray(depth_HW, dtype=np.float64)
    return np.stack([(u_HW - cx) * z / fx, (v_HW - cy) * z / fy, z], axis=-1)
