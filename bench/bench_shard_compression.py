"""HDF5 shard compression settings: write and read cost per frame, bytes per frame.

Preprocesses a download folder (``--raw``) into a temporary folder, gathers its frames,
then for each setting writes them into one shard with one-frame chunks (as
``ShardWriter`` does, in one block) and reads every frame back one at a time (as
``ShardDataset`` does). CPU milliseconds per frame, best of ``--repeats``.

    python bench/bench_shard_compression.py --raw /tmp/raw --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from depthcore.data.hypersim.preprocess import PreprocessConfig, preprocess
from depthcore.data.shards import ARRAYS, shard_files

SETTINGS: dict[str, dict[str, Any]] = {
    "none": {},
    "gzip-4 (h5py default)": {"compression": "gzip"},
    "gzip-1": {"compression": "gzip", "compression_opts": 1},
    "shuffle + gzip-1": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "shuffle + gzip-4": {"compression": "gzip", "shuffle": True},
    "shuffle + lzf": {"compression": "lzf", "shuffle": True},
}


def _frames(raw: Path, tmp: Path) -> dict[str, np.ndarray]:
    cfg = PreprocessConfig(in_dir=str(raw), out_dir=str(tmp / "processed"), workers=1)
    preprocess(cfg)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    for split in cfg.splits:
        for path in shard_files(cfg.out_dir, split):
            with h5py.File(path, "r") as f:
                for name in ARRAYS:
                    parts[name].append(f[name][()])
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def _measure(arrays: dict[str, np.ndarray], path: Path, opts: dict[str, Any]) -> tuple[float, ...]:
    n = len(arrays["rgb"])
    cpu = time.process_time()
    with h5py.File(path, "w") as f:
        for name, data in arrays.items():
            f.create_dataset(name, data=data, chunks=(1, *data.shape[1:]), **opts)
    write = time.process_time() - cpu
    cpu = time.process_time()
    with h5py.File(path, "r") as f:
        for i in range(n):
            for name in arrays:
                f[name][i]
    read = time.process_time() - cpu
    return write / n, read / n, path.stat().st_size / n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", type=Path, required=True, help="a Hypersim download folder")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_shards_") as tmp_name:
        tmp = Path(tmp_name)
        arrays = _frames(args.raw, tmp)
        h, w = arrays["rgb"].shape[1:3]
        print(f"{len(arrays['rgb'])} frames at {h}x{w}, best of {args.repeats}")
        for label, opts in SETTINGS.items():
            runs = [_measure(arrays, tmp / "shard.h5", opts) for _ in range(args.repeats)]
            write, read = min(r[0] for r in runs), min(r[1] for r in runs)
            print(
                f"  {label:22s}: write {1000 * write:.3f} ms/frame, read {1000 * read:.3f} "
                f"ms/frame, {runs[0][2] / 1024:.1f} KiB/frame"
            )


if __name__ == "__main__":
    main()
