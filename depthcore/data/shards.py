"""HDF5 shards of preprocessed frames: writing, metadata, and the torch Dataset over them.

Layout of one shard (``<root>/<split>/shard_00000.h5``): datasets ``rgb`` (N,H,W,3)
uint8, ``depth`` (N,H,W) float32 planar metres (infilled), ``mask`` (N,H,W) bool
(real pixels), ``target`` (N,H,W) float32 in [-1, 1], ``key`` (N,) utf-8 str; attrs
``space``, ``height``, ``width``. Chunks are one frame, so random access reads one
frame and nothing more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deflate
import h5py
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from depthcore.errors import DataError
from depthcore.io import close_or_keep

KEY_DTYPE = h5py.string_dtype("utf-8")
ARRAYS = ("rgb", "depth", "mask", "target")
DTYPES = {"rgb": np.uint8, "depth": np.float32, "mask": np.bool_, "target": np.float32}
# Compressed shards: byte shuffle then deflate (docs/performance.md: smaller and faster
# to write than plain gzip level 4, the h5py default used before). The chunks are
# compressed here with libdeflate and written as they are: the HDF5 shuffle + gzip
# filters any reader decodes. Level 2, measured on preprocessed frames: 2 % smaller
# shards than zlib level 1 (the level before) at 60 % of its CPU.
GZIP_LEVEL = 2
BLOCK_BYTES = 32 * 2**20  # frames written per h5py call: up to this many bytes


def shard_name(number: int) -> str:
    return f"shard_{number:05d}.h5"


@dataclass
class FrameArrays:
    """One preprocessed frame as stored in a shard."""

    rgb_HW3: np.ndarray  # noqa: N815
    depth_HW: np.ndarray  # noqa: N815
    mask_HW: np.ndarray  # noqa: N815
    target_HW: np.ndarray  # noqa: N815
    key: str


class ShardWriter:
    """Appends frames to ``split_dir/shard_NNNNN.h5``, starting a new shard every ``shard_size``.

    Frames are buffered and written in blocks of up to ``BLOCK_BYTES`` (one write per
    dataset per block: per-frame h5py calls cost more than the frames at small sizes),
    so memory stays at one block whatever the shard size. Use as a context manager:
    leaving it normally writes the last block and closes the shard; leaving it with an
    exception drops the unwritten block (the caller discards the output anyway).
    """

    def __init__(
        self,
        split_dir: str | Path,
        *,
        shard_size: int,
        space: str,
        height: int,
        width: int,
        compression: str | None = "gzip",
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.split_dir = Path(split_dir)
        self.shard_size = shard_size
        self.attrs = {"space": space, "height": height, "width": width}
        self.compression = compression
        frame_bytes = height * width * (3 + 4 + 1 + 4)  # rgb, depth, mask, target
        self.block_frames = max(1, min(shard_size, BLOCK_BYTES // frame_bytes))
        self._layouts = _layouts(height, width, compression)
        self._file: h5py.File | None = None
        self._number = -1
        self._count = 0  # frames in the current shard, written or pending
        self._pending: list[FrameArrays] = []
        self._datasets: dict[str, h5py.h5d.DatasetID] = {}

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            self._pending.clear()
        self.close()

    def close(self) -> None:
        """Write the pending block and close the current shard.

        The shard is closed even when the write fails (full disk, file size limit):
        an HDF5 file left to the garbage collector after a failed write makes h5py
        print "Exception ignored" tracebacks and can crash the process.
        """
        try:
            self.flush()
        finally:
            f, self._file = self._file, None
            if f is not None:
                handles, self._datasets = list(self._datasets.values()), {}
                close_or_keep(f, *handles)

    def _open_next(self) -> None:
        self.close()
        self._number += 1
        self._count = 0
        self.split_dir.mkdir(parents=True, exist_ok=True)
        f = h5py.File(self.split_dir / shard_name(self._number), "w")
        self._file = f
        # Held for the shard's life: a dataset finalised after a failed write crashes h5py.
        # Low-level creation from the writer's prepared property lists: the datasets
        # h5py's create_dataset makes, at a third of its cost per shard.
        for name, (tid, dcpl, shape) in self._layouts.items():
            space = h5py.h5s.create_simple((0, *shape), (h5py.h5s.UNLIMITED, *shape))
            self._datasets[name] = h5py.h5d.create(f.id, name.encode(), tid, space, dcpl=dcpl)
        f.attrs.update(self.attrs)

    def add(self, frame: FrameArrays) -> tuple[str, int]:
        """Queue one frame; return (shard file name, index within it)."""
        H, W = self.attrs["height"], self.attrs["width"]
        if frame.rgb_HW3.shape != (H, W, 3) or frame.depth_HW.shape != (H, W):
            raise ValueError(
                f"{frame.key}: frame of shape {frame.rgb_HW3.shape} does not fit shards of {H}x{W}"
            )
        if self._file is None or self._count >= self.shard_size:
            self._open_next()
        self._pending.append(frame)
        self._count += 1
        if len(self._pending) >= self.block_frames:
            self.flush()
        return shard_name(self._number), self._count - 1

    def flush(self) -> None:
        """Write the pending frames to the current shard."""
        if not self._pending:
            return
        assert self._file is not None
        frames, self._pending = self._pending, []
        stop = self._count
        start = stop - len(frames)
        values = {
            "rgb": np.stack([f.rgb_HW3 for f in frames]),
            "depth": np.stack([f.depth_HW for f in frames]),
            "mask": np.stack([f.mask_HW for f in frames]),
            "target": np.stack([f.target_HW for f in frames]),
            "key": np.array([f.key for f in frames], dtype=object),
        }
        for name, value in values.items():  # low-level: one extend and one write each
            dataset = self._datasets[name]
            dataset.set_extent((stop, *value.shape[1:]))
            if name == "key":  # str objects to variable-length strings: h5py's conversion
                h5py.Dataset(dataset)[start:stop] = value
                continue
            if self.compression == "gzip":  # one chunk per frame, filtered here
                origin = (0,) * (value.ndim - 1)
                for i, frame_array in enumerate(value):
                    chunk = encode_chunk(frame_array, GZIP_LEVEL)
                    dataset.write_direct_chunk((start + i, *origin), chunk)
                continue
            file_space = dataset.get_space()
            file_space.select_hyperslab((start,) + (0,) * (value.ndim - 1), value.shape)
            dataset.write(h5py.h5s.create_simple(value.shape), file_space, value)


def encode_chunk(array: np.ndarray, level: int) -> bytes:
    """``array`` as HDF5's shuffle then deflate filters store it (the layout's filters).

    Shuffle puts byte 0 of every element first, then byte 1, ...; it leaves 1-byte
    types alone. Deflate's chunk is a zlib stream, which libdeflate writes as zlib does.
    """
    raw = np.ascontiguousarray(array).view(np.uint8)
    if array.itemsize > 1:
        raw = raw.reshape(-1, array.itemsize).T
    return deflate.zlib_compress(raw.tobytes(), level)


def _layouts(
    height: int, width: int, compression: str | None
) -> dict[str, tuple[h5py.h5t.TypeID, h5py.h5p.PropDCID, tuple[int, ...]]]:
    """Each shard dataset's HDF5 type, creation properties and frame shape.

    The properties ``create_dataset(chunks=(1, *shape), maxshape=(None, *shape),
    compression=..., shuffle=..., compression_opts=GZIP_LEVEL)`` sets (one-frame chunks,
    byte shuffle then gzip, no timestamps), built once per writer instead of per shard;
    ``key`` has 1024-entry chunks and no filters.
    """
    if compression not in (None, "gzip"):
        raise ValueError(f"compression must be 'gzip' or None, got {compression!r}")
    frame = (height, width)
    shapes = {"rgb": (*frame, 3), "depth": frame, "mask": frame, "target": frame, "key": ()}
    layouts = {}
    for name, shape in shapes.items():
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1, *shape) if shape else (1024,))
        if shape and compression == "gzip":
            dcpl.set_shuffle()
            dcpl.set_deflate(GZIP_LEVEL)
        dcpl.set_obj_track_times(False)
        dtype = np.dtype(DTYPES[name]) if shape else KEY_DTYPE
        layouts[name] = (h5py.h5t.py_create(dtype, logical=True), dcpl, shape)
    return layouts


def _item(
    rgb_HW3: np.ndarray, depth_HW: np.ndarray, mask_HW: np.ndarray, target_HW: np.ndarray, key: str
) -> dict[str, Any]:
    """A :class:`ShardDataset` item from one frame's arrays (channels first for the RGB)."""
    return {
        "rgb_3HW": torch.from_numpy(np.ascontiguousarray(rgb_HW3.transpose(2, 0, 1))),
        "depth_HW": torch.from_numpy(depth_HW),
        "mask_HW": torch.from_numpy(mask_HW),
        "target_HW": torch.from_numpy(target_HW),
        "key": key,
    }


def read_frame(path: str | Path, index: int) -> FrameArrays:
    """Read frame ``index`` of one shard file."""
    with h5py.File(path, "r") as f:
        return FrameArrays(
            rgb_HW3=f["rgb"][index],
            depth_HW=f["depth"][index],
            mask_HW=f["mask"][index],
            target_HW=f["target"][index],
            key=f["key"].asstr()[index],
        )


def shard_files(root: str | Path, split: str) -> list[Path]:
    """The shard files of ``split`` in order."""
    return sorted((Path(root) / split).glob("shard_*.h5"))


def shard_metadata(root: str | Path, splits: tuple[str, ...]) -> pd.DataFrame:
    """One row per shard: frame counts, attrs, and each array's shape and dtype.

    Only metadata and the small ``key`` arrays are read, so this is cheap even for
    the full dataset; the validation gate checks these rows against ``stats.csv``.
    """
    rows: list[dict[str, Any]] = []
    for split in splits:
        for path in shard_files(root, split):
            try:
                with h5py.File(path, "r") as f:
                    row: dict[str, Any] = {
                        "split": split,
                        "shard": f"{split}/{path.name}",
                        "space": str(f.attrs.get("space", "")),
                        "height": int(f.attrs.get("height", -1)),
                        "width": int(f.attrs.get("width", -1)),
                        "n_frames": int(f["key"].shape[0]) if "key" in f else -1,
                        "keys": list(f["key"].asstr()[()]) if "key" in f else [],
                    }
                    for name in ARRAYS:
                        ds = f.get(name)
                        row[f"{name}_shape"] = tuple(ds.shape) if ds is not None else ()
                        row[f"{name}_dtype"] = str(ds.dtype) if ds is not None else ""
            except OSError as exc:
                raise DataError(f"{path}: unreadable shard: {exc}") from exc
            rows.append(row)
    return pd.DataFrame(rows)


class ShardDataset(Dataset):
    """Frames of one split as dicts: ``rgb_3HW`` uint8, ``depth_HW``, ``mask_HW``,
    ``target_HW`` tensors and the ``key`` string.

    Files are opened lazily and per process, so the dataset can be used by
    DataLoader workers (an open h5py handle must not cross a fork).
    """

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        if not (self.root / split).is_dir():
            raise DataError(f"{self.root / split}: no such split folder in processed data")
        self.files = shard_files(root, split)
        self.space: str | None = None
        counts = []
        for path in self.files:
            try:
                with h5py.File(path, "r") as f:
                    counts.append(int(f["key"].shape[0]))
                    self.space = str(f.attrs["space"])
            except (OSError, KeyError) as exc:
                raise DataError(f"{path}: unreadable shard: {exc}") from exc
        self._offsets = np.cumsum([0, *counts])
        self._handles: dict[Path, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _handle(self, path: Path) -> h5py.File:
        if self._pid != os.getpid():
            self._handles = {}
            self._pid = os.getpid()
        if path not in self._handles:
            self._handles[path] = h5py.File(path, "r")
        return self._handles[path]

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, i = self._locate(index)
        f = self._handle(self.files[shard])
        return _item(f["rgb"][i], f["depth"][i], f["mask"][i], f["target"][i], f["key"].asstr()[i])

    def _locate(self, index: int) -> tuple[int, int]:
        """(shard, index within it) of frame ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        shard = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return shard, index - int(self._offsets[shard])

    def frames(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The items ``[self[i] for i in indices]``, each run of consecutive frames of one
        shard read with one slice per array: five h5py reads per frame (~2.7 ms a frame on
        a 2-core CPU, ~4.7 s of the features stage's ~19 s). Every item owns its arrays."""
        items: list[dict[str, Any]] = []
        for shard, first, stop in self._runs(indices):
            f = self._handle(self.files[shard])
            rgb, depth = f["rgb"][first:stop], f["depth"][first:stop]
            mask, target = f["mask"][first:stop], f["target"][first:stop]
            keys = f["key"].asstr()[first:stop]
            items += [
                _item(rgb[k], depth[k].copy(), mask[k].copy(), target[k].copy(), str(keys[k]))
                for k in range(stop - first)
            ]
        return items

    def _runs(self, indices: Sequence[int]) -> Iterator[tuple[int, int, int]]:
        """(shard, first, stop) per run of consecutive ``indices`` within one shard, in order."""
        run: list[int] | None = None  # [shard, first, stop]
        for index in indices:
            shard, i = self._locate(index)
            if run is not None and run[0] == shard and run[2] == i:
                run[2] += 1
                continue
            if run is not None:
                yield run[0], run[1], run[2]
            run = [shard, i, i + 1]
        if run is not None:
            yield run[0], run[1], run[2]

    def close(self) -> None:
        """Close the shard files this process opened (they reopen on the next access)."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state
