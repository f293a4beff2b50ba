"""The frozen-feature cache: run the frozen VQ-VAE once per frame, train from HDF5.

Both objectives only ever need, per frame, the continuous depth features
``f_D = encode_features(depth3)`` and the DepthART image prefix
``image_prefix(vae, rgb)``. The tokenizer is frozen, so computing them once
and reading them back makes every training step skip the VQ-VAE encoder
(about a third of the FLOPs of a step at 256 px).

The file layout, and :class:`~depthcore.data.features.FeatureDataset` that reads it,
are in :mod:`depthcore.data.features`; the frames at model resolution come from
:mod:`depthcore.data.frames`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import torch

from depthcore.config import frozen, param
from depthcore.data.frames import FrameBatch, iter_frames
from depthcore.data.shards import ShardDataset
from depthcore.errors import DataError
from depthcore.io import atomic_path, close_or_keep, file_sha256
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


@torch.no_grad()
def encode_batch(vae: Any, batch: FrameBatch, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(fD_BChw, prefix_BLC) of one batch, on CPU."""
    fD_BChw = vae.encode_features(target_to_depth3(batch.target).to(device))
    prefix_BLC = image_prefix(vae, rgb_to_model(batch.rgb).to(device))
    return fD_BChw.float().cpu(), prefix_BLC.float().cpu()


def rank_slice(n: int, rank: int, world_size: int) -> range:
    """The contiguous block of frames ``rank`` encodes: blocks in rank order cover 0..n-1."""
    return range(rank * n // world_size, (rank + 1) * n // world_size)


@contextlib.contextmanager
def _h5_writing(path: Path, mode: str) -> Iterator[tuple[h5py.File, dict[str, h5py.Dataset]]]:
    """An HDF5 file open for writing and the datasets the body creates in it (held, by
    name, for the file's life), flushed and closed however the body ends.

    Not ``with h5py.File(...)``: after a failed write (full disk, file size limit) h5py's
    own close, or the garbage collector finalising a dataset, prints "Exception ignored"
    tracebacks and can crash the process. :func:`~depthcore.io.close_or_keep` flushes
    first and keeps what cannot be closed, as the preprocess shard writer does.
    """
    h5 = h5py.File(path, mode)
    held: dict[str, h5py.Dataset] = {}
    try:
        yield h5, held
    finally:
        close_or_keep(h5, *held.values())


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
    with _h5_writing(path, "w") as (h5, held):
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
            if not held:
                for name, arr in arrays.items():
                    chunk = (max(1, min(chunk_frames, n)), *arr.shape[1:])
                    held[name] = h5.create_dataset(
                        name, (n, *arr.shape[1:]), arr.dtype, chunks=chunk
                    )
                held["key"] = h5.create_dataset("key", (n,), h5py.string_dtype())
            b = len(batch.keys)
            for name, arr in arrays.items():
                held[name][row : row + b] = arr
            held["key"][row : row + b] = batch.keys
            row += b


def _merge_parts(parts: Sequence[Path], out: Path, chunk_frames: int) -> None:
    """Concatenate the ranks' part files, in rank order, into the new file ``out``."""
    sources = [h5py.File(part, "r") for part in parts]
    try:
        n = sum(len(src["key"]) for src in sources)
        with _h5_writing(out, "w") as (h5, held):
            for name, first in sources[0].items():
                shape, dtype = (n, *first.shape[1:]), first.dtype
                chunk = (max(1, min(chunk_frames, n)), *first.shape[1:])
                held[name] = h5.create_dataset(name, shape, dtype, chunks=chunk)
                row = 0
                for src in sources:
                    rows = len(src[name])
                    held[name][row : row + rows] = src[name][:]
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
            with _h5_writing(tmp, "a") as (h5, _):
                h5.attrs.update(attrs)
        for part in parts if info.distributed else []:
            part.unlink()
    barrier(info)
    log.info("cached %d %s frames in %s (%d rank(s))", n, split, out_path, info.world_size)
    return n


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
