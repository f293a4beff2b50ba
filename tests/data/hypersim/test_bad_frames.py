"""Preprocess against frames and disks that go wrong: an all-NaN depth frame under a
lenient filter is dropped with a reason (no empty-array crash), and a full disk while
shards are written leaves the previous output as it was and says "disk full"."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from depthcore.data import shards
from depthcore.data.hypersim.preprocess import FilterConfig, PreprocessConfig, preprocess
from depthcore.data.hypersim.reader import FrameId
from depthcore.errors import DiskFullError
from tests.helpers.hypersim_files import write_frame, write_h5

LENIENT = FilterConfig(max_invalid_frac=1.0, min_depth_range=0.0, min_rgb_range=0.0)


def _cfg(raw: Path, out: Path) -> PreprocessConfig:
    return PreprocessConfig(
        in_dir=str(raw), out_dir=str(out), resolution=(12, 16), workers=1, filters=LENIENT
    )


def test_all_nan_depth_frame_is_dropped_not_fatal(hypersim_dir, tmp_path: Path) -> None:
    raw = hypersim_dir()
    nan_frame = FrameId("ai_001_001", "cam_00", 0)
    write_h5(nan_frame.depth_path(raw), np.full((24, 32), np.nan, np.float16))
    stats = preprocess(_cfg(raw, tmp_path / "out"))
    assert nan_frame.key not in stats["key"].tolist() and len(stats) > 0
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv").set_index("key")
    assert "no valid depth pixel" in dropped.loc[nan_frame.key, "detail"]


def test_disk_full_while_writing_shards_keeps_previous_output(
    hypersim_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = hypersim_dir()
    out = tmp_path / "processed"
    preprocess(_cfg(raw, out))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_frame(raw, FrameId("ai_001_001", "cam_00", 1), seed=99)  # the rerun has new work
    calls = {"n": 0}
    real_add = shards.ShardWriter.add

    def add_until_full(self: shards.ShardWriter, frame: shards.FrameArrays) -> tuple[str, int]:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_add(self, frame)

    monkeypatch.setattr(shards.ShardWriter, "add", add_until_full)
    with pytest.raises(DiskFullError, match=r"processed: disk full while writing"):
        preprocess(_cfg(raw, out))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed", "raw"]  # no temp left
