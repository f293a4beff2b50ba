"""NYUv2 reader: the MATLAB v7.3 layout (transposed), 1-based splits, crops and errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from depthcore.data.benchmarks.nyu import NYU_FILE, SPLITS_FILE, NYUv2Reader, nyu_intrinsics
from depthcore.errors import DataError
from depthcore.synth.bench_formats import write_nyu_set

N_FRAMES, H, W = 5, 48, 64  # H != W: a transpose bug changes the shape
TEST_NDXS = [2, 4, 5]


@pytest.fixture()
def nyu_set(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    rgb_NHW3 = rng.integers(0, 256, (N_FRAMES, H, W, 3), dtype=np.uint8)
    depth_NHW = rng.uniform(0.5, 12.0, (N_FRAMES, H, W)).astype(np.float32)
    raw_NHW = np.where(rng.random((N_FRAMES, H, W)) < 0.1, 0.0, depth_NHW).astype(np.float32)
    write_nyu_set(tmp_path, rgb_NHW3, depth_NHW, raw_NHW, TEST_NDXS)
    return tmp_path, rgb_NHW3, depth_NHW


def test_file_has_matlab_layout_and_header(nyu_set):
    root, rgb_NHW3, depth_NHW = nyu_set
    path = root / NYU_FILE
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    assert path.read_bytes()[124:128] == b"\x00\x02IM"
    assert scipy.io.matlab.matfile_version(path) == (2, 0)  # what MATLAB calls v7.3
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        assert f["images"].shape == (N_FRAMES, 3, W, H)
        assert f["depths"].shape == (N_FRAMES, W, H)
        assert f["images"].attrs["MATLAB_class"] == b"uint8"
        # element (frame i, channel c, column x, row y) is pixel (y, x) of channel c
        assert f["images"][3, 2, 7, 1] == rgb_NHW3[3, 1, 7, 2]
        assert f["depths"][1, 10, 5] == depth_NHW[1, 5, 10]
    splits = scipy.io.loadmat(root / SPLITS_FILE)
    assert splits["testNdxs"].reshape(-1).tolist() == TEST_NDXS
    assert sorted(splits["trainNdxs"].reshape(-1).tolist()) == [1, 3]


def test_reads_test_frames_untransposed(nyu_set):
    root, rgb_NHW3, depth_NHW = nyu_set
    reader = NYUv2Reader(root, crop="none")
    assert len(reader) == len(TEST_NDXS)
    for sample, ndx in zip(reader, TEST_NDXS, strict=True):
        assert sample.name == f"{ndx:04d}"
        assert sample.rgb_HW3.dtype == np.uint8 and sample.rgb_HW3.shape == (H, W, 3)
        np.testing.assert_array_equal(sample.rgb_HW3, rgb_NHW3[ndx - 1])
        expected_valid = depth_NHW[ndx - 1] <= 10.0
        np.testing.assert_array_equal(sample.valid_HW, expected_valid)
        assert sample.depth_HW.dtype == np.float32
        np.testing.assert_array_equal(
            sample.depth_HW[expected_valid], depth_NHW[ndx - 1][expected_valid]
        )
        assert np.all(sample.depth_HW[~expected_valid] == 0)
        np.testing.assert_allclose(sample.intrinsics_33, nyu_intrinsics(H, W))
    assert len(NYUv2Reader(root, split="train", crop="none")) == 2


def test_raw_depths_holes_are_invalid(nyu_set):
    root, _, depth_NHW = nyu_set
    sample = NYUv2Reader(root, crop="none", depth_key="rawDepths")[0]
    assert not sample.valid_HW.all()
    assert np.all(sample.depth_HW[sample.valid_HW] > 0)


def test_border8_crop_is_scaled_and_moves_principal_point(nyu_set):
    root, rgb_NHW3, _ = nyu_set
    sample = NYUv2Reader(root)[0]
    b = round(8 * W / 640)  # 1 px at 64 px wide
    assert sample.rgb_HW3.shape == (H - 2 * b, W - 2 * b, 3)
    np.testing.assert_array_equal(sample.rgb_HW3, rgb_NHW3[TEST_NDXS[0] - 1, b:-b, b:-b])
    full_K = nyu_intrinsics(H, W)
    np.testing.assert_allclose(sample.intrinsics_33[:2, 2], full_K[:2, 2] - b)


def test_eigen_crop_masks_outside_the_scaled_window(nyu_set):
    root, _, depth_NHW = nyu_set
    sample = NYUv2Reader(root, crop="eigen")[0]
    top, bottom = round(45 * H / 480), round(471 * H / 480)
    left, right = round(41 * W / 640), round(601 * W / 640)
    assert sample.depth_HW.shape == (H, W)
    inside_HW = np.zeros((H, W), bool)
    inside_HW[top:bottom, left:right] = True
    np.testing.assert_array_equal(sample.valid_HW, inside_HW & (depth_NHW[TEST_NDXS[0] - 1] <= 10))


def test_file_without_matlab_userblock_reads_the_same(nyu_set, tmp_path):
    root, rgb_NHW3, _ = nyu_set
    plain = tmp_path / "plain"
    plain.mkdir()
    with h5py.File(root / NYU_FILE, "r") as src, h5py.File(plain / NYU_FILE, "w") as dst:
        for key in ("images", "depths"):
            dst.create_dataset(key, data=src[key][()])
    (plain / SPLITS_FILE).write_bytes((root / SPLITS_FILE).read_bytes())
    sample = NYUv2Reader(plain, crop="none")[1]
    np.testing.assert_array_equal(sample.rgb_HW3, rgb_NHW3[TEST_NDXS[1] - 1])


def test_missing_file_names_it(nyu_set):
    root, _, _ = nyu_set
    (root / NYU_FILE).unlink()
    with pytest.raises(DataError, match=NYU_FILE):
        NYUv2Reader(root)


def test_truncated_file_names_it(nyu_set):
    root, _, _ = nyu_set
    path = root / NYU_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=NYU_FILE):
        NYUv2Reader(root)[0]


def test_wrong_shaped_images_named(nyu_set):
    root, _, _ = nyu_set
    with h5py.File(root / NYU_FILE, "r+") as f:
        del f["images"]
        f.create_dataset("images", data=np.zeros((N_FRAMES, W, H), np.uint8))
    with pytest.raises(DataError, match=rf"{NYU_FILE}.*'images' must be uint8 \(N,3,W,H\)"):
        NYUv2Reader(root)


def test_empty_or_out_of_range_split(nyu_set):
    root, _, _ = nyu_set
    scipy.io.savemat(root / SPLITS_FILE, {"testNdxs": np.zeros((0, 1))})
    with pytest.raises(DataError, match=rf"{SPLITS_FILE}.*'testNdxs' is empty"):
        NYUv2Reader(root)
    scipy.io.savemat(root / SPLITS_FILE, {"testNdxs": np.array([[0.0], [1.0]])})
    with pytest.raises(DataError, match="1-based"):
        NYUv2Reader(root)
