"""NYU Depth v2 (labelled subset) read from the official ``nyu_depth_v2_labeled.mat``.

The file is MATLAB v7.3, i.e. HDF5 (h5py reads it; the 512-byte MATLAB userblock
in front is skipped by HDF5 itself, so files without it read the same). MATLAB
stores arrays column-major, so a 480x640x3x1449 ``images`` array appears in HDF5 as
(1449, 3, 640, 480) and ``depths`` as (1449, 640, 480): every frame is transposed
back here. ``splits.mat`` (MATLAB v5) holds the 1-based ``testNdxs`` (654 entries
in the real file) and ``trainNdxs``.

Crops (both defined on the 480x640 frame; for another image size they are scaled
by H/480 and W/640 and rounded, so a generated 96x128 set gets the same relative
crop):

- ``border8`` (default, DepthART): cut 8 px on every side, removing the white
  undistortion frame so the model never sees it.
- ``eigen``: the Eigen et al. evaluation window rows 45:471, cols 41:601; the frame
  is not cut, pixels outside the window are marked invalid (as Marigold does).
- ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import scipy.io

from depthcore.data.benchmarks.base import (
    BenchmarkItem,
    BenchmarkReader,
    BenchmarkSample,
    Window,
    reading,
    require_file,
    scaled_intrinsics,
)
from depthcore.errors import DataError

NYU_FILE = "nyu_depth_v2_labeled.mat"
SPLITS_FILE = "splits.mat"
REF_HW = (480, 640)
# Kinect colour camera calibration of the NYU toolbox (camera_params.m), at 480x640.
FX, FY, CX, CY = 518.8579, 519.4696, 325.5824, 253.7362
BORDER = 8
EIGEN_WINDOW = (45, 471, 41, 601)

Crop = Literal["border8", "eigen", "none"]


def nyu_intrinsics(height: int, width: int) -> np.ndarray:
    """NYU's nominal colour intrinsics for a frame stored at ``height`` x ``width``."""
    return scaled_intrinsics(FX, FY, CX, CY, REF_HW, (height, width))


def _scale_window(window: Window, height: int, width: int) -> Window:
    top, bottom, left, right = window
    sy, sx = height / REF_HW[0], width / REF_HW[1]
    return (round(top * sy), round(bottom * sy), round(left * sx), round(right * sx))


class NYUv2Reader(BenchmarkReader):
    """The 654 official test frames (or the train frames) of NYU Depth v2."""

    name = "nyu"
    min_depth = 1e-8
    max_depth = 10.0

    def __init__(
        self,
        root: str | Path,
        *,
        split: Literal["test", "train"] = "test",
        crop: Crop = "border8",
        depth_key: Literal["depths", "rawDepths"] = "depths",
        **kw: float | int | None,
    ) -> None:
        if crop not in ("border8", "eigen", "none"):
            raise ValueError(f"nyu crop must be border8, eigen or none, got {crop!r}")
        if split not in ("test", "train"):
            raise ValueError(f"nyu split must be test or train, got {split!r}")
        self.split, self.crop, self.depth_key = split, crop, depth_key
        super().__init__(root, **kw)

    def list_items(self) -> Sequence[BenchmarkItem]:
        mat = require_file(self.root / NYU_FILE)
        splits = require_file(self.root / SPLITS_FILE)
        key = f"{self.split}Ndxs"
        with reading(splits):
            ndxs = scipy.io.loadmat(splits).get(key)
        if ndxs is None:
            raise DataError(f"{splits}: no '{key}' array")
        ndxs = np.asarray(ndxs).reshape(-1)
        if ndxs.size == 0:
            raise DataError(f"{splits}: '{key}' is empty")
        with reading(mat), h5py.File(mat, "r") as f:
            n_frames = self._check_layout(f, mat)
        if ndxs.min() < 1 or ndxs.max() > n_frames or np.any(ndxs != np.round(ndxs)):
            raise DataError(
                f"{splits}: '{key}' must hold 1-based frame numbers in 1..{n_frames} "
                f"(the frames in {mat.name}), got {ndxs.min()}..{ndxs.max()}"
            )
        return [BenchmarkItem(f"{int(n):04d}", (mat,), int(n) - 1) for n in ndxs]

    def _check_layout(self, f: h5py.File, mat: Path) -> int:
        """Check the transposed MATLAB layout: images (N,3,W,H) uint8, depths (N,W,H)."""
        for key in ("images", self.depth_key):
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise DataError(f"{mat}: no '{key}' dataset")
        images, depths = f["images"], f[self.depth_key]
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{mat}: 'images' must be uint8 (N,3,W,H) as MATLAB writes 480x640x3xN, "
                f"got {images.dtype} {images.shape}"
            )
        n_frames, _, width, height = images.shape
        if depths.shape != (n_frames, width, height):
            raise DataError(
                f"{mat}: '{self.depth_key}' shape {depths.shape} does not match 'images' "
                f"{images.shape} (expected {(n_frames, width, height)})"
            )
        return n_frames

    def load_item(self, item: BenchmarkItem) -> BenchmarkSample:
        mat = item.files[0]
        with reading(mat, f"frame {item.name}"), h5py.File(mat, "r") as f:
            self._check_layout(f, mat)
            rgb_3WH = f["images"][item.key]
            depth_WH = f[self.depth_key][item.key]
        rgb_HW3 = np.ascontiguousarray(rgb_3WH.transpose(2, 1, 0))
        depth_HW = np.ascontiguousarray(depth_WH.T).astype(np.float32)
        height, width = depth_HW.shape
        return BenchmarkSample(
            name=item.name,
            rgb_HW3=rgb_HW3,
            depth_HW=depth_HW,
            valid_HW=np.ones((height, width), bool),
            intrinsics_33=nyu_intrinsics(height, width),
        )

    def cut_window(self, height: int, width: int) -> Window | None:
        if self.crop != "border8":
            return None
        return _scale_window(
            (BORDER, REF_HW[0] - BORDER, BORDER, REF_HW[1] - BORDER), height, width
        )

    def eval_window(self, height: int, width: int) -> Window | None:
        return _scale_window(EIGEN_WINDOW, height, width) if self.crop == "eigen" else None
