"""The Hypersim reader on the real fixture frame and on small hand-written files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from depthcore.data.hypersim.reader import (
    FrameId,
    distance_to_planar,
    find_frames,
    load_frame,
    read_color,
    read_distance,
    read_entity,
    tone_map,
)
from depthcore.data.hypersim.tables import (
    camera_matrices,
    camera_matrix,
    load_camera_table,
    load_split_table,
)
from depthcore.errors import DataError

REAL_DEPTH = Path("images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5")
F_DEFAULT = 512.0 / np.tan(np.deg2rad(30.0))  # 886.81 px


@pytest.fixture(scope="module")
def real_frame(fixtures_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    distance_HW = read_distance(fixtures_dir / "hypersim" / "ai_037_002" / REAL_DEPTH)
    M = camera_matrix(load_camera_table(), "ai_037_002")
    return distance_HW, M


def test_packaged_tables_are_the_real_ones() -> None:
    split = load_split_table()
    assert len(split) == 82900
    public = split[split["included_in_public_release"]]
    assert public["split_partition_name"].value_counts().to_dict() == {
        "train": 59543,
        "test": 7690,
        "val": 7386,
    }
    M = camera_matrix(load_camera_table(), "ai_037_002")
    assert M[0, 2] == pytest.approx(-0.0696, abs=1e-4)
    assert M[1, 2] == pytest.approx(0.0927, abs=1e-4)


def test_real_frame_planar_never_exceeds_distance(real_frame) -> None:
    distance_HW, M = real_frame
    assert distance_HW.shape == (768, 1024)
    planar_HW = distance_to_planar(distance_HW, M)
    assert np.isfinite(planar_HW).all()
    assert (planar_HW <= distance_HW * (1 + 1e-6)).all()
    # The corners are far off-axis: there planar depth is clearly shorter.
    assert planar_HW[0, 0] < 0.8 * distance_HW[0, 0]


def test_real_frame_centre_pixel_lens_shift_by_hand(real_frame) -> None:
    distance_HW, M = real_frame
    planar_HW = distance_to_planar(distance_HW, M)
    # Pixel (383, 511): u = -1/1024, v = +1/768 (top row is v = +1).
    u, v = -1.0 / 1024, 1.0 / 768
    x = 0.579607251426182 * u - 0.06955286861651404
    y = 0.4346865334657201 * v + 0.09273312506660672
    z = 0.004054126980668954 * v - 1.003909173803896
    cos = abs(z) / np.sqrt(x * x + y * y + z * z)
    assert cos == pytest.approx(0.99331, abs=1e-4)
    assert planar_HW[383, 511] == pytest.approx(distance_HW[383, 511] * cos, rel=1e-6)
    # The naive 886.81 px formula says the centre is on the axis (factor ~1): it is ~5 cm off.
    naive = distance_HW[383, 511] * F_DEFAULT / np.sqrt(0.5**2 + 0.5**2 + F_DEFAULT**2)
    assert naive - planar_HW[383, 511] > 0.04


def test_real_frame_on_axis_ray_keeps_distance(real_frame) -> None:
    distance_HW, M = real_frame
    ratio_HW = distance_to_planar(distance_HW, M) / distance_HW
    # The optical axis passes through u = 0.0696/0.5796 = 0.12, v ~ -0.2133, i.e. near
    # pixel (465, 573), not the image centre: the ratio peaks (~1) there.
    r, c = np.unravel_index(np.argmax(ratio_HW), ratio_HW.shape)
    assert abs(r - 465) <= 1 and abs(c - 573) <= 1
    assert ratio_HW[r, c] == pytest.approx(1.0, abs=1e-5)


def test_default_camera_matches_focal_length_formula() -> None:
    M = camera_matrix(load_camera_table(), "ai_001_001")
    distance_HW = np.full((768, 1024), 5.0, np.float32)
    planar_HW = distance_to_planar(distance_HW, M)
    x, y = -511.5, 383.5  # pixel (0, 0) in pixel units from the centre
    expected = 5.0 * F_DEFAULT / np.sqrt(x * x + y * y + F_DEFAULT**2)
    assert planar_HW[0, 0] == pytest.approx(expected, rel=1e-5)


def test_tone_map_by_hand() -> None:
    hdr_HW3 = np.ones((4, 5, 3), np.float32)
    hdr_HW3[0, 0] = 0.5
    valid_HW = np.ones((4, 5), bool)
    rgb_HW3 = tone_map(hdr_HW3, valid_HW)
    # p90 of brightness = 1 -> scale 0.8**2.2; 0.5 -> 0.8 * 0.5**(1/2.2) = 0.5838 -> 148.
    assert rgb_HW3.dtype == np.uint8
    assert rgb_HW3[0, 0, 0] == 148
    assert rgb_HW3[1, 1, 0] in (203, 204)
    # No valid pixel: scale 1 (values above 1 clip to 255); tiny p90: scale 0 -> black.
    assert tone_map(hdr_HW3 * 3, np.zeros((4, 5), bool))[1, 1, 0] == 255
    assert tone_map(hdr_HW3 * 1e-6, valid_HW).max() == 0


def _write(path: Path, data: np.ndarray, name: str = "dataset") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=data, compression="gzip")


def test_reader_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.hdf5"
    with pytest.raises(DataError, match="nope.hdf5: file not found"):
        read_distance(missing)
    truncated = tmp_path / "trunc.hdf5"
    _write(truncated, np.ones((8, 8), np.float16))
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(DataError, match="trunc.hdf5: unreadable or corrupt"):
        read_distance(truncated)
    wrong_name = tmp_path / "named.hdf5"
    _write(wrong_name, np.ones((8, 8), np.float16), name="depth")
    with pytest.raises(DataError, match="named.hdf5: no dataset named 'dataset'"):
        read_distance(wrong_name)
    wrong_shape = tmp_path / "shape.hdf5"
    _write(wrong_shape, np.ones((8, 8), np.float16))
    with pytest.raises(DataError, match="shape.hdf5: expected 3-D"):
        read_color(wrong_shape)
    wrong_dtype = tmp_path / "dtype.hdf5"
    _write(wrong_dtype, np.ones((8, 8), np.float16))
    with pytest.raises(DataError, match="dtype.hdf5: unexpected dtype float16"):
        read_entity(wrong_dtype)


def test_load_frame_masks_and_finds_frames(tmp_path: Path) -> None:
    fid = FrameId("ai_001_001", "cam_00", 3)
    hdr_HW3 = np.full((6, 8, 3), 0.5, np.float16)
    distance_HW = np.full((6, 8), 4.0, np.float16)
    distance_HW[0, 0] = np.nan
    entity_HW = np.ones((6, 8), np.int16)
    entity_HW[0, 0] = -1
    entity_HW[5, 7] = -1  # a pixel with no surface but a (bogus) finite distance
    _write(fid.color_path(tmp_path), hdr_HW3)
    _write(fid.depth_path(tmp_path), distance_HW)
    _write(fid.entity_path(tmp_path), entity_HW)
    assert find_frames(tmp_path, "ai_001_001") == [fid]
    frame = load_frame(tmp_path, fid, camera_matrix(load_camera_table(), "ai_001_001"))
    assert frame.valid_HW.sum() == 46
    assert not frame.valid_HW[0, 0] and not frame.valid_HW[5, 7]
    assert np.isnan(frame.depth_HW[5, 7])
    assert frame.rgb_HW3.shape == (6, 8, 3)
    assert fid.key == "ai_001_001/cam_00/0003"


def test_camera_matrices_are_camera_matrix_per_scene_with_its_errors() -> None:
    cameras = load_camera_table()
    scenes = ["ai_037_002", "ai_001_001", "ai_037_002"]
    matrices = camera_matrices(cameras, scenes)
    for scene in scenes:
        assert np.array_equal(matrices[scene], camera_matrix(cameras, scene))
    with pytest.raises(DataError, match="no camera row for scene ai_999_999"):
        camera_matrices(cameras, ["ai_001_001", "ai_999_999"])
    broken = cameras.copy()
    broken.loc["ai_037_002", "M_cam_from_uv_00"] = np.nan
    with pytest.raises(DataError, match="non-finite M_cam_from_uv for scene ai_037_002"):
        camera_matrices(broken, ["ai_001_001", "ai_037_002", "ai_999_999"])


def test_frame_paths_are_the_path_methods_as_strings(tmp_path: Path) -> None:
    frame = FrameId("ai_001_001", "cam_00", 7)
    for in_dir in (tmp_path, str(tmp_path) + "/"):
        color, depth, entity = frame.paths(in_dir)
        assert Path(color) == frame.color_path(in_dir) == Path(str(frame.color_path(in_dir)))
        assert Path(depth) == frame.depth_path(in_dir)
        assert Path(entity) == frame.entity_path(in_dir)
