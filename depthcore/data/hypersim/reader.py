"""Reading one Hypersim frame: HDR colour, distance, entity ids -> tone-mapped RGB and planar depth.

Hypersim stores the Euclidean *distance* to the camera centre, not the planar depth a
depth network predicts, and its colour is HDR radiance. Both conversions follow the
Hypersim authors' own code; the planar conversion uses the scene's ``M_cam_from_uv``
(not a hard-coded 886.81 px focal length) so the lens-shift scenes come out right.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

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
        folder = Path(in_dir) / self.scene / "images" / f"scene_{self.camera}_final_hdf5"
        return folder / f"frame.{self.frame:04d}.color.hdf5"

    def depth_path(self, in_dir: str | Path) -> Path:
        return self._geometry(in_dir) / f"frame.{self.frame:04d}.depth_meters.hdf5"

    def entity_path(self, in_dir: str | Path) -> Path:
        return self._geometry(in_dir) / f"frame.{self.frame:04d}.render_entity_id.hdf5"

    def _geometry(self, in_dir: str | Path) -> Path:
        return Path(in_dir) / self.scene / "images" / f"scene_{self.camera}_geometry_hdf5"


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
    :class:`DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            if "dataset" not in f:
                raise DataError(f"{path}: no dataset named 'dataset' (has {sorted(f.keys())})")
            ds = f["dataset"]
            if not isinstance(ds, h5py.Dataset):
                raise DataError(f"{path}: 'dataset' is a group, not a dataset")
            if ds.ndim != ndim:
                raise DataError(f"{path}: expected {ndim}-D data, got shape {ds.shape}")
            if ds.dtype.kind not in kind:
                raise DataError(f"{path}: unexpected dtype {ds.dtype} (want kind {kind!r})")
            return ds[()]
    except DataError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # h5py's corrupt-file errors
        raise DataError(f"{path}: unreadable or corrupt HDF5 file: {exc}") from exc


def read_color(path: str | Path) -> np.ndarray:
    """HDR colour ``hdr_HW3``: float16 as stored (Hypersim's dtype), other floats as float32.

    Kept in float16 so :func:`tone_map` can map the 65,536 possible values through a
    table instead of converting and raising every pixel to a power.
    """
    hdr_HW3 = read_dataset(path, 3, "f")
    if hdr_HW3.shape[2] != 3:
        raise DataError(f"{path}: expected H x W x 3 colour, got shape {hdr_HW3.shape}")
    return hdr_HW3 if hdr_HW3.dtype == np.float16 else hdr_HW3.astype(np.float32)


def read_distance(path: str | Path) -> np.ndarray:
    """Euclidean distance ``distance_HW`` in metres as float32 (NaN where no surface)."""
    return read_dataset(path, 2, "f").astype(np.float32)


def read_entity(path: str | Path) -> np.ndarray:
    """Render entity ids ``entity_HW`` as int32 (-1 where no surface)."""
    return read_dataset(path, 2, "iu").astype(np.int32)


@functools.cache
def _float16_values() -> np.ndarray:
    """Every float16 bit pattern's value as float64, non-finite ones as 0 (65,536 entries)."""
    values_U = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    return np.nan_to_num(values_U.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _srgb8(scale: float, hdr: np.ndarray) -> np.ndarray:
    """uint8 of ``(scale * hdr) ** (1 / 2.2)`` clipped to [0, 1], truncated (float64 math)."""
    linear = np.maximum(scale * hdr, 0.0)
    # Truncation, not rounding, as in Marigold's Hypersim preprocessing.
    return (np.clip(linear ** (1.0 / 2.2), 0.0, 1.0) * 255.0).astype(np.uint8)


def tone_map(hdr_HW3: np.ndarray, valid_HW: np.ndarray) -> np.ndarray:
    """Tone-map HDR radiance to ``rgb_HW3`` uint8 as the Hypersim authors do.

    The exposure puts the 90th brightness percentile of the valid (surface) pixels
    at 0.8 after gamma 2.2, so frames of very different radiance look alike.
    Non-finite radiance counts as 0. For float16 input (Hypersim's files) larger than
    the 65,536 possible values, the same float64 formula is evaluated once per value
    and looked up: identical to evaluating it per pixel, ~4x faster at 1024 x 768.
    """
    valid_N3 = np.nan_to_num(hdr_HW3[valid_HW].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    valid_b = 0.3 * valid_N3[:, 0] + 0.59 * valid_N3[:, 1] + 0.11 * valid_N3[:, 2]
    if valid_b.size == 0:
        scale = 1.0
    else:
        p90 = float(np.percentile(valid_b, 90))
        scale = 0.0 if p90 < 1e-4 else 0.8**2.2 / p90
    if hdr_HW3.dtype == np.float16 and hdr_HW3.size > 2**16:  # the table is the cheaper
        return np.take(_srgb8(scale, _float16_values()), hdr_HW3.view(np.uint16))
    return _srgb8(scale, np.nan_to_num(hdr_HW3.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0))


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


def distance_to_planar(distance_HW: np.ndarray, M_cam_from_uv: np.ndarray) -> np.ndarray:
    """Planar depth (along the optical axis) from Euclidean distance, as float32.

    planar = distance * |ray_z| / ||ray|| with the scene's rays, which reduces to the
    familiar f / sqrt(x^2 + y^2 + f^2) factor for the default centred camera. The
    factor depends only on the camera and the size, so it is computed once per scene.
    """
    H, W = distance_HW.shape
    M = np.ascontiguousarray(M_cam_from_uv, dtype=np.float64)
    if M.shape != (3, 3):
        raise ValueError(f"M_cam_from_uv must be 3x3, got {M.shape}")
    cos_HW = _planar_factor(M.tobytes(), H, W)
    return (distance_HW.astype(np.float64) * cos_HW).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _planar_factor(M_bytes: bytes, height: int, width: int) -> np.ndarray:
    """|ray_z| / ||ray|| per pixel (read-only) for a camera given as 3x3 float64 bytes."""
    rays_HW3 = ray_directions(np.frombuffer(M_bytes).reshape(3, 3), height, width)
    cos_HW = np.abs(rays_HW3[..., 2]) / np.linalg.norm(rays_HW3, axis=-1)
    cos_HW.flags.writeable = False
    return cos_HW


@dataclass(frozen=True)
class HypersimFrame:
    """One frame ready for preprocessing, at the source resolution."""

    rgb_HW3: np.ndarray  # noqa: N815 - uint8, tone-mapped
    depth_HW: np.ndarray  # noqa: N815 - float32 planar metres, NaN where invalid
    valid_HW: np.ndarray  # noqa: N815 - bool: a surface with finite positive depth


def load_frame(in_dir: str | Path, frame: FrameId, M_cam_from_uv: np.ndarray) -> HypersimFrame:
    """Read colour, distance and entity ids of ``frame`` and convert them."""
    hdr_HW3 = read_color(frame.color_path(in_dir))
    distance_HW = read_distance(frame.depth_path(in_dir))
    entity_HW = read_entity(frame.entity_path(in_dir))
    if not hdr_HW3.shape[:2] == distance_HW.shape == entity_HW.shape:
        raise DataError(
            f"{frame.color_path(in_dir)}: colour {hdr_HW3.shape[:2]}, depth "
            f"{distance_HW.shape} and entity {entity_HW.shape} sizes differ for {frame.key}"
        )
    surface_HW = entity_HW != -1
    rgb_HW3 = tone_map(hdr_HW3, surface_HW)
    depth_HW = distance_to_planar(distance_HW, M_cam_from_uv)
    with np.errstate(invalid="ignore"):
        valid_HW = surface_HW & np.isfinite(depth_HW) & (depth_HW > 0)
    depth_HW = np.where(valid_HW, depth_HW, np.nan).astype(np.float32)
    return HypersimFrame(rgb_HW3=rgb_HW3, depth_HW=depth_HW, valid_HW=valid_HW)
