"""iBims-1 read from its official MATLAB v5 files (``imagelist.txt`` + ``<name>.mat``).

Each ``.mat`` holds a 1x1 struct ``data`` (read as the official evaluation script
does: ``scipy.io.loadmat(f)['data']['rgb'][0][0]``) with fields ``rgb`` (480x640x3),
``depth`` (metres, 0 = missing), ``edges``, ``calib``, ``mask_invalid`` and
``mask_transp`` (both 1 = valid, despite the name), and per plane type
(wall, table, floor) a label image ``mask_<type>`` (plane j labelled j+1) plus
``mask_<type>_paras`` (one row per plane; columns 4:7 are its normal).

Two conversions to the :mod:`depthcore.data.benchmarks.base` conventions happen here:

- ``calib`` is MATLAB's transposed, 1-based matrix (fx [0,0], fy [1,1], cx [2,0],
  cy [2,1]); the sample's intrinsics are the usual 0-based ``K`` (cx - 1, cy - 1).
- The official planarity code back-projects to (x right, y forward, z up), the
  frame of the annotated normals; they are rotated to the camera frame
  (x right, y down, z forward): ``n_cam = (n_x, -n_z, n_y)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.io

from depthcore.data.benchmarks.base import (
    BenchmarkItem,
    BenchmarkReader,
    BenchmarkSample,
    reading,
    require_file,
)
from depthcore.errors import DataError

IMAGE_LIST = "imagelist.txt"
PLANE_TYPES = ("wall", "table", "floor")
FIELDS = ("rgb", "depth", "edges", "calib", "mask_invalid", "mask_transp") + tuple(
    f"mask_{t}{suffix}" for t in PLANE_TYPES for suffix in ("", "_paras")
)
# (x right, y forward, z up) of the iBims tools -> (x right, y down, z forward).
IBIMS_TO_CAMERA_33 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


class IBims1Reader(BenchmarkReader):
    """iBims-1: indoor laser-scanned depth with annotated planes, edges and masks."""

    name = "ibims"
    min_depth = 0.01
    max_depth = 50.0

    def list_items(self) -> Sequence[BenchmarkItem]:
        listing = require_file(self.root / IMAGE_LIST)
        with reading(listing):
            names = [line.strip() for line in listing.read_text().splitlines()]
        names = [n.removesuffix(".mat") for n in names if n and not n.startswith("#")]
        if not names:
            raise DataError(f"{listing}: lists no image names")
        return [BenchmarkItem(n, (self.root / f"{n}.mat",)) for n in names]

    def load_item(self, item: BenchmarkItem) -> BenchmarkSample:
        path = item.files[0]
        with reading(path):
            mat = scipy.io.loadmat(path)
        data = mat.get("data")
        if data is None or data.dtype.names is None:
            raise DataError(f"{path}: no struct 'data'")
        missing = [f for f in FIELDS if f not in data.dtype.names]
        if missing:
            raise DataError(f"{path}: struct 'data' lacks field(s) {', '.join(missing)}")
        fields = {f: np.asarray(data[f][0][0]) for f in FIELDS}

        depth_HW = fields["depth"].astype(np.float32)
        if depth_HW.ndim != 2:
            raise DataError(f"{path}: data.depth must be 2-D, got shape {depth_HW.shape}")
        hw = depth_HW.shape
        for key in ("mask_invalid", "mask_transp", "edges") + tuple(
            f"mask_{t}" for t in PLANE_TYPES
        ):
            if fields[key].shape != hw:
                raise DataError(f"{path}: data.{key} shape {fields[key].shape} != depth {hw}")
        valid_HW = (depth_HW != 0) & (fields["mask_invalid"] != 0) & (fields["mask_transp"] != 0)
        masks, normals = self._planes(fields, path)
        return BenchmarkSample(
            name=item.name,
            rgb_HW3=fields["rgb"],
            depth_HW=depth_HW,
            valid_HW=valid_HW,
            intrinsics_33=self._intrinsics(fields["calib"], path),
            plane_masks=masks,
            plane_normals=normals,
            edges_HW=fields["edges"] != 0,
        )

    @staticmethod
    def _intrinsics(calib: np.ndarray, path: object) -> np.ndarray:
        if calib.shape != (3, 3):
            raise DataError(f"{path}: data.calib must be 3x3, got {calib.shape}")
        fx, fy, cx, cy = calib[0, 0], calib[1, 1], calib[2, 0], calib[2, 1]
        return np.array([[fx, 0.0, cx - 1.0], [0.0, fy, cy - 1.0], [0.0, 0.0, 1.0]])

    @staticmethod
    def _planes(fields: dict[str, np.ndarray], path: object) -> tuple[np.ndarray, np.ndarray]:
        """All annotated planes (walls, tables, floors): (P,H,W) masks, (P,3) normals."""
        hw = fields["depth"].shape
        masks, normals = [], []
        for kind in PLANE_TYPES:
            labels_HW = fields[f"mask_{kind}"]
            paras = fields[f"mask_{kind}_paras"]
            if paras.size == 0:
                continue
            paras = np.atleast_2d(paras)
            if paras.ndim != 2 or paras.shape[1] < 7:
                raise DataError(
                    f"{path}: data.mask_{kind}_paras must have one row of >= 7 columns per "
                    f"plane, got shape {paras.shape}"
                )
            for j, row in enumerate(paras.astype(np.float64)):
                masks.append(labels_HW == j + 1)
                normals.append(IBIMS_TO_CAMERA_33 @ row[4:7])
        if not masks:
            return np.zeros((0, *hw), bool), np.zeros((0, 3))
        return np.stack(masks), np.stack(normals)
