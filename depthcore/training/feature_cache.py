"""The frozen-feature cache: run the frozen VQ-VAE once per frame, train from HDF5.

Both objectives only ever need, per frame, the continuous depth features
``f_D = encode_features(depth3)`` and the DepthART image prefix
``image_prefix(vae, rgb)``. The tokenizer is frozen, so computing them once
and reading them back makes every training step skip the VQ-VAE encoder
(about a third of the FLOPs of a step at 256 px).

``features/<split>.h5`` holds, for N frames at model resolution S:
``key`` (N,) str, ``fD`` (N, Cvae, h, w) float32, ``prefix`` (N, L, Cvae) float32,
``rgb`` (N, 3, S, S) uint8, ``target`` (N, S, S) float32 in [-1, 1],
``depth`` (N, S, S) float32 metres (0 where invalid), ``mask`` (N, S, S) bool;
attrs ``space``, ``image_size``, ``patch_nums``, ``cvae``, ``tokenizer_sha256``, ``split``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from depthcore.config import frozen, param
from depthcore.data.shards import ShardDataset
from depthcore.data.transforms import resize_depth, resize_rgb
from depthcore.errors import DataError
from depthcore.io import atomic_path, file_sha256
from depthcore.models import image_prefix
from depthcore.models.checkpoint import load_vae
from depthcore.spaces import rgb_to_model, target_to_depth3
from depthcore.training.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    shutdown_distributed,
)

log = logging.getLogger(__name__)

CACHE_FIELDS: tuple[str, ...] = ("fD", "prefix", "rgb", "target", "depth", "mask")


@frozen
class FeaturesConfig:
    """``features`` section of params.yaml."""

    data_dir: str = "data/processed"  # preprocess output (HDF5 shards per split)
    tokenizer: str = "models/tokenizer/vae.safetensors"  # frozen VQ-VAE (save_vae file)
    out_dir: str = "features"  # writes <out_dir>/<split>.h5
    splits: tuple[str, ...] = ("train", "val")
    batch_size: int = param(32, gt=0)  # frames per VQ-VAE forward
    chunk_frames: int = param(64, gt=0)  # HDF5 chunk length along N
    max_frames: int = param(0, ge=0)  # per split; 0 = all
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = param(0, ge=0)  # torch intra-op threads; 0 = torch default


@dataclass(frozen=True)
class FrameBatch:
    """Frames at model resolution S, ready for the VQ-VAE."""

    keys: list[str]
    rgb: torch.Tensor  # (B, 3, S, S) uint8
    target: torch.Tensor  # (B, S, S) float32 in [-1, 1], hole-free (infilled depth)
    depth: torch.Tensor  # (B, S, S) float32 metres, 0 where invalid
    mask: torch.Tensor  # (B, S, S) bool, real depth pixels


def frame_at_size(item: dict[str, Any], size: int) -> tuple[np.ndarray, ...]:
    """One ShardDataset item at S x S: (rgb_3SS uint8, target_SS, depth_SS, mask_SS).

    RGB is area-resized; the target (smooth, hole-free) is area-resized too;
    depth and mask use nearest sampling so no depth is invented across edges
    or holes. Evaluation compares against this depth on this mask.
    """
    rgb_HW3 = np.moveaxis(np.asarray(item["rgb_3HW"]), 0, -1)
    rgb_SS3 = resize_rgb(rgb_HW3, (size, size))
    target_HW = torch.as_tensor(np.asarray(item["target_HW"], dtype=np.float32))
    if tuple(target_HW.shape) != (size, size):
        target_HW = F.interpolate(target_HW[None, None], size=(size, size), mode="area")[0, 0]
    depth_SS, mask_SS = resize_depth(
        np.asarray(item["depth_HW"]), np.asarray(item["mask_HW"], dtype=bool), (size, size)
    )
    depth_SS = np.where(mask_SS, depth_SS, 0.0).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(rgb_SS3, -1, 0)), target_HW.numpy(), depth_SS, mask_SS


def iter_frames(
    dataset: Any, size: int, batch_size: int, limit: int = 0, indices: Sequence[int] | None = None
) -> Iterator[FrameBatch]:
    """Batches of ``dataset`` (ShardDataset-like) frames at model resolution, in order."""
    order = list(range(len(dataset))) if indices is None else list(indices)
    if limit > 0:
        order = order[:limit]
    for start in range(0, len(order), batch_size):
        items = [dataset[i] for i in order[start : start + batch_size]]
        parts = [frame_at_size(it, size) for it in items]
        yield FrameBatch(
            keys=[str(it["key"]) for it in items],
            rgb=torch.from_numpy(np.stack([p[0] for p in parts])),
            target=torch.from_numpy(np.stack([p[1] for p in parts])),
            depth=torch.from_numpy(np.stack([p[2] for p in parts])),
            mask=torch.from_numpy(np.stack([p[3] for p in parts])),
        )


@torch.no_grad()
def encode_batch(vae: Any, batch: FrameBatch, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(fD_BChw, prefix_BLC) of one batch, on CPU."""
    fD_BChw = vae.encode_features(target_to_depth3(batch.target).to(device))
    prefix_BLC = image_prefix(vae, rgb_to_model(batch.rgb).to(device))
    return fD_BChw.float().cpu(), prefix_BLC.float().cpu()


def rank_slice(n: int, rank: int, world_size: int) -> range:
    """The contiguous block of frames ``rank`` encodes: blocks in rank order cover 0..n-1."""
    return range(rank * n // world_size, (rank + 1) * n // world_size)


def _write_cache(
    vae: Any,
    dataset: Any,
    path: Path,
    indices: Sequence[int],
    *,
    image_size: int,
    batch_size: int,
    chunk_frames: int,
    device: str,
) -> None:
    """Encode the frames ``indices`` of ``dataset`` into a new HDF5 file ``path`` (in order)."""
    n = len(indices)
    with h5py.File(path, "w") as h5:
        created = False
        row = 0
        for batch in iter_frames(dataset, image_size, batch_size, indices=indices):
            fD_BChw, prefix_BLC = encode_batch(vae, batch, device)
            arrays = {
                "fD": fD_BChw.numpy(),
                "prefix": prefix_BLC.numpy(),
                "rgb": batch.rgb.numpy(),
                "target": batch.target.numpy(),
                "depth": batch.depth.numpy(),
                "mask": batch.mask.numpy(),
            }
            if not created:
                for name, arr in arrays.items():
                    chunk = (max(1, min(chunk_frames, n)), *arr.shape[1:])
                    h5.create_dataset(name, (n, *arr.shape[1:]), arr.dtype, chunks=chunk)
                h5.create_dataset("key", (n,), h5py.string_dtype())
                created = True
            b = len(batch.keys)
            for name, arr in arrays.items():
                h5[name][row : row + b] = arr
            h5["key"][row : row + b] = batch.keys
            row += b


def _merge_parts(parts: Sequence[Path], out: Path, chunk_frames: int) -> None:
    """Concatenate the ranks' part files, in rank order, into the new file ``out``."""
    sources = [h5py.File(part, "r") for part in parts]
    try:
        n = sum(len(src["key"]) for src in sources)
        with h5py.File(out, "w") as h5:
            for name, first in sources[0].items():
                shape, dtype = (n, *first.shape[1:]), first.dtype
                chunk = (max(1, min(chunk_frames, n)), *first.shape[1:])
                h5.create_dataset(name, shape, dtype, chunks=chunk)
                row = 0
                for src in sources:
                    rows = len(src[name])
                    h5[name][row : row + rows] = src[name][:]
                    row += rows
    finally:
        for src in sources:
            src.close()


def build_feature_cache(
    vae: Any,
    dataset: Any,
    out_path: str | Path,
    *,
    image_size: int,
    space: str,
    split: str,
    tokenizer_sha256: str = "",
    batch_size: int = 32,
    chunk_frames: int = 64,
    max_frames: int = 0,
    device: str = "cpu",
    dist_info: DistInfo | None = None,
) -> int:
    """Encode every frame of ``dataset`` and write the cache atomically; returns N.

    Under ``torchrun`` each rank encodes its contiguous block of frames
    (:func:`rank_slice`) into a part file; rank 0 joins the parts in rank order, so
    the cache holds the frames in the same order as a single process writes them.
    """
    info = dist_info or DistInfo(device=device)
    n = len(dataset) if max_frames <= 0 else min(len(dataset), max_frames)
    if n == 0:
        raise DataError(f"{out_path}: split '{split}' has no frames to cache")
    if n < info.world_size:
        raise DataError(f"{out_path}: {n} frames cannot be shared by {info.world_size} ranks")
    vae = vae.to(device).eval()
    out_path = Path(out_path)
    write = functools.partial(
        _write_cache, vae, dataset, image_size=image_size, batch_size=batch_size,
        chunk_frames=chunk_frames, device=device,
    )  # fmt: skip
    attrs = {
        "space": space,
        "image_size": image_size,
        "patch_nums": list(vae.v_patch_nums),
        "cvae": int(vae.Cvae),
        "tokenizer_sha256": tokenizer_sha256,
        "split": split,
    }
    parts = [
        out_path.with_name(f".{out_path.name}.rank{r}-of-{info.world_size}")
        for r in range(info.world_size)
    ]
    if info.distributed:
        with atomic_path(parts[info.rank]) as tmp:
            write(tmp, rank_slice(n, info.rank, info.world_size))
        barrier(info)
    if info.is_main:
        with atomic_path(out_path) as tmp:
            if info.distributed:
                _merge_parts(parts, tmp, chunk_frames)
            else:
                write(tmp, range(n))
            with h5py.File(tmp, "a") as h5:
                h5.attrs.update(attrs)
        for part in parts if info.distributed else []:
            part.unlink()
    barrier(info)
    log.info("cached %d %s frames in %s (%d rank(s))", n, split, out_path, info.world_size)
    return n


_ITEM_NAMES = {
    "fD": "fD_Chw",
    "prefix": "prefix_LC",
    "rgb": "rgb_3SS",
    "target": "target_SS",
    "depth": "depth_SS",
    "mask": "mask_SS",
}


#: Fields whose arrays fit in this many bytes are read into memory once: a batch of 8
#: random frames from the 64-frame HDF5 chunks costs ~12 ms, as much as 8 % of a tiny
#: training step; the d16 profile's 256 px caches stay on disk.
PRELOAD_MAX_BYTES = 1 << 30


class FeatureDataset(torch.utils.data.Dataset):
    """Frames of one cache file as dicts of tensors (``fD_Chw``, ``prefix_LC``, ...).

    The HDF5 file is opened lazily in each process (h5py handles must not
    cross a DataLoader fork); the attrs are read once up front. When ``fields`` fit
    in ``preload_max_bytes`` they are read whole on first use, with identical batches.
    """

    def __init__(
        self,
        path: str | Path,
        fields: Sequence[str] = ("fD", "prefix"),
        preload_max_bytes: int = PRELOAD_MAX_BYTES,
    ) -> None:
        self.path = Path(path)
        unknown = sorted(set(fields) - set(CACHE_FIELDS))
        if unknown:
            raise ValueError(f"unknown cache fields {unknown} (known: {list(CACHE_FIELDS)})")
        self.fields = tuple(fields)
        if not self.path.is_file():
            raise DataError(f"{self.path}: feature cache not found (run the features stage)")
        try:
            with h5py.File(self.path, "r") as h5:
                missing = [k for k in (*CACHE_FIELDS, "key") if k not in h5]
                if missing:
                    raise DataError(f"{self.path}: feature cache lacks datasets {missing}")
                self.attrs = {k: _plain(v) for k, v in h5.attrs.items()}
                self.keys = [k.decode() if isinstance(k, bytes) else k for k in h5["key"][:]]
                nbytes = sum(h5[name].size * h5[name].dtype.itemsize for name in self.fields)
        except OSError as exc:
            raise DataError(f"{self.path}: not a readable HDF5 feature cache: {exc}") from exc
        self.preload = nbytes <= preload_max_bytes
        self._h5: h5py.File | None = None
        self._arrays: dict[str, np.ndarray] | None = None
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.keys)

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():  # a forked worker opens its own
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.get_batch([i], squeeze=True)

    def get_batch(self, indices: Sequence[int], squeeze: bool = False) -> dict[str, torch.Tensor]:
        """Several frames in one read (sorted for h5py, then back in the asked order)."""
        idx = np.asarray(indices, dtype=np.int64)
        if self.preload:
            if self._arrays is None:
                self._arrays = {name: self._file()[name][()] for name in self.fields}
            arrays = {name: a[idx] for name, a in self._arrays.items()}
        else:
            uniq, inverse = np.unique(idx, return_inverse=True)
            h5 = self._file()
            arrays = {name: h5[name][uniq.tolist()][inverse] for name in self.fields}
        return {
            _ITEM_NAMES[name]: torch.from_numpy(arr[0] if squeeze else arr)
            for name, arr in arrays.items()
        }

    def check_compatible(
        self,
        vae: Any | None,
        image_size: int,
        space: str | None = None,
        tokenizer_sha256: str = "",
    ) -> None:
        """Refuse a cache built by another tokenizer (layout or file), resolution or space.

        ``vae=None``: a model that reads only the frames (the regression baseline).
        """
        want: dict[str, Any] = {"image_size": image_size}
        if vae is not None:
            want.update(patch_nums=list(vae.v_patch_nums), cvae=int(vae.Cvae))
        if space is not None:
            want["space"] = space
        if tokenizer_sha256:
            want["tokenizer_sha256"] = tokenizer_sha256
        for key, value in want.items():
            if self.attrs.get(key) != value:
                raise DataError(
                    f"{self.path}: cache {key}={self.attrs.get(key)!r} but the model needs "
                    f"{value!r}; rebuild the feature cache"
                )

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Batched read used by DataLoader (one h5py read per field, not per frame)."""
        return self.get_batch(indices)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_h5"] = state["_arrays"] = None
        return state


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def run_features(cfg: FeaturesConfig) -> dict[str, int]:
    """The features stage: cache every configured split with the frozen tokenizer.

    Runs alone or under ``torchrun`` (frames shared across ranks, see
    :func:`build_feature_cache`).
    """
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    info = init_distributed(cfg.device)
    try:
        loaded = load_vae(cfg.tokenizer, map_location=info.device)
        image_size = loaded.config.image_size
        sha = file_sha256(cfg.tokenizer)
        counts = {}
        for split in cfg.splits:
            dataset = ShardDataset(cfg.data_dir, split)
            counts[split] = build_feature_cache(
                loaded.vae,
                dataset,
                Path(cfg.out_dir) / f"{split}.h5",
                image_size=image_size,
                space=str(dataset.space),
                split=split,
                tokenizer_sha256=sha,
                batch_size=cfg.batch_size,
                chunk_frames=cfg.chunk_frames,
                max_frames=cfg.max_frames,
                device=info.device,
                dist_info=info,
            )
        return counts
    finally:
        shutdown_distributed()
