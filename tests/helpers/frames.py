"""Tiny preprocessed data in the real shard format, shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depthcore.data.shards import FrameArrays, ShardWriter
from depthcore.data.transforms import normalise_depth
from tests.helpers.reliability.crash_runs import make_train_setup

SHARD_SIZE = 64  # the tiny model's size (test_features checks resizing on its own frame)


def make_frame(rng: np.random.Generator, key: str, size: int = SHARD_SIZE) -> FrameArrays:
    """A room-like frame: a tilted floor/wall depth ramp, a box, a hole, textured RGB."""
    v_HW, u_HW = np.mgrid[0:size, 0:size] / size
    depth_HW = 2.0 + 3.0 * (1.0 - v_HW) * rng.uniform(0.6, 1.4) + 0.5 * u_HW * rng.uniform(-1, 1)
    r0, c0 = rng.integers(size // 4, size // 2, size=2)
    depth_HW[r0 : r0 + size // 4, c0 : c0 + size // 4] -= rng.uniform(0.5, 1.2)
    mask_HW = np.ones((size, size), dtype=bool)
    h0 = rng.integers(0, size // 2)
    mask_HW[h0 : h0 + size // 8, : size // 6] = False  # a window without depth
    shade_HW = np.clip(1.2 - depth_HW / 6.0, 0, 1)
    checks_HW = ((u_HW * 8).astype(int) + (v_HW * 8).astype(int)) % 2
    rgb_HW3 = np.stack([shade_HW, 0.5 * shade_HW + 0.3 * checks_HW, 0.8 * checks_HW], -1)
    rgb_HW3 = (np.clip(rgb_HW3, 0, 1) * 255).astype(np.uint8)
    depth_HW = depth_HW.astype(np.float32)
    target_HW, _ = normalise_depth(depth_HW, mask_HW, "sqrt_disparity")
    return FrameArrays(rgb_HW3, depth_HW, mask_HW, target_HW, key)


def write_split(root: Path, split: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with ShardWriter(
        root / split, shard_size=5, space="sqrt_disparity", height=SHARD_SIZE, width=SHARD_SIZE
    ) as writer:
        for i in range(n):
            writer.add(make_frame(rng, f"ai_000_{seed:03d}/cam_00/{i:04d}"))


@pytest.fixture(scope="session")
def processed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/processed`` with 12 training and 4 validation frames (3 + 1 shards)."""
    root = tmp_path_factory.mktemp("processed")
    write_split(root, "train", 12, seed=1)
    write_split(root, "val", 4, seed=2)
    return root


@pytest.fixture(scope="session")
def feature_setup(processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen (randomly initialised) tiny tokenizer and its feature caches."""
    return make_train_setup(processed_dir, tmp_path_factory.mktemp("train_setup"))
