"""ETH3D (high-res multi-view, DSLR) read from its official layout.

Images: ``<scene>/images/dslr_images/DSC_*.JPG``. Depth:
``<scene>_dslr_depth/<scene>/ground_truth_depth/dslr_images/DSC_*.JPG``, which
is NOT a JPEG despite the name but raw little-endian float32, H x W, row-major,
no header (4032 x 6048 in the real data), inf where the laser scan has no
surface. The file carries no size: it is a reader parameter (``height``,
``width``), by default the size of the matching JPEG (ETH3D renders the ground
truth at image resolution). A file of the wrong byte count is refused rather
than reshaped into garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depthcore.data.benchmarks.base import (
    BenchmarkItem,
    BenchmarkReader,
    BenchmarkSample,
    read_rgb,
    reading,
)
from depthcore.errors import DataError

IMAGE_DIR = Path("images") / "dslr_images"


def depth_path_for(root: Path, scene: str, image_name: str) -> Path:
    """Where ETH3D keeps the ground-truth depth of ``scene``'s image ``image_name``."""
    return root / f"{scene}_dslr_depth" / scene / "ground_truth_depth" / "dslr_images" / image_name


def read_raw_depth(path: Path, height: int, width: int) -> np.ndarray:
    """A raw float32 little-endian H x W depth file, refusing a wrong byte count."""
    expected = height * width * 4
    with reading(path):
        size = path.stat().st_size
        if size != expected:
            raise DataError(
                f"{path}: {size} bytes, expected {expected} for a {height}x{width} float32 "
                "depth map (truncated file or wrong size parameter)"
            )
        depth_HW = np.fromfile(path, dtype="<f4").reshape(height, width)
    return depth_HW.astype(np.float32)


class ETH3DReader(BenchmarkReader):
    """ETH3D: indoor and outdoor scenes with laser-scanned depth up to tens of metres."""

    name = "eth3d"
    min_depth = 1e-4
    max_depth = 72.0

    def __init__(
        self,
        root: str | Path,
        *,
        height: int | None = None,
        width: int | None = None,
        **kw: float | int | None,
    ) -> None:
        if (height is None) != (width is None):
            raise ValueError("eth3d: give both height and width, or neither")
        self.height, self.width = height, width
        super().__init__(root, **kw)

    def list_items(self) -> Sequence[BenchmarkItem]:
        scenes = sorted(
            p.name
            for p in self.root.iterdir()
            if (p / IMAGE_DIR).is_dir() and not p.name.endswith("_dslr_depth")
        )
        if not scenes:
            raise DataError(f"{self.root}: no <scene>/{IMAGE_DIR.as_posix()} folder")
        items = []
        for scene in scenes:
            for image in sorted((self.root / scene / IMAGE_DIR).glob("*.JPG")):
                depth = depth_path_for(self.root, scene, image.name)
                items.append(BenchmarkItem(f"{scene}/{image.stem}", (image, depth)))
        return items

    def load_item(self, item: BenchmarkItem) -> BenchmarkSample:
        image_path, depth_path = item.files
        rgb_HW3 = read_rgb(image_path)
        height, width = rgb_HW3.shape[:2]
        if self.height is not None and (height, width) != (self.height, self.width):
            raise DataError(
                f"{image_path}: image is {height}x{width}, the reader was told "
                f"{self.height}x{self.width}"
            )
        depth_HW = read_raw_depth(depth_path, height, width)
        return BenchmarkSample(
            name=item.name,
            rgb_HW3=rgb_HW3,
            depth_HW=depth_HW,
            valid_HW=np.isfinite(depth_HW),
        )
