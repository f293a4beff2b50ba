"""Frames at model resolution: one shard item resized to S x S, and batches of them.

The features stage encodes these frames, the tokenizer trains on them and the
tokenizer's reconstruction ceiling is scored on them, so all three see the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from depthcore.data.transforms import resize_depth, resize_rgb


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
        chunk = order[start : start + batch_size]
        # a shard dataset reads runs of frames in bulk (ShardDataset.frames)
        items = dataset.frames(chunk) if hasattr(dataset, "frames") else [dataset[i] for i in chunk]
        parts = [frame_at_size(it, size) for it in items]
        yield FrameBatch(
            keys=[str(it["key"]) for it in items],
            rgb=torch.from_numpy(np.stack([p[0] for p in parts])),
            target=torch.from_numpy(np.stack([p[1] for p in parts])),
            depth=torch.from_numpy(np.stack([p[2] for p in parts])),
            mask=torch.from_numpy(np.stack([p[3] for p in parts])),
        )
