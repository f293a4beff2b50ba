"""iBims-1 reader: MATLAB v5 struct fields, masks, calib and plane-normal conventions, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from depthcore.data.benchmarks.ibims import IMAGE_LIST, IBims1Reader
from depthcore.errors import DataError
from depthcore.synth.bench_formats import ibims_calib, write_ibims_frame, write_ibims_list

H, W = 30, 40
K_33 = np.array([[35.0, 0.0, 19.0], [0.0, 36.0, 14.5], [0.0, 0.0, 1.0]])


def _fields(rng: np.random.Generator) -> dict[str, np.ndarray]:
    depth_HW = rng.uniform(0.5, 8.0, (H, W)).astype(np.float32)
    depth_HW[0, :5] = 0.0  # missing
    depth_HW[1, 0] = 60.0  # beyond 50 m
    mask_invalid = np.ones((H, W), np.uint8)
    mask_invalid[2, :3] = 0
    mask_transp = np.ones((H, W), np.uint8)
    mask_transp[3, :4] = 0
    wall = np.zeros((H, W), np.uint8)
    wall[:, :10], wall[:, 30:] = 1, 2
    floor = np.zeros((H, W), np.uint8)
    floor[20:, 10:30] = 1
    edges = np.zeros((H, W), np.uint8)
    edges[:, 10] = 1
    # columns 4:7 hold the normal in iBims' (x right, y forward, z up) frame
    wall_paras = np.zeros((2, 7))
    wall_paras[0, 4:7] = (1.0, 0.0, 0.0)
    wall_paras[1, 4:7] = (0.0, -2.0, 0.0)  # not unit: the reader normalises
    floor_paras = np.zeros((1, 7))
    floor_paras[0, 4:7] = (0.0, 0.0, 1.0)
    return {
        "rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "depth": depth_HW,
        "edges": edges,
        "calib": ibims_calib(K_33),
        "mask_invalid": mask_invalid,
        "mask_transp": mask_transp,
        "mask_wall": wall,
        "mask_wall_paras": wall_paras,
        "mask_table": np.zeros((H, W), np.uint8),
        "mask_table_paras": np.zeros((0, 7)),
        "mask_floor": floor,
        "mask_floor_paras": floor_paras,
    }


@pytest.fixture()
def ibims_set(tmp_path: Path) -> tuple[Path, list[dict[str, np.ndarray]]]:
    rng = np.random.default_rng(2)
    frames = [_fields(rng) for _ in range(2)]
    for name, fields in zip(("corridor_01", "office_02"), frames, strict=True):
        write_ibims_frame(tmp_path, name, fields)
    write_ibims_list(tmp_path, ["corridor_01", "office_02"])
    return tmp_path, frames


def test_struct_is_read_as_the_official_script_does(ibims_set):
    root, frames = ibims_set
    data = scipy.io.loadmat(root / "office_02.mat")["data"]
    np.testing.assert_array_equal(data["rgb"][0][0], frames[1]["rgb"])
    calib = data["calib"][0][0]
    assert (calib[0, 0], calib[1, 1], calib[2, 0], calib[2, 1]) == (35.0, 36.0, 20.0, 15.5)


def test_round_trip_values_masks_and_planes(ibims_set):
    root, frames = ibims_set
    reader = IBims1Reader(root)
    assert [s.name for s in reader] == ["corridor_01", "office_02"]
    sample, f = reader[1], frames[1]
    np.testing.assert_array_equal(sample.rgb_HW3, f["rgb"])
    expected_valid = np.ones((H, W), bool)
    expected_valid[0, :5] = expected_valid[1, 0] = False
    expected_valid[2, :3] = expected_valid[3, :4] = False
    np.testing.assert_array_equal(sample.valid_HW, expected_valid)
    np.testing.assert_array_equal(sample.depth_HW[expected_valid], f["depth"][expected_valid])
    np.testing.assert_allclose(sample.intrinsics_33, K_33)
    np.testing.assert_array_equal(sample.edges_HW, f["edges"] == 1)
    # walls 1, 2 then the floor (no table); masks intersected with the valid pixels
    assert sample.plane_masks.shape == (3, H, W) and sample.plane_masks.dtype == bool
    np.testing.assert_array_equal(sample.plane_masks[1], (f["mask_wall"] == 2) & expected_valid)
    np.testing.assert_array_equal(sample.plane_masks[2], (f["mask_floor"] == 1) & expected_valid)
    # (x right, y forward, z up) -> camera (x right, y down, z forward), unit length
    np.testing.assert_allclose(
        sample.plane_normals, [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]], atol=1e-12
    )


def test_missing_mat_file_names_it(ibims_set):
    root, _ = ibims_set
    (root / "office_02.mat").unlink()
    reader = IBims1Reader(root)
    with pytest.raises(DataError, match=r"office_02\.mat: file not found"):
        reader[1]


def test_truncated_mat_file_names_it(ibims_set):
    root, _ = ibims_set
    path = root / "corridor_01.mat"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"corridor_01\.mat"):
        IBims1Reader(root)[0]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("calib", np.eye(2), "calib must be 3x3"),
        ("mask_transp", np.ones((H, W + 1), np.uint8), "mask_transp shape"),
        ("mask_wall_paras", np.zeros((2, 5)), "mask_wall_paras must have one row of >= 7"),
        ("rgb", np.zeros((H, W), np.uint8), "rgb must be HxWx3 uint8"),
    ],
)
def test_wrong_shaped_field_named(tmp_path, field, value, message):
    fields = _fields(np.random.default_rng(3))
    fields[field] = value
    write_ibims_frame(tmp_path, "bad", fields)
    write_ibims_list(tmp_path, ["bad"])
    with pytest.raises(DataError, match=rf"bad\.mat.*{message}"):
        IBims1Reader(tmp_path)[0]


def test_missing_struct_field_named(tmp_path):
    fields = _fields(np.random.default_rng(4))
    del fields["mask_invalid"]
    scipy.io.savemat(tmp_path / "bad.mat", {"data": fields})
    write_ibims_list(tmp_path, ["bad"])
    with pytest.raises(DataError, match=r"bad\.mat: struct 'data' lacks field\(s\) mask_invalid"):
        IBims1Reader(tmp_path)[0]


def test_empty_or_missing_image_list(tmp_path):
    with pytest.raises(DataError, match=IMAGE_LIST):
        IBims1Reader(tmp_path)
    (tmp_path / IMAGE_LIST).write_text("\n\n")
    with pytest.raises(DataError, match=rf"{IMAGE_LIST}: lists no image names"):
        IBims1Reader(tmp_path)
