"""The reader's fast paths give exactly what the per-pixel float64 formulas give."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from depthcore.data.hypersim.reader import (
    FrameId,
    _float16_values,
    _srgb8,
    _srgb8_float16_table,
    distance_to_planar,
    load_frame,
    ray_directions,
    read_dataset,
    read_distance,
    tone_map,
)
from depthcore.data.hypersim.tables import camera_matrix, load_camera_table
from depthcore.data.transforms import nearest_indices, resize_depth
from tests.helpers.hypersim_files import write_h5

REAL_DEPTH = Path("ai_037_002/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5")


def hdr_frame(seed: int, shape: tuple[int, int] = (768, 1024)) -> tuple[np.ndarray, np.ndarray]:
    """A float16 HDR frame (Hypersim's size and dtype by default) with NaN, inf and < 0."""
    rng = np.random.default_rng(seed)
    hdr_HW3 = rng.lognormal(-1.0, 1.5, (*shape, 3)).astype(np.float16)
    hdr_HW3[0, :4, 0] = [np.nan, np.inf, -np.inf, -0.5]
    valid_HW = rng.random(shape) > 0.05
    return hdr_HW3, valid_HW


def reference_tone_map(hdr_HW3: np.ndarray, valid_HW: np.ndarray) -> np.ndarray:
    """The Hypersim authors' tone map, per pixel in float64 with np.percentile."""
    hdr = np.nan_to_num(hdr_HW3.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    valid_N3 = hdr[valid_HW]
    brightness_N = 0.3 * valid_N3[:, 0] + 0.59 * valid_N3[:, 1] + 0.11 * valid_N3[:, 2]
    scale = 1.0
    if brightness_N.size:
        p90 = float(np.percentile(brightness_N, 90))
        scale = 0.0 if p90 < 1e-4 else 0.8**2.2 / p90
    linear = np.maximum(scale * hdr, 0.0)
    return (np.clip(linear ** (1.0 / 2.2), 0.0, 1.0) * 255.0).astype(np.uint8)


@pytest.mark.parametrize("shape", [(768, 1024), (96, 128), (5, 7)])
def test_tone_map_equals_per_pixel_formula(shape: tuple[int, int]) -> None:
    for seed in range(2):
        hdr_HW3, valid_HW = hdr_frame(seed, shape)
        for valid in (valid_HW, np.ones(shape, bool), np.zeros(shape, bool)):
            expected = reference_tone_map(hdr_HW3, valid)
            fast = tone_map(hdr_HW3, valid)  # float16: the table path
            generic = tone_map(hdr_HW3.astype(np.float32), valid)
            assert fast.dtype == np.uint8 and np.array_equal(fast, expected)
            assert np.array_equal(generic, expected)
    if shape == (768, 1024):
        assert len(np.unique(fast)) > 200  # the frame spans the whole range


def test_float16_tone_curve_table_equals_formula_for_every_value() -> None:
    scales = [0.0, 1e-9, 1e-4, 1.0, 1 / 65504, 6.1e-5, 2.0**24]
    scales += list(10 ** np.random.default_rng(0).uniform(-8, 8, 200))
    for scale in scales:
        np.testing.assert_array_equal(
            _srgb8_float16_table(scale), _srgb8(scale, _float16_values()), err_msg=str(scale)
        )


def test_cached_planar_factor_equals_direct_formula(fixtures_dir: Path) -> None:
    distance_HW = read_distance(fixtures_dir / "hypersim" / REAL_DEPTH)
    M = camera_matrix(load_camera_table(), "ai_037_002")
    rays_HW3 = ray_directions(M, *distance_HW.shape)
    cos_HW = np.abs(rays_HW3[..., 2]) / np.linalg.norm(rays_HW3, axis=-1)
    expected_HW = (distance_HW.astype(np.float64) * cos_HW).astype(np.float32)
    for _ in range(2):  # the second call is served from the per-camera cache
        assert np.array_equal(distance_to_planar(distance_HW, M), expected_HW)
    pixels = np.ix_(nearest_indices(768, 64), nearest_indices(1024, 48))
    assert np.array_equal(distance_to_planar(distance_HW, M, pixels), expected_HW[pixels])
    # another camera must not be served the first camera's factor
    M_other = M.copy()
    M_other[0, 2] += 0.1
    assert not np.array_equal(distance_to_planar(distance_HW, M_other), expected_HW)


def test_load_frame_with_depth_size_equals_nearest_resize_after(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    distance_HW = read_distance(fixtures_dir / "hypersim" / REAL_DEPTH)
    hdr_HW3, _ = hdr_frame(0)
    rng = np.random.default_rng(1)
    entity_HW = rng.integers(0, 50, distance_HW.shape).astype(np.int16)
    entity_HW[rng.random(distance_HW.shape) < 0.1] = -1  # no surface
    distance_HW[100:200, 300:400] = np.nan  # no depth
    fid = FrameId("ai_037_002", "cam_00", 0)
    write_h5(fid.color_path(tmp_path), hdr_HW3)
    write_h5(fid.depth_path(tmp_path), distance_HW.astype(np.float16))
    write_h5(fid.entity_path(tmp_path), entity_HW)
    M = camera_matrix(load_camera_table(), "ai_037_002")
    full = load_frame(tmp_path, fid, M)
    for size in [(64, 64), (48, 80)]:
        small = load_frame(tmp_path, fid, M, depth_size=size)
        depth_hw, valid_hw = resize_depth(full.depth_HW, full.valid_HW, size, "nearest")
        assert np.array_equal(small.depth_HW, depth_hw, equal_nan=True)
        assert np.array_equal(small.valid_HW, valid_hw) and not valid_hw.all()
        assert np.array_equal(small.rgb_HW3, full.rgb_HW3)  # colour stays full size


def test_read_dataset_equals_h5py_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i, dtype in enumerate(["<f2", "<f4", ">f4", "<i2", "<i4", "<u1"]):
        data = (rng.random((7, 9, 3)) * 100).astype(dtype)
        path = tmp_path / f"{i}.hdf5"
        write_h5(path, data)
        with h5py.File(path, "r") as f:
            expected = f["dataset"][()]
        got = read_dataset(path, 3, "fiu")
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    empty = tmp_path / "empty.hdf5"
    write_h5(empty, np.zeros((0, 4), np.float16))
    assert read_dataset(empty, 2, "f").shape == (0, 4)
