"""TUM RGB-D sequences read from their official layout.

A sequence folder holds ``rgb.txt`` and ``depth.txt`` (lines ``timestamp filename``,
``#`` comments), 8-bit colour PNGs and 16-bit depth PNGs (5000 = 1 m, 0 = missing).
The two cameras are not synchronised, so frames are paired the way the benchmark's
``associate.py`` does: all pairs closer than ``max_dt`` (0.02 s), taken greedily
by increasing time difference, each frame used at most once.

``root`` is one sequence folder or a folder of sequence folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from depthcore.data.benchmarks.base import (
    BenchmarkItem,
    BenchmarkReader,
    BenchmarkSample,
    read_rgb,
    reading,
    require_file,
    scaled_intrinsics,
)
from depthcore.errors import DataError

DEPTH_SCALE = 5000.0  # 16-bit value per metre
MAX_DT = 0.02
REF_HW = (480, 640)
# The benchmark's default (ROS) intrinsics at 480x640; per-sequence values differ slightly.
FX, FY, CX, CY = 525.0, 525.0, 319.5, 239.5


def tum_intrinsics(height: int, width: int) -> np.ndarray:
    """TUM's nominal intrinsics for a frame stored at ``height`` x ``width``."""
    return scaled_intrinsics(FX, FY, CX, CY, REF_HW, (height, width))


def read_file_list(path: Path) -> list[tuple[float, str]]:
    """Parse a TUM ``timestamp filename`` list, skipping ``#`` comments and blank lines."""
    entries = []
    with reading(path):
        text = path.read_text()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        try:
            entries.append((float(parts[0]), parts[1]))
        except (ValueError, IndexError) as exc:
            raise DataError(
                f"{path}:{lineno}: expected 'timestamp filename', got {line!r}"
            ) from exc
    return entries


def associate(
    rgb_stamps: Sequence[float], depth_stamps: Sequence[float], max_dt: float = MAX_DT
) -> list[tuple[int, int]]:
    """Pair indices of nearest timestamps within ``max_dt``, each used once, in rgb order."""
    rgb_T = np.asarray(rgb_stamps, np.float64)
    depth_T = np.asarray(depth_stamps, np.float64)
    if rgb_T.size == 0 or depth_T.size == 0:
        return []
    # Candidate pairs via a sorted search (a full R x D matrix is too big for long sequences).
    by_time_D = np.argsort(depth_T, kind="stable")
    sorted_D = depth_T[by_time_D]
    lo_R = np.searchsorted(sorted_D, rgb_T - max_dt, side="right")
    hi_R = np.searchsorted(sorted_D, rgb_T + max_dt, side="left")
    candidates = [
        (abs(rgb_T[r] - sorted_D[k]), r, int(by_time_D[k]))
        for r in range(rgb_T.size)
        for k in range(lo_R[r], hi_R[r])
    ]
    used_rgb, used_depth, pairs = set(), set(), []
    for _, r, d in sorted(candidates):
        if r not in used_rgb and d not in used_depth:
            used_rgb.add(r)
            used_depth.add(d)
            pairs.append((r, d))
    return sorted(pairs)


def read_depth_png(path: Path) -> np.ndarray:
    """A TUM 16-bit depth PNG in metres (0 where the sensor gave nothing)."""
    with reading(path), Image.open(path) as im:
        if im.mode not in ("I;16", "I;16B", "I"):
            raise DataError(f"{path}: depth PNG must be 16-bit greyscale, got mode {im.mode}")
        raw_HW = np.asarray(im)
    return raw_HW.astype(np.float32) / DEPTH_SCALE


class TUMReader(BenchmarkReader):
    """TUM RGB-D: handheld Kinect sequences, associated colour/depth pairs."""

    name = "tum"
    min_depth = 0.01
    max_depth = 10.0

    def __init__(
        self, root: str | Path, *, max_dt: float = MAX_DT, **kw: float | int | None
    ) -> None:
        self.max_dt = max_dt
        super().__init__(root, **kw)

    def _sequences(self) -> list[Path]:
        if (self.root / "rgb.txt").exists() or (self.root / "depth.txt").exists():
            return [self.root]
        found = sorted(p.parent for p in self.root.glob("*/rgb.txt"))
        if not found:
            raise DataError(f"{self.root}: no rgb.txt here or in any sub-folder")
        return found

    def list_items(self) -> Sequence[BenchmarkItem]:
        items = []
        for seq in self._sequences():
            rgb_list = read_file_list(require_file(seq / "rgb.txt"))
            depth_list = read_file_list(require_file(seq / "depth.txt"))
            for lst, path in ((rgb_list, "rgb.txt"), (depth_list, "depth.txt")):
                if not lst:
                    raise DataError(f"{seq / path}: lists no frames")
            pairs = associate([t for t, _ in rgb_list], [t for t, _ in depth_list], self.max_dt)
            if not pairs:
                raise DataError(
                    f"{seq}: no rgb.txt/depth.txt timestamps within {self.max_dt} s of each other"
                )
            prefix = "" if seq == self.root else f"{seq.name}/"
            for r, d in pairs:
                stamp, rgb_name = rgb_list[r]
                files = (seq / rgb_name, seq / depth_list[d][1])
                items.append(BenchmarkItem(f"{prefix}{stamp:.6f}", files))
        return items

    def load_item(self, item: BenchmarkItem) -> BenchmarkSample:
        rgb_path, depth_path = item.files
        rgb_HW3 = read_rgb(rgb_path)
        depth_HW = read_depth_png(depth_path)
        if depth_HW.shape != rgb_HW3.shape[:2]:
            raise DataError(
                f"{depth_path}: depth size {depth_HW.shape} differs from {rgb_path.name} "
                f"{rgb_HW3.shape[:2]}"
            )
        return BenchmarkSample(
            name=item.name,
            rgb_HW3=rgb_HW3,
            depth_HW=depth_HW,
            valid_HW=depth_HW > 0,
            intrinsics_33=tum_intrinsics(*depth_HW.shape),
        )
