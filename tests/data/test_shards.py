"""ShardWriter: frames buffered into blocks land in the right shard, at the right index."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from depthcore.data import shards
from depthcore.data.shards import FrameArrays, ShardWriter, read_frame


def _frame(i: int) -> FrameArrays:
    rng = np.random.default_rng(i)
    return FrameArrays(
        rgb_HW3=rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
        depth_HW=rng.uniform(1, 5, (8, 8)).astype(np.float32),
        mask_HW=rng.random((8, 8)) > 0.1,
        target_HW=rng.uniform(-1, 1, (8, 8)).astype(np.float32),
        key=f"scene/cam_00/{i:04d}",
    )


def _writer(root: Path) -> ShardWriter:
    return ShardWriter(root, shard_size=4, space="sqrt_disparity", height=8, width=8)


def test_blocks_and_shards_hold_every_frame_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "BLOCK_BYTES", 3 * 8 * 8 * 12)  # 3 frames per block
    frames = [_frame(i) for i in range(10)]
    with _writer(tmp_path) as writer:
        assert writer.block_frames == 3
        placed = [writer.add(f) for f in frames]
    names = ["shard_00000.h5"] * 4 + ["shard_00001.h5"] * 4 + ["shard_00002.h5"] * 2
    assert placed == list(zip(names, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1], strict=True))
    for frame, (name, index) in zip(frames, placed, strict=True):
        back = read_frame(tmp_path / name, index)
        assert back.key == frame.key
        for field in ("rgb_HW3", "depth_HW", "mask_HW", "target_HW"):
            np.testing.assert_array_equal(getattr(back, field), getattr(frame, field))


def test_leaving_with_an_error_drops_the_unwritten_block(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="stop"), _writer(tmp_path) as writer:
        writer.add(_frame(0))
        raise RuntimeError("stop")
    with pytest.raises(IndexError):  # the shard exists but holds no frame
        read_frame(tmp_path / "shard_00000.h5", 0)


@pytest.mark.parametrize("compression", ["gzip", None])
def test_shard_datasets_keep_their_layout(tmp_path: Path, compression: str | None) -> None:
    with ShardWriter(
        tmp_path, shard_size=4, space="sqrt_disparity", height=8, width=8, compression=compression
    ) as writer:
        writer.add(_frame(0))
    with h5py.File(tmp_path / "shard_00000.h5", "r") as f:
        assert dict(f.attrs) == {"space": "sqrt_disparity", "height": 8, "width": 8}
        for name, shape in {"rgb": (8, 8, 3), "depth": (8, 8), "mask": (8, 8)}.items():
            ds = f[name]
            assert ds.dtype == shards.DTYPES[name] and ds.chunks == (1, *shape)
            assert ds.maxshape == (None, *shape)
            assert ds.compression == compression and ds.shuffle == (compression is not None)
            assert ds.compression_opts == (shards.GZIP_LEVEL if compression else None)
        assert f["key"].chunks == (1024,) and f["key"].compression is None
        assert h5py.check_string_dtype(f["key"].dtype).encoding == "utf-8"
        assert f["target"].dtype == np.float32


@pytest.mark.parametrize("name", shards.ARRAYS)
def test_chunks_hold_what_hdf5s_own_filters_store(tmp_path: Path, name: str) -> None:
    """Our libdeflate chunks inflate to the bytes HDF5's shuffle filter makes itself."""
    frame = _frame(3)
    array = getattr(frame, "rgb_HW3" if name == "rgb" else f"{name}_HW")
    with h5py.File(tmp_path / "h5py.h5", "w") as f:
        ds = f.create_dataset(
            name, data=array[None], chunks=(1, *array.shape), shuffle=True, compression="gzip"
        )
        mask, theirs = ds.id.read_direct_chunk((0,) * (array.ndim + 1))
    assert mask == 0
    assert zlib.decompress(shards.encode_chunk(array, shards.GZIP_LEVEL)) == zlib.decompress(theirs)


def test_bulk_frames_equal_the_items_one_by_one(tmp_path: Path) -> None:
    """ShardDataset.frames reads runs of frames per shard in one slice per array: the same
    items as indexing one at a time, across shard ends, gaps, repeats and any order."""
    with _writer(tmp_path / "train") as writer:
        for i in range(10):
            writer.add(_frame(i))
    ds = shards.ShardDataset(tmp_path, "train")
    indices = [0, 1, 2, 3, 4, 5, 9, 7, 7, 8, 3, 2]  # shards of 4: runs cross 3 -> 4
    bulk = ds.frames(indices)
    assert [item["key"] for item in bulk] == [ds[i]["key"] for i in indices]
    for index, item in zip(indices, bulk, strict=True):
        one = ds[index]
        assert isinstance(item["key"], str)
        for name in ("rgb_3HW", "depth_HW", "mask_HW", "target_HW"):
            assert item[name].dtype == one[name].dtype
            assert item[name].is_contiguous()
            assert torch.equal(item[name], one[name]), (index, name)
    bulk[0]["depth_HW"] += 1.0  # each item owns its arrays
    assert torch.equal(bulk[1]["depth_HW"], ds[1]["depth_HW"])
    assert ds.frames([]) == []
    with pytest.raises(IndexError, match="index 10 out of range"):
        ds.frames([9, 10])
    ds.close()
