"""One base for the zero-shot benchmark readers; each dataset only adds its format hooks.

Every benchmark comes in its own historical format (MATLAB v7.3, MATLAB v5
structs, 16-bit PNG, raw float32 misnamed ``.JPG``). The readers differ only in
how a frame is found and decoded, so that is all a subclass writes
(:meth:`BenchmarkReader.list_items`, :meth:`BenchmarkReader.load_item`). The
base does what must be identical everywhere, so that a metric difference between
benchmarks is never a reader difference: array validation, the valid-depth
range ``min_depth < d <= max_depth`` on finite values, the crop, and turning any
decoding failure into a :class:`DataError` that names the file.

Conventions of a :class:`BenchmarkSample`:

- ``depth_HW`` is float32 metres (planar depth, along the optical axis) and is
  0 wherever ``valid_HW`` is False, so a careless percentile never sees inf/NaN.
- ``intrinsics_33`` is the pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``
  with 0-based pixel centres (pixel (row r, col c) looks along
  ``((c - cx) / fx, (r - cy) / fy, 1)``), already shifted by the crop.
- ``plane_normals`` are unit vectors in that same camera frame (OpenCV: x right,
  y down, z forward); a normal's sign is arbitrary. ``plane_masks`` are already
  intersected with ``valid_HW`` (the iBims evaluation does the same).
"""

from __future__ import annotations

import contextlib
import dataclasses
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io.matlab import MatReadError

from depthcore.errors import DataError

# What decoding libraries raise on a bad file (h5py, scipy.io, Pillow, numpy).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    EOFError,
    MatReadError,
    zlib.error,
)

Window = tuple[int, int, int, int]
"""A pixel window ``(top, bottom, left, right)``: rows top:bottom, cols left:right."""


@dataclasses.dataclass
class BenchmarkSample:
    """One evaluation frame: image, metric ground truth and the optional geometry annotations."""

    name: str
    rgb_HW3: np.ndarray  # noqa: N815 - uint8
    depth_HW: np.ndarray  # noqa: N815 - float32 planar metres, 0 where invalid
    valid_HW: np.ndarray  # noqa: N815 - bool: finite, in range, not masked out
    intrinsics_33: np.ndarray | None = None
    plane_masks: np.ndarray | None = None  # (P, H, W) bool
    plane_normals: np.ndarray | None = None  # (P, 3) float, unit, camera frame
    edges_HW: np.ndarray | None = None  # noqa: N815 - bool, annotated depth edges


@dataclasses.dataclass(frozen=True)
class BenchmarkItem:
    """A frame found by :meth:`BenchmarkReader.list_items`: its name, files and format key."""

    name: str
    files: tuple[Path, ...]
    key: object = None


@contextlib.contextmanager
def reading(path: str | Path, what: str = "") -> Iterator[None]:
    """Turn a decoding failure inside the block into a DataError naming ``path`` (or paths)."""
    try:
        yield
    except DataError:
        raise
    except _DECODE_ERRORS as exc:
        detail = f" {what}" if what else ""
        raise DataError(f"{path}: cannot read{detail}: {type(exc).__name__}: {exc}") from exc


def require_file(path: Path) -> Path:
    """Return ``path`` if it is a file, else fail naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit colour image as HxWx3 uint8."""
    with reading(path), Image.open(path) as im:
        if im.mode not in ("RGB", "RGBA", "L", "P"):
            raise DataError(f"{path}: expected an 8-bit colour image, got mode {im.mode}")
        return np.asarray(im.convert("RGB"))


def scaled_intrinsics(
    fx: float, fy: float, cx: float, cy: float, ref_hw: tuple[int, int], hw: tuple[int, int]
) -> np.ndarray:
    """The pinhole matrix of a camera calibrated at ``ref_hw`` for an image resized to ``hw``.

    Uses pixel-centre-preserving scaling, so a centred principal point stays centred.
    """
    sy, sx = hw[0] / ref_hw[0], hw[1] / ref_hw[1]
    return np.array(
        [
            [fx * sx, 0.0, (cx + 0.5) * sx - 0.5],
            [0.0, fy * sy, (cy + 0.5) * sy - 0.5],
            [0.0, 0.0, 1.0],
        ]
    )


class BenchmarkReader:
    """Base of the benchmark readers: a sized, indexable sequence of :class:`BenchmarkSample`.

    Subclasses set ``name``, ``min_depth``, ``max_depth`` and implement the two hooks;
    they may override :meth:`cut_window` (arrays are cut, the model sees less) and
    :meth:`eval_window` (arrays are kept, pixels outside are marked invalid).
    """

    name: str = ""
    min_depth: float = 0.0
    max_depth: float = float("inf")

    def __init__(
        self,
        root: str | Path,
        *,
        min_depth: float | None = None,
        max_depth: float | None = None,
        max_items: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: {self.name} benchmark folder not found")
        if min_depth is not None:
            self.min_depth = float(min_depth)
        if max_depth is not None:
            self.max_depth = float(max_depth)
        if not self.min_depth < self.max_depth:
            raise DataError(
                f"{self.root}: empty valid depth range ({self.min_depth}, {self.max_depth}]"
            )
        items = list(self.list_items())
        if not items:
            raise DataError(f"{self.root}: no {self.name} frames found")
        self.items: list[BenchmarkItem] = items[:max_items] if max_items is not None else items

    # ----- hooks -------------------------------------------------------------------------
    def list_items(self) -> Sequence[BenchmarkItem]:
        """Find the frames of the benchmark (cheap: no pixel data is decoded)."""
        raise NotImplementedError

    def load_item(self, item: BenchmarkItem) -> BenchmarkSample:
        """Decode one frame; ``valid_HW`` holds only the format's own validity (holes, masks)."""
        raise NotImplementedError

    def cut_window(self, height: int, width: int) -> Window | None:
        """The window the arrays are cut to, or None for the full frame."""
        return None

    def eval_window(self, height: int, width: int) -> Window | None:
        """The window outside which pixels are invalid (the frame is not cut), or None."""
        return None

    # ----- sequence protocol --------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[BenchmarkSample]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: int) -> BenchmarkSample:
        item = self.items[index]
        for path in item.files:
            require_file(path)
        where = ", ".join(str(p) for p in item.files)
        with reading(where, f"{self.name} frame {item.name}"):
            sample = self.load_item(item)
        self._validate(sample, where)
        return self._finish(sample)

    # ----- shared post-processing -----------------------------------------------------------
    def _validate(self, s: BenchmarkSample, where: str) -> None:
        """Refuse arrays of the wrong shape or type, naming the frame's files."""

        def bad(problem: str) -> DataError:
            return DataError(f"{where}: {self.name} frame {s.name}: {problem}")

        if s.rgb_HW3.ndim != 3 or s.rgb_HW3.shape[2] != 3 or s.rgb_HW3.dtype != np.uint8:
            raise bad(f"rgb must be HxWx3 uint8, got {s.rgb_HW3.shape} {s.rgb_HW3.dtype}")
        hw = s.rgb_HW3.shape[:2]
        if s.depth_HW.shape != hw:
            raise bad(f"depth shape {s.depth_HW.shape} does not match rgb {hw}")
        if not np.issubdtype(s.depth_HW.dtype, np.floating):
            raise bad(f"depth must be floating point, got {s.depth_HW.dtype}")
        if s.valid_HW.shape != hw:
            raise bad(f"valid mask shape {s.valid_HW.shape} does not match rgb {hw}")
        if s.edges_HW is not None and s.edges_HW.shape != hw:
            raise bad(f"edges shape {s.edges_HW.shape} does not match rgb {hw}")
        if s.intrinsics_33 is not None and s.intrinsics_33.shape != (3, 3):
            raise bad(f"intrinsics must be 3x3, got {s.intrinsics_33.shape}")
        if (s.plane_masks is None) != (s.plane_normals is None):
            raise bad("plane masks and plane normals must come together")
        if s.plane_masks is not None and s.plane_normals is not None:
            n_planes = s.plane_normals.shape[0]
            if s.plane_masks.shape != (n_planes, *hw) or s.plane_normals.shape != (n_planes, 3):
                raise bad(
                    f"plane masks {s.plane_masks.shape} / normals {s.plane_normals.shape} "
                    f"do not match (P,{hw[0]},{hw[1]}) / (P,3)"
                )

    def _finish(self, s: BenchmarkSample) -> BenchmarkSample:
        """Apply the valid range, the crop and the evaluation window; zero invalid depth."""
        height, width = s.depth_HW.shape
        depth_HW = s.depth_HW.astype(np.float32, copy=False)
        with np.errstate(invalid="ignore"):
            in_range_HW = np.isfinite(depth_HW) & (depth_HW > self.min_depth)
            in_range_HW &= depth_HW <= self.max_depth
        valid_HW = s.valid_HW.astype(bool) & in_range_HW
        window = self.eval_window(height, width)
        if window is not None:
            top, bottom, left, right = window
            inside_HW = np.zeros_like(valid_HW)
            inside_HW[top:bottom, left:right] = True
            valid_HW &= inside_HW
        depth_HW = np.where(valid_HW, depth_HW, np.float32(0.0)).astype(np.float32)
        planes = None
        if s.plane_masks is not None:
            planes = s.plane_masks.astype(bool) & valid_HW[None]
        out = BenchmarkSample(
            name=s.name,
            rgb_HW3=s.rgb_HW3,
            depth_HW=depth_HW,
            valid_HW=valid_HW,
            intrinsics_33=None if s.intrinsics_33 is None else s.intrinsics_33.astype(np.float64),
            plane_masks=planes,
            plane_normals=_unit_rows(s.plane_normals),
            edges_HW=None if s.edges_HW is None else s.edges_HW.astype(bool),
        )
        cut = self.cut_window(height, width)
        return out if cut is None else _cut(out, cut)


def _unit_rows(normals_P3: np.ndarray | None) -> np.ndarray | None:
    if normals_P3 is None:
        return None
    normals_P3 = normals_P3.astype(np.float64)
    norm_P1 = np.linalg.norm(normals_P3, axis=1, keepdims=True)
    return normals_P3 / np.where(norm_P1 > 0, norm_P1, 1.0)


def _cut(s: BenchmarkSample, window: Window) -> BenchmarkSample:
    """Cut every per-pixel array to ``window`` and move the principal point with it."""
    top, bottom, left, right = window
    rows, cols = slice(top, bottom), slice(left, right)
    intrinsics = None
    if s.intrinsics_33 is not None:
        intrinsics = s.intrinsics_33.copy()
        intrinsics[0, 2] -= left
        intrinsics[1, 2] -= top
    return BenchmarkSample(
        name=s.name,
        rgb_HW3=np.ascontiguousarray(s.rgb_HW3[rows, cols]),
        depth_HW=np.ascontiguousarray(s.depth_HW[rows, cols]),
        valid_HW=np.ascontiguousarray(s.valid_HW[rows, cols]),
        intrinsics_33=intrinsics,
        plane_masks=None if s.plane_masks is None else s.plane_masks[:, rows, cols].copy(),
        plane_normals=s.plane_normals,
        edges_HW=None if s.edges_HW is None else s.edges_HW[rows, cols].copy(),
    )
