"""The reader's fast paths give exactly what the per-pixel float64 formulas give."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthcore.data.hypersim.reader import (
    distance_to_planar,
    ray_directions,
    read_distance,
    tone_map,
)
from depthcore.data.hypersim.tables import camera_matrix, load_camera_table

REAL_DEPTH = Path("ai_037_002/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5")


def hdr_frame(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 768 x 1024 float16 HDR frame (Hypersim's size and dtype) with NaN, inf and < 0."""
    rng = np.random.default_rng(seed)
    hdr_HW3 = rng.lognormal(-1.0, 1.5, (768, 1024, 3)).astype(np.float16)
    hdr_HW3[0, :4, 0] = [np.nan, np.inf, -np.inf, -0.5]
    valid_HW = rng.random((768, 1024)) > 0.05
    return hdr_HW3, valid_HW


def test_float16_tone_map_table_equals_per_pixel_formula() -> None:
    for seed in range(3):
        hdr_HW3, valid_HW = hdr_frame(seed)
        fast = tone_map(hdr_HW3, valid_HW)
        per_pixel = tone_map(hdr_HW3.astype(np.float32), valid_HW)  # the generic path
        assert fast.dtype == np.uint8 and np.array_equal(fast, per_pixel)
        assert len(np.unique(fast)) > 200  # the frame spans the whole range


def test_cached_planar_factor_equals_direct_formula(fixtures_dir: Path) -> None:
    distance_HW = read_distance(fixtures_dir / "hypersim" / REAL_DEPTH)
    M = camera_matrix(load_camera_table(), "ai_037_002")
    rays_HW3 = ray_directions(M, *distance_HW.shape)
    cos_HW = np.abs(rays_HW3[..., 2]) / np.linalg.norm(rays_HW3, axis=-1)
    expected_HW = (distance_HW.astype(np.float64) * cos_HW).astype(np.float32)
    for _ in range(2):  # the second call is served from the per-camera cache
        assert np.array_equal(distance_to_planar(distance_HW, M), expected_HW)
    # another camera must not be served the first camera's factor
    M_other = M.copy()
    M_other[0, 2] += 0.1
    assert not np.array_equal(distance_to_planar(distance_HW, M_other), expected_HW)
