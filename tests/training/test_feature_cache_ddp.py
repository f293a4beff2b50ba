"""The features stage under torchrun: ranks share the frames, the cache equals one process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import yaml

from depthcore.training.feature_cache import rank_slice
from tests.helpers.torchrun import torchrun

REPO = Path(__file__).resolve().parents[2]


def test_rank_slices_cover_every_frame_once_in_order() -> None:
    for n in (2, 5, 12, 13):
        for world in (1, 2, 3):
            if n < world:
                continue
            blocks = [list(rank_slice(n, r, world)) for r in range(world)]
            assert sum(blocks, []) == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def _params(path: Path, processed: Path, tokenizer: Path, out: Path) -> Path:
    params = {
        "features": {
            "data_dir": str(processed), "tokenizer": str(tokenizer), "out_dir": str(out),
            "batch_size": 3, "device": "cpu",
        }
    }  # fmt: skip
    path.write_text(yaml.safe_dump(params))
    return path


def test_two_ranks_write_the_same_cache_as_one_process(
    processed_dir: Path, feature_setup: Path, tmp_path: Path
) -> None:
    tokenizer = feature_setup / "vae.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = _params(tmp_path / "one.yaml", processed_dir, tokenizer, tmp_path / "one")
    proc = subprocess.run(
        [sys.executable, "-m", "stages.features", "--params", str(one)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = _params(tmp_path / "two.yaml", processed_dir, tokenizer, tmp_path / "two")
    cmd = torchrun(2, "stages.features", "--params", str(two))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(2 rank(s))" in proc.stderr  # the frames were really shared
    for split in ("train", "val"):
        with (
            h5py.File(tmp_path / "one" / f"{split}.h5") as a,
            h5py.File(tmp_path / "two" / f"{split}.h5") as b,
        ):
            assert {k: str(v) for k, v in a.attrs.items()} == {
                k: str(v) for k, v in b.attrs.items()
            }
            assert list(a["key"].asstr()) == list(b["key"].asstr())
            for name in ("fD", "prefix", "rgb", "target", "depth", "mask"):
                np.testing.assert_allclose(a[name][:], b[name][:], rtol=0, atol=1e-5)
    assert not [p.name for p in (tmp_path / "two").iterdir() if p.name.startswith(".")]
