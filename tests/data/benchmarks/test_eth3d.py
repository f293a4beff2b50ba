"""ETH3D reader: JPEG images, raw float32 depth misnamed .JPG, inf holes, size checks, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depthcore.data.benchmarks.eth3d import ETH3DReader, depth_path_for
from depthcore.errors import DataError
from depthcore.synth.bench_formats import write_eth3d_frame

H, W = 24, 36


def _smooth_rgb(k: int) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([8 * x, 10 * y, np.full_like(x, 40 * k)], axis=-1).astype(np.uint8)


@pytest.fixture()
def eth3d_set(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(6)
    depths = {}
    for scene, images in (
        ("courtyard", ("DSC_0286.JPG", "DSC_0287.JPG")),
        ("relief", ("DSC_0427.JPG",)),
    ):
        for k, image in enumerate(images):
            depth_HW = rng.uniform(0.5, 90.0, (H, W)).astype(np.float32)
            depth_HW[: 3 + k, :] = np.inf  # no laser return
            write_eth3d_frame(tmp_path, scene, image, _smooth_rgb(k), depth_HW)
            depths[f"{scene}/{image[:-4]}"] = depth_HW
    return tmp_path, depths


def test_depth_file_is_raw_float32(eth3d_set):
    root, depths = eth3d_set
    path = depth_path_for(root, "courtyard", "DSC_0286.JPG")
    assert path.stat().st_size == H * W * 4
    np.testing.assert_array_equal(
        np.fromfile(path, "<f4").reshape(H, W), depths["courtyard/DSC_0286"]
    )
    assert (root / "courtyard" / "images" / "dslr_images" / "DSC_0286.JPG").read_bytes()[
        :2
    ] == b"\xff\xd8"


def test_round_trip(eth3d_set):
    root, depths = eth3d_set
    reader = ETH3DReader(root)
    assert [s.name for s in reader] == [
        "courtyard/DSC_0286",
        "courtyard/DSC_0287",
        "relief/DSC_0427",
    ]
    for k, sample in enumerate(reader):
        gt_HW = depths[sample.name]
        expected_valid = np.isfinite(gt_HW) & (gt_HW > 1e-4) & (gt_HW <= 72.0)
        np.testing.assert_array_equal(sample.valid_HW, expected_valid)
        np.testing.assert_array_equal(sample.depth_HW[expected_valid], gt_HW[expected_valid])
        assert np.all(sample.depth_HW[~expected_valid] == 0)
        assert sample.rgb_HW3.shape == (H, W, 3) and sample.rgb_HW3.dtype == np.uint8
        jpeg_error = np.abs(sample.rgb_HW3.astype(int) - _smooth_rgb(k % 2)).mean()
        assert jpeg_error < 3.0
        assert sample.intrinsics_33 is None
    assert len(ETH3DReader(root, height=H, width=W)) == 3


def test_missing_depth_names_it(eth3d_set):
    root, _ = eth3d_set
    path = depth_path_for(root, "relief", "DSC_0427.JPG")
    path.unlink()
    with pytest.raises(DataError, match=rf"{path}: file not found"):
        ETH3DReader(root)[2]


def test_truncated_depth_names_it_and_the_byte_count(eth3d_set):
    root, _ = eth3d_set
    path = depth_path_for(root, "courtyard", "DSC_0287.JPG")
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(DataError, match=rf"{path}: {H * W * 4 - 4} bytes, expected {H * W * 4}"):
        ETH3DReader(root)[1]


def test_wrong_size_parameter_named(eth3d_set):
    root, _ = eth3d_set
    with pytest.raises(DataError, match=rf"DSC_0286\.JPG: image is {H}x{W}, the reader was told"):
        ETH3DReader(root, height=4032, width=6048)[0]


def test_no_images(tmp_path):
    with pytest.raises(DataError, match="no <scene>/images/dslr_images folder"):
        ETH3DReader(tmp_path)
    (tmp_path / "courtyard" / "images" / "dslr_images").mkdir(parents=True)
    with pytest.raises(DataError, match="no eth3d frames found"):
        ETH3DReader(tmp_path)
