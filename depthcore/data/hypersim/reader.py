"""Reading one Hypersim frame: HDR colour, distance, entity ids -> tone-mapped RGB and planar depth.

Hypersim stores the Euclidean *distance* to the camera centre, not the planar depth a
depth network predicts, and its colour is HDR radiance. Both conversions follow the
Hypersim authors' own code; the planar conversion uses the scene's ``M_cam_from_uv``
(not a hard-coded 886.81 px focal length) so the lens-shift scenes come out right.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from depthcore.data.transforms import nearest_indices, percentiles_of
from depthcore.errors import DataError

FRAME_RE = re.compile(r"^frame\.(\d{4})\.color\.hdf5$")
CAMERA_RE = re.compile(r"^scene_(cam_\d{2})_final_hdf5$")


@dataclass(frozen=True)
class FrameId:
    """One frame of the dataset; ``key`` is the id used in shards (``scene/cam_XX/IIII``)."""

    scene: str
    camera: str
    frame: int

    @property
    def key(self) -> str:
        return f"{self.scene}/{self.camera}/{self.frame:04d}"

    def color_path(self, in_dir: str | Path) -> Path:
        return Path(self.paths(in_dir)[0])

    def depth_path(self, in_dir: str | Path) -> Path:
        return Path(self.paths(in_dir)[1])

    def entity_path(self, in_dir: str | Path) -> Path:
        return Path(self.paths(in_dir)[2])

    def paths(self, in_dir: str | Path) -> tuple[str, str, str]:
        """Colour, distance and entity file paths as strings (no pathlib: read per frame)."""
        images = os.path.join(in_dir, self.scene, "images", f"scene_{self.camera}_")
        name = f"frame.{self.frame:04d}."
        return (
            f"{images}final_hdf5{os.sep}{name}color.hdf5",
            f"{images}geometry_hdf5{os.sep}{name}depth_meters.hdf5",
            f"{images}geometry_hdf5{os.sep}{name}render_entity_id.hdf5",
        )


def find_frames(in_dir: str | Path, scene: str) -> list[FrameId]:
    """Every frame of ``scene`` whose colour file is on disk, sorted by camera and frame."""
    images = Path(in_dir) / scene / "images"
    frames = []
    if not images.is_dir():
        return frames
    for cam_dir in images.iterdir():
        cam = CAMERA_RE.match(cam_dir.name)
        if cam is None or not cam_dir.is_dir():
            continue
        for f in cam_dir.iterdir():
            m = FRAME_RE.match(f.name)
            if m is not None:
                frames.append(FrameId(scene, cam.group(1), int(m.group(1))))
    return sorted(frames, key=lambda f: (f.camera, f.frame))


def read_dataset(path: str | Path, ndim: int, kind: str) -> np.ndarray:
    """Read the single ``dataset`` of a Hypersim HDF5 file, checking rank and dtype kind.

    ``kind`` is a numpy dtype kind string such as ``"f"`` or ``"iu"``. Any failure
    (missing, truncated or non-HDF5 file, missing dataset, wrong shape) is a
    :class:`DataError` naming the file. Reads through h5py's low-level API (file, object,
    read into a fresh array), with the file loaded in one read (HDF5's in-memory "core"
    driver; the file is little more than this dataset): three of these per frame are
    most of preprocessing's I/O, and the high-level File/Dataset wrappers and many small
    reads cost ~20% on top at small frames.
    """
    try:
        fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY, fapl=_whole_file_access())
        try:
            return _read_checked(fid, Path(path), ndim, kind)
        finally:
            fid.close()
    except DataError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # h5py's corrupt-file errors
        if not os.path.isfile(path):  # checked on failure only: one stat less per read
            raise DataError(f"{Path(path)}: file not found") from None
        raise DataError(f"{Path(path)}: unreadable or corrupt HDF5 file: {exc}") from exc


@functools.cache
def _whole_file_access() -> h5py.h5p.PropFAID:
    """File access: read the whole file into memory at open (core driver, nothing written)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fapl_core(backing_store=False)
    return fapl


def _read_checked(fid: h5py.h5f.FileID, path: Path, ndim: int, kind: str) -> np.ndarray:
    try:
        ds = h5py.h5o.open(fid, b"dataset")
    except KeyError:
        with h5py.File(path, "r") as f:
            names = sorted(f.keys())
        raise DataError(f"{path}: no dataset named 'dataset' (has {names})") from None
    try:
        if not isinstance(ds, h5py.h5d.DatasetID):
            raise DataError(f"{path}: 'dataset' is a group, not a dataset")
        shape, dtype = ds.shape, ds.dtype  # each access asks HDF5 again (shape: ~10 us)
        if len(shape) != ndim:
            raise DataError(f"{path}: expected {ndim}-D data, got shape {shape}")
        if dtype.kind not in kind:
            raise DataError(f"{path}: unexpected dtype {dtype} (want kind {kind!r})")
        out = np.empty(shape, dtype)
        if out.size:
            ds.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        return out
    finally:
        ds.close()


def read_color(path: str | Path) -> np.ndarray:
    """HDR colour ``hdr_HW3``: float16 as stored (Hypersim's dtype), other floats as float32.

    Kept in float16 so :func:`tone_map` can map the 65,536 possible values through a
    table instead of converting and raising every pixel to a power.
    """
    hdr_HW3 = read_dataset(path, 3, "f")
    if hdr_HW3.shape[2] != 3:
        raise DataError(f"{path}: expected H x W x 3 colour, got shape {hdr_HW3.shape}")
    return hdr_HW3 if hdr_HW3.dtype == np.float16 else hdr_HW3.astype(np.float32, copy=False)


def read_distance(path: str | Path) -> np.ndarray:
    """Euclidean distance ``distance_HW`` in metres (NaN where no surface).

    float16 as stored (Hypersim's dtype), other floats as float32: the planar conversion
    reads it in float64 anyway, and often only at the pixels kept.
    """
    distance_HW = read_dataset(path, 2, "f")
    return (
        distance_HW
        if distance_HW.dtype == np.float16
        else distance_HW.astype(np.float32, copy=False)
    )


def read_entity(path: str | Path) -> np.ndarray:
    """Render entity ids ``entity_HW`` (-1 where no surface): signed ints as stored, else int64."""
    entity_HW = read_dataset(path, 2, "iu")
    return entity_HW if entity_HW.dtype.kind == "i" else entity_HW.astype(np.int64)


_LUMA = (0.3, 0.59, 0.11)  # brightness weights of R, G, B


@functools.cache
def _float16_values() -> np.ndarray:
    """Every float16 bit pattern's value as float64, non-finite ones as 0 (65,536 entries)."""
    values_U = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    return np.nan_to_num(values_U.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)


@functools.cache
def _float16_luma_terms() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``0.3 * v``, ``0.59 * v``, ``0.11 * v`` for every float16 bit pattern (float64, read-only).

    The products a per-pixel float64 brightness would compute, computed once per value.
    """
    terms = tuple(weight * _float16_values() for weight in _LUMA)
    for table in terms:
        table.flags.writeable = False
    return terms  # type: ignore[return-value]


def _srgb8(scale: float, hdr: np.ndarray) -> np.ndarray:
    """uint8 of ``(scale * hdr) ** (1 / 2.2)`` clipped to [0, 1], truncated (float64 math)."""
    linear = np.maximum(scale * hdr, 0.0)
    # Truncation, not rounding, as in Marigold's Hypersim preprocessing.
    return (np.clip(linear ** (1.0 / 2.2), 0.0, 1.0) * 255.0).astype(np.uint8)


_POSITIVE = 0x7C00  # float16 bit patterns 0 .. 0x7BFF: +0 up to the largest finite value


def _srgb8_float16_table(scale: float) -> np.ndarray:
    """:func:`_srgb8` of every float16 bit pattern (65,536 uint8), found by its 255 steps.

    Over the positive finite patterns, which run in value order, the curve is a
    non-decreasing staircase (a power, then truncation); every other pattern (negative,
    NaN, inf) maps to 0. So it suffices to find where each level k starts: the
    inverted formula ((k / 255) ** 2.2 / scale) lands within a pattern or two of the
    step, and the formula itself, evaluated on the four patterns around it, places it
    exactly. ~1,000 evaluations instead of 65,536 (or one per pixel).
    """
    table_U = np.zeros(2**16, np.uint8)
    if not scale > 0:
        return table_U  # scale 0: everything black
    values_P = _float16_values()[:_POSITIVE]
    level_K1, step_K, window_4, levels_L = _level_constants()
    guess_K = np.searchsorted(values_P, step_K / scale)
    near_K4 = guess_K[:, None] + window_4
    np.minimum(np.maximum(near_K4, 0, out=near_K4), _POSITIVE - 1, out=near_K4)
    reached_K4 = _srgb8(scale, values_P[near_K4]) >= level_K1
    # The window holds the step when its last pattern reaches k and its first does not;
    # a window at the end of the range also settles "never" (top) or "from 0" (bottom).
    ends_ok_K = reached_K4[:, -1] | (near_K4[:, -1] == _POSITIVE - 1)
    starts_ok_K = ~reached_K4[:, 0] | (near_K4[:, 0] == 0)
    first_K = np.take_along_axis(near_K4, reached_K4.argmax(axis=1)[:, None], axis=1)[:, 0]
    start_K = np.where(reached_K4.any(axis=1), first_K, _POSITIVE)
    run_L = np.empty(256, np.int64)  # patterns at level 0, 1, ..., 255
    run_L[0] = start_K[0]
    np.subtract(start_K[1:], start_K[:-1], out=run_L[1:255])
    run_L[255] = _POSITIVE - start_K[-1]
    if not (ends_ok_K & starts_ok_K).all() or (run_L < 0).any():
        return _srgb8(scale, _float16_values())  # not seen; the direct table is exact
    table_U[:_POSITIVE] = np.repeat(levels_L, run_L)
    return table_U


@functools.cache
def _level_constants() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-call constants of :func:`_srgb8_float16_table`, made once (read-only): levels
    1..255 as a column, where each starts before the scale ((k / 255) ** 2.2), the
    four-pattern window offsets, and the 256 uint8 levels."""
    level_K = np.arange(1, 256)
    constants = (level_K[:, None], (level_K / 255.0) ** 2.2, np.arange(-2, 2))
    constants += (np.arange(256, dtype=np.uint8),)
    for array in constants:
        array.flags.writeable = False
    return constants


def _exposure(brightness_N: np.ndarray) -> float:
    """The scale that puts the 90th percentile of ``brightness_N`` (scratch) at 0.8 after gamma."""
    if brightness_N.size == 0:
        return 1.0
    p90 = percentiles_of(brightness_N, (90.0,))[0]
    return 0.0 if p90 < 1e-4 else 0.8**2.2 / p90


def tone_map(hdr_HW3: np.ndarray, valid_HW: np.ndarray) -> np.ndarray:
    """Tone-map HDR radiance to ``rgb_HW3`` uint8 as the Hypersim authors do.

    The exposure puts the 90th brightness percentile of the valid (surface) pixels
    at 0.8 after gamma 2.2, so frames of very different radiance look alike.
    Non-finite radiance counts as 0. Float16 input (Hypersim's files) takes a faster
    route to the same numbers: the brightness terms and the tone curve are looked up
    per float16 bit pattern (:func:`_srgb8_float16_table`).
    """
    if hdr_HW3.dtype == np.float16:
        bits_HW3 = hdr_HW3.view(np.uint16)
        terms = _float16_luma_terms()
        b_HW = np.take(terms[0], bits_HW3[..., 0])
        b_HW += np.take(terms[1], bits_HW3[..., 1])
        b_HW += np.take(terms[2], bits_HW3[..., 2])
        scale = _exposure(b_HW.ravel() if valid_HW.all() else b_HW[valid_HW])
        return np.take(_srgb8_float16_table(scale), bits_HW3)
    hdr_HW3 = np.nan_to_num(hdr_HW3.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    r_N, g_N, b_N = hdr_HW3[valid_HW].T
    scale = _exposure(_LUMA[0] * r_N + _LUMA[1] * g_N + _LUMA[2] * b_N)
    return _srgb8(scale, hdr_HW3)


def ray_directions(M_cam_from_uv: np.ndarray, height: int, width: int) -> np.ndarray:
    """Camera-space ray through each pixel centre, ``rays_HW3`` (not normalised).

    u runs left to right and v top (+1) to bottom (-1) over pixel centres, as in the
    Hypersim authors' ray-casting notebook.
    """
    M = np.asarray(M_cam_from_uv, dtype=np.float64)
    if M.shape != (3, 3):
        raise ValueError(f"M_cam_from_uv must be 3x3, got {M.shape}")
    u_W = np.linspace(-1.0 + 1.0 / width, 1.0 - 1.0 / width, width)
    v_H = np.linspace(1.0 - 1.0 / height, -1.0 + 1.0 / height, height)
    u_HW, v_HW = np.meshgrid(u_W, v_H)
    uv1_HW3 = np.stack([u_HW, v_HW, np.ones_like(u_HW)], axis=-1)
    return uv1_HW3 @ M.T


def distance_to_planar(
    distance_HW: np.ndarray,
    M_cam_from_uv: np.ndarray,
    pixels: tuple[Any, Any] = (slice(None), slice(None)),
) -> np.ndarray:
    """Planar depth (along the optical axis) from Euclidean distance, as float32.

    planar = distance * |ray_z| / ||ray|| with the scene's rays, which reduces to the
    familiar f / sqrt(x^2 + y^2 + f^2) factor for the default centred camera. The
    factor depends only on the camera and the size, so it is computed once per scene.
    ``pixels`` (an index pair such as ``np.ix_(rows, cols)``) converts only those pixels.
    """
    H, W = distance_HW.shape
    M = np.ascontiguousarray(M_cam_from_uv, dtype=np.float64)
    if M.shape != (3, 3):
        raise ValueError(f"M_cam_from_uv must be 3x3, got {M.shape}")
    cos_hw = _planar_factor(M.tobytes(), H, W)[pixels]
    distance_hw = distance_HW[pixels]
    # float64 product rounded to float32, in one pass (no float64 copy of the distance)
    planar_hw = np.empty(cos_hw.shape, np.float32)
    return np.multiply(distance_hw, cos_hw, out=planar_hw, dtype=np.float64, casting="same_kind")


@functools.lru_cache(maxsize=8)
def _planar_factor(M_bytes: bytes, height: int, width: int) -> np.ndarray:
    """|ray_z| / ||ray|| per pixel (read-only) for a camera given as 3x3 float64 bytes."""
    rays_HW3 = ray_directions(np.frombuffer(M_bytes).reshape(3, 3), height, width)
    cos_HW = np.abs(rays_HW3[..., 2]) / np.linalg.norm(rays_HW3, axis=-1)
    cos_HW.flags.writeable = False
    return cos_HW


@functools.lru_cache(maxsize=8)
def _nearest_pixels(height: int, width: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.ix_`` of the rows and columns a nearest resize to (h, w) keeps (read-only)."""
    rows_h1, cols_1w = np.ix_(nearest_indices(height, h), nearest_indices(width, w))
    rows_h1.flags.writeable = False
    cols_1w.flags.writeable = False
    return rows_h1, cols_1w


@dataclass(frozen=True)
class HypersimFrame:
    """One frame ready for preprocessing, at the source resolution."""

    rgb_HW3: np.ndarray  # noqa: N815 - uint8, tone-mapped
    depth_HW: np.ndarray  # noqa: N815 - float32 planar metres, NaN where invalid
    valid_HW: np.ndarray  # noqa: N815 - bool: a surface with finite positive depth


def load_frame(
    in_dir: str | Path,
    frame: FrameId,
    M_cam_from_uv: np.ndarray,
    depth_size: tuple[int, int] | None = None,
) -> HypersimFrame:
    """Read colour, distance and entity ids of ``frame`` and convert them.

    With ``depth_size`` = (H, W), depth and validity come back already resized to it by
    nearest sampling (the pixels :func:`~depthcore.data.transforms.resize_depth`'s
    ``nearest`` would pick), so the planar conversion only runs on the pixels kept; the
    colour stays at the source size (its tone map and area resize need every pixel).
    """
    color_path, depth_path, entity_path = frame.paths(in_dir)
    hdr_HW3 = read_color(color_path)
    distance_HW = read_distance(depth_path)
    entity_HW = read_entity(entity_path)
    if not hdr_HW3.shape[:2] == distance_HW.shape == entity_HW.shape:
        raise DataError(
            f"{frame.color_path(in_dir)}: colour {hdr_HW3.shape[:2]}, depth "
            f"{distance_HW.shape} and entity {entity_HW.shape} sizes differ for {frame.key}"
        )
    surface_HW = entity_HW != -1
    rgb_HW3 = tone_map(hdr_HW3, surface_HW)
    rows: Any = slice(None)
    cols: Any = slice(None)
    if depth_size is not None:
        rows, cols = _nearest_pixels(*distance_HW.shape, *depth_size)
    depth_hw = distance_to_planar(distance_HW, M_cam_from_uv, (rows, cols))
    surface_hw = surface_HW[rows, cols]
    with np.errstate(invalid="ignore"):
        valid_hw = surface_hw & np.isfinite(depth_hw) & (depth_hw > 0)
    depth_hw[~valid_hw] = np.nan  # a fresh array from distance_to_planar
    return HypersimFrame(rgb_HW3=rgb_HW3, depth_HW=depth_hw, valid_HW=valid_hw)
