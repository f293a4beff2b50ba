"""Your own data: a folder of RGB images and metric depth maps listed by a small manifest.

The ``folder`` format is the way in for data that is neither Hypersim nor one of the
four benchmarks. One folder serves both uses: an extra evaluation benchmark
(:class:`FolderReader`, ``evaluate.benchmarks.<name>: {format: folder, root: ...}``)
and training data (``preprocess.folders``), so a frame is decoded by the same code
whichever way it is used.

Layout: ``<root>/manifest.yaml`` (or ``manifest.csv``) lists the frames with paths
relative to ``<root>``::

    depth_scale: 0.001          # 16-bit PNG only: metres per unit (0 = no depth)
    min_depth: 0.1              # optional valid range, metres (default: > 0, finite)
    max_depth: 80.0
    frames:
      - {rgb: rgb/0000.png, depth: depth/0000.png, mask: mask/0000.png, split: test}
      - {rgb: rgb/0001.jpg, depth: depth/0001.npy}

The CSV form has the columns ``rgb,depth`` and optionally ``mask``, ``split`` and
``depth_scale`` (per row). Depth is planar metres along the optical axis, as
``.png`` (16-bit, times ``depth_scale``), ``.npy`` (float) or ``.pfm`` (float, the
Middlebury/Scene Flow format). Non-finite, zero and negative depths are invalid; an
optional mask (an 8/16-bit PNG or a ``.npy``) marks further pixels invalid where 0.
``split`` (``train``, ``val``, ``test``; default ``train``) decides where a frame
goes in training, and which frames an evaluation reads when the benchmark names one.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from depthcore.config import ConfigError, load_yaml
from depthcore.data.benchmarks.base import (
    BenchmarkItem,
    BenchmarkReader,
    BenchmarkSample,
    read_rgb,
    reading,
    require_file,
)
from depthcore.errors import DataError

MANIFESTS = ("manifest.yaml", "manifest.yml", "manifest.csv")
DEPTH_SUFFIXES = (".png", ".npy", ".pfm")
# Pillow's modes of a single-channel 16-bit PNG ("I" in older Pillow versions)
PNG16_MODES = ("I;16", "I;16B", "I;16L", "I")
SPLITS = ("train", "val", "test")
_COLUMNS = ("rgb", "depth", "mask", "split", "depth_scale")
_PFM_HEADER = re.compile(rb"^(PF|Pf)\s+(\d+)\s+(\d+)\s+(-?[0-9.eE+-]+)\s")


@dataclasses.dataclass(frozen=True)
class FolderFrame:
    """One manifest row, resolved: ``name`` is the rgb path relative to the root, less suffix."""

    name: str
    rgb: Path
    depth: Path
    mask: Path | None = None
    split: str = "train"
    depth_scale: float | None = None  # metres per unit of a 16-bit PNG


@dataclasses.dataclass(frozen=True)
class FolderManifest:
    """The frames of a folder and its declared valid depth range."""

    path: Path
    frames: tuple[FolderFrame, ...]
    min_depth: float | None = None
    max_depth: float | None = None


def find_manifest(root: str | Path) -> Path:
    """The manifest file of ``root``; fails naming the folder and the accepted names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder dataset not found")
    for name in MANIFESTS:
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root}: no manifest (one of {', '.join(MANIFESTS)})")


def _rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The frame rows and the folder-wide settings of a YAML or CSV manifest."""
    with reading(path, "manifest"):
        text = path.read_text()
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        return [{k: v for k, v in r.items() if v not in ("", None)} for r in rows], {}
    try:
        data = load_yaml(text, path)
    except ConfigError as exc:  # bad syntax or a key given twice
        raise DataError(str(exc)) from exc
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise DataError(f"{path}: expected a mapping with a 'frames' list")
    settings = {k: v for k, v in data.items() if k != "frames"}
    unknown = sorted(set(settings) - {"depth_scale", "min_depth", "max_depth"})
    if unknown:
        raise DataError(f"{path}: unknown key(s) {unknown} (allowed: depth_scale, min/max_depth)")
    return data["frames"], settings


def _number(value: Any, where: str, zero_ok: bool = False) -> float:
    if isinstance(value, bool):  # YAML's yes/no: not a number
        raise DataError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number, got {value!r}") from None
    if not np.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        kind = "a finite number >= 0" if zero_ok else "a finite positive number"
        raise DataError(f"{where}: must be {kind}, got {value!r}")
    return number


def _inside(root: Path, value: Any, where: str) -> Path:
    """``root / value``, refused when it leaves ``root`` (``..``, an absolute path, or a
    symlink pointing elsewhere): a manifest names files of its own folder only."""
    path = root / str(value)
    if not path.resolve().is_relative_to(root.resolve()):
        raise DataError(f"{where}: path {value!r} leaves the dataset folder {root}")
    return path


def read_manifest(root: str | Path) -> FolderManifest:
    """Parse and check the manifest of ``root`` (no pixels are read).

    Every problem names the manifest and the row: a missing column, an unknown
    split or depth format, a PNG depth without ``depth_scale``, a duplicate frame.
    """
    root = Path(root)
    path = find_manifest(root)
    rows, settings = _rows(path)
    if not rows:
        raise DataError(f"{path}: lists no frames")
    frames: list[FolderFrame] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = f"{path}: frame {i}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a mapping, got {row!r}")
        unknown = sorted(set(row) - set(_COLUMNS))
        missing = [k for k in ("rgb", "depth") if k not in row]
        if unknown or missing:
            raise DataError(f"{where}: unknown {unknown} / missing {missing} (columns {_COLUMNS})")
        depth = _inside(root, row["depth"], f"{where}: depth")
        if depth.suffix.lower() not in DEPTH_SUFFIXES:
            raise DataError(f"{where}: depth {depth.name} is not one of {DEPTH_SUFFIXES}")
        split = str(row.get("split", "train"))
        if split not in SPLITS:
            raise DataError(f"{where}: split {split!r} is not one of {SPLITS}")
        scale = row.get("depth_scale", settings.get("depth_scale"))
        if depth.suffix.lower() == ".png":
            if scale is None:
                raise DataError(f"{where}: 16-bit PNG depth needs a depth_scale (metres/unit)")
            scale = _number(scale, f"{where}: depth_scale")
        name = Path(str(row["rgb"])).with_suffix("").as_posix()
        if name in seen:
            raise DataError(f"{where}: frame {name} listed twice")
        seen.add(name)
        mask = _inside(root, row["mask"], f"{where}: mask") if "mask" in row else None
        rgb = _inside(root, row["rgb"], f"{where}: rgb")
        frames.append(FolderFrame(name, rgb, depth, mask, split, scale))
    lo, hi = settings.get("min_depth"), settings.get("max_depth")
    lo = None if lo is None else _number(lo, f"{path}: min_depth", zero_ok=True)
    hi = None if hi is None else _number(hi, f"{path}: max_depth")
    if lo is not None and hi is not None and lo >= hi:
        raise DataError(f"{path}: min_depth {lo:g} must be below max_depth {hi:g}")
    return FolderManifest(path, tuple(frames), lo, hi)


def read_pfm(path: str | Path) -> np.ndarray:
    """A single-channel PFM as float32 HxW, top row first (PFM stores bottom-up)."""
    path = Path(path)
    data = path.read_bytes()
    match = _PFM_HEADER.match(data)
    if match is None:
        raise DataError(f"{path}: not a PFM file (bad header)")
    if match.group(1) != b"Pf":
        raise DataError(f"{path}: colour PFM ('PF'); depth needs single-channel 'Pf'")
    width, height, scale = int(match.group(2)), int(match.group(3)), float(match.group(4))
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    body = data[match.end() :]
    if len(body) != width * height * 4:
        raise DataError(f"{path}: expected {width}x{height} floats, file has {len(body)} bytes")
    return np.flipud(np.frombuffer(body, dtype).reshape(height, width)).astype(np.float32)


def write_pfm(path: str | Path, depth_HW: np.ndarray) -> None:
    """Write float depth as a little-endian single-channel PFM (for generators and tests)."""
    depth_HW = np.asarray(depth_HW, dtype="<f4")
    height, width = depth_HW.shape
    header = f"Pf\n{width} {height}\n-1.0\n".encode()
    Path(path).write_bytes(header + np.flipud(depth_HW).tobytes())


def read_depth(path: Path, scale: float | None) -> np.ndarray:
    """Metric depth ``depth_HW`` float32 from a 16-bit PNG (times ``scale``), .npy or .pfm."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        with Image.open(path) as im:
            units_HW = np.asarray(im)
        if im.mode not in PNG16_MODES or units_HW.ndim != 2:
            raise DataError(
                f"{path}: depth PNG must be single-channel 16-bit, got mode {im.mode} "
                f"({'8-bit' if units_HW.dtype == np.uint8 else units_HW.dtype}): an 8-bit "
                "PNG holds 256 depth levels only; save depth as 16-bit PNG, .npy or .pfm"
            )
        if scale is None:
            raise DataError(f"{path}: PNG depth needs a depth_scale")
        depth_HW = units_HW.astype(np.float64) * scale
        return np.where(units_HW > 0, depth_HW, np.nan).astype(np.float32)
    depth_HW = np.load(path, allow_pickle=False) if suffix == ".npy" else read_pfm(path)
    if depth_HW.ndim != 2 or depth_HW.dtype.kind not in "fiu":
        raise DataError(f"{path}: depth must be a 2-D number array, got {depth_HW.shape}")
    return depth_HW.astype(np.float32)


def read_mask(path: Path) -> np.ndarray:
    """A validity mask as bool HxW: nonzero (PNG, any bit depth) or True (.npy) is valid."""
    if path.suffix.lower() == ".npy":
        mask = np.load(path, allow_pickle=False)
    else:
        with Image.open(path) as im:
            mask = np.asarray(im)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DataError(f"{path}: mask must be a 2-D image, got shape {mask.shape}")
    return mask != 0


def load_frame(frame: FolderFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rgb_HW3 uint8, depth_HW float32 NaN-free where valid, valid_HW)`` of one frame.

    Any decoding failure or size mismatch is a DataError naming the file.
    """
    rgb_HW3 = read_rgb(require_file(frame.rgb))
    with reading(require_file(frame.depth), "depth"):
        depth_HW = read_depth(frame.depth, frame.depth_scale)
    if depth_HW.shape != rgb_HW3.shape[:2]:
        raise DataError(f"{frame.depth}: depth {depth_HW.shape} != rgb {rgb_HW3.shape[:2]}")
    with np.errstate(invalid="ignore"):
        valid_HW = np.isfinite(depth_HW) & (depth_HW > 0)
    if frame.mask is not None:
        with reading(require_file(frame.mask), "mask"):
            mask_HW = read_mask(frame.mask)
        if mask_HW.shape != valid_HW.shape:
            raise DataError(f"{frame.mask}: mask {mask_HW.shape} != rgb {valid_HW.shape}")
        valid_HW &= mask_HW
    return rgb_HW3, np.where(valid_HW, depth_HW, np.float32(0.0)), valid_HW


class FolderReader(BenchmarkReader):
    """A folder dataset as a zero-shot benchmark: all frames, or those of one ``split``."""

    name = "folder"
    min_depth = 0.0

    def __init__(
        self,
        root: str | Path,
        *,
        split: str | None = None,
        min_depth: float | None = None,
        max_depth: float | None = None,
        max_items: int | None = None,
    ) -> None:
        if split is not None and split not in SPLITS:
            raise DataError(f"{root}: folder split {split!r} is not one of {SPLITS}")
        self.split = split
        self.manifest = read_manifest(root)
        super().__init__(
            root,
            min_depth=self.manifest.min_depth if min_depth is None else min_depth,
            max_depth=self.manifest.max_depth if max_depth is None else max_depth,
            max_items=max_items,
        )

    def list_items(self) -> Sequence[BenchmarkItem]:
        return [
            BenchmarkItem(f.name, (f.rgb, f.depth) + ((f.mask,) if f.mask else ()), f)
            for f in self.manifest.frames
            if self.split is None or f.split == self.split
        ]

    def load_item(self, item: BenchmarkItem) -> BenchmarkSample:
        assert isinstance(item.key, FolderFrame)
        rgb_HW3, depth_HW, valid_HW = load_frame(item.key)
        return BenchmarkSample(item.name, rgb_HW3, depth_HW, valid_HW)
