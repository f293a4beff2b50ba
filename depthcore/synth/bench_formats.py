"""Writers of the four benchmarks' on-disk formats, from plain arrays.

They exist so that generated benchmark sets are byte-for-byte the kind of file
the real datasets ship (MATLAB v7.3 with its userblock header, MATLAB v5
structs, 8/16-bit PNG, JPEG, raw float32), and the readers in
:mod:`depthcore.data` never take a generated-data shortcut. Every file is
written atomically. The rendering that produces the arrays lives in
:mod:`depthcore.synth.benchmarks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

from depthcore.data.benchmarks.eth3d import IMAGE_DIR, depth_path_for
from depthcore.data.benchmarks.ibims import IMAGE_LIST, PLANE_TYPES
from depthcore.data.benchmarks.nyu import NYU_FILE, SPLITS_FILE
from depthcore.data.benchmarks.tum import DEPTH_SCALE
from depthcore.io import atomic_path, write_text_atomic

MAT73_USERBLOCK = 512
# A fixed date keeps generated files byte-identical across runs (DVC caches by hash).
MAT73_HEADER_TEXT = (
    "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 "
    "HDF5 schema 1.00 ."
)
MAT5_HEADER_TEXT = "MATLAB 5.0 MAT-file, Platform: posix, Created on: Thu Jan  1 00:00:00 1970"
_MATLAB_CLASS = {
    np.dtype(np.uint8): "uint8",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.float32): "single",
    np.dtype(np.float64): "double",
}


def _mat73_header() -> bytes:
    """The 128-byte MAT-file header: text, subsystem offset, version 0x0200, endian 'IM'."""
    text = MAT73_HEADER_TEXT.encode("ascii").ljust(116, b" ")
    return text + b"\x00" * 8 + (0x0200).to_bytes(2, "little") + b"IM"


def write_mat73(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` (in MATLAB's index order, e.g. H x W x 3 x N) as MATLAB v7.3 does.

    MATLAB is column-major, so HDF5 sees every array with its dimensions reversed
    (``images`` 480x640x3xN becomes (N, 3, 640, 480)). Each dataset carries the
    ``MATLAB_class`` attribute, and the file starts with a 512-byte userblock whose
    first 128 bytes are the MAT-file header.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=MAT73_USERBLOCK, track_order=True) as f:
            for key, array in arrays.items():
                hdf5_array = np.ascontiguousarray(np.asarray(array).transpose())
                ds = f.create_dataset(key, data=hdf5_array, compression="gzip", track_times=False)
                ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[hdf5_array.dtype])
        with open(tmp, "r+b") as fh:
            fh.write(_mat73_header())


def write_mat5(path: Path, variables: Mapping[str, object]) -> None:
    """Write a MATLAB v5 file (a dict value becomes a 1x1 struct, as iBims-1 stores ``data``).

    scipy stamps the current time into the 116-byte header text; it is replaced by
    a fixed one so that a seeded set is byte-identical on every run.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            scipy.io.savemat(fh, dict(variables), do_compression=True, oned_as="column")
        with open(tmp, "r+b") as fh:
            fh.write(MAT5_HEADER_TEXT.encode("ascii").ljust(116, b" "))


def write_png(path: Path, array: np.ndarray) -> None:
    """An 8-bit RGB (H x W x 3 uint8) or 16-bit greyscale (H x W uint16) PNG."""
    if array.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{path}: PNG writer takes uint8 or uint16, got {array.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def write_jpeg(path: Path, rgb_HW3: np.ndarray, quality: int = 95) -> None:
    """A baseline JPEG (whatever the file name says)."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb_HW3)).save(tmp, format="JPEG", quality=quality)


def write_raw_float32(path: Path, depth_HW: np.ndarray) -> None:
    """Raw little-endian float32, row-major, no header (ETH3D's ground-truth depth)."""
    with atomic_path(path) as tmp:
        np.ascontiguousarray(depth_HW, dtype="<f4").tofile(tmp)


# ----- whole sets -------------------------------------------------------------------------------
def write_nyu_set(
    out_dir: Path,
    rgb_NHW3: np.ndarray,
    depth_NHW: np.ndarray,
    raw_depth_NHW: np.ndarray,
    test_ndxs: Sequence[int],
) -> None:
    """``nyu_depth_v2_labeled.mat`` + ``splits.mat``; ``test_ndxs`` are 1-based frame numbers."""
    n_frames = rgb_NHW3.shape[0]
    test = np.asarray(sorted(test_ndxs), np.float64)
    train = np.asarray([k for k in range(1, n_frames + 1) if k not in set(test_ndxs)], np.float64)
    write_mat73(
        out_dir / NYU_FILE,
        {
            "images": rgb_NHW3.transpose(1, 2, 3, 0),  # MATLAB: H x W x 3 x N
            "depths": depth_NHW.astype(np.float32).transpose(1, 2, 0),  # H x W x N
            "rawDepths": raw_depth_NHW.astype(np.float32).transpose(1, 2, 0),
        },
    )
    write_mat5(out_dir / SPLITS_FILE, {"testNdxs": test[:, None], "trainNdxs": train[:, None]})


def ibims_calib(intrinsics_33: np.ndarray) -> np.ndarray:
    """iBims' ``calib``: MATLAB's transposed, 1-based K (cx at [2,0], cy at [2,1])."""
    calib = np.asarray(intrinsics_33, np.float64).T.copy()
    calib[2, 0] += 1.0
    calib[2, 1] += 1.0
    return calib


def write_ibims_frame(
    out_dir: Path,
    name: str,
    fields: Mapping[str, np.ndarray],
) -> None:
    """One ``<name>.mat`` with struct ``data`` (fields as iBims-1 names them)."""
    missing = {"rgb", "depth", "edges", "calib", "mask_invalid", "mask_transp"} - set(fields)
    for kind in PLANE_TYPES:
        missing |= {f"mask_{kind}", f"mask_{kind}_paras"} - set(fields)
    if missing:
        raise KeyError(f"{out_dir / name}.mat: missing iBims field(s) {sorted(missing)}")
    write_mat5(out_dir / f"{name}.mat", {"data": dict(fields)})


def write_ibims_list(out_dir: Path, names: Sequence[str]) -> None:
    write_text_atomic(out_dir / IMAGE_LIST, "".join(f"{n}\n" for n in names))


def write_tum_sequence(
    seq_dir: Path,
    rgb_frames: Sequence[tuple[float, np.ndarray]],
    depth_frames: Sequence[tuple[float, np.ndarray]],
) -> None:
    """``rgb.txt``/``depth.txt`` and their PNGs; depth in metres becomes uint16 at 5000 / m."""
    for kind, frames in (("rgb", rgb_frames), ("depth", depth_frames)):
        lines = [
            f"# {'color' if kind == 'rgb' else 'depth'} images",
            f"# file: '{seq_dir.name}.bag'",
            "# timestamp filename",
        ]
        for stamp, array in frames:
            rel = f"{kind}/{stamp:.6f}.png"
            if kind == "depth":  # no measurement (NaN, inf, beyond 13.1 m) is 0
                units_HW = np.nan_to_num(np.round(array * DEPTH_SCALE), nan=0.0, posinf=0.0)
                array = np.where(units_HW > 65535, 0, np.maximum(units_HW, 0)).astype(np.uint16)
            write_png(seq_dir / rel, array)
            lines.append(f"{stamp:.6f} {rel}")
        write_text_atomic(seq_dir / f"{kind}.txt", "\n".join(lines) + "\n")


def write_eth3d_frame(
    root: Path, scene: str, image_name: str, rgb_HW3: np.ndarray, depth_HW: np.ndarray
) -> None:
    """One DSLR image (JPEG) and its ground truth (raw float32, inf = no measurement)."""
    write_jpeg(root / scene / IMAGE_DIR / image_name, rgb_HW3)
    write_raw_float32(depth_path_for(root, scene, image_name), depth_HW)
