"""The frozen-feature cache: contents equal the VQ-VAE's own outputs, batches are deterministic."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from depthcore.data.features import PRELOAD_MAX_BYTES, FeatureDataset
from depthcore.data.frames import frame_at_size
from depthcore.data.shards import ShardDataset
from depthcore.errors import DataError
from depthcore.models import create_model, image_prefix
from depthcore.spaces import rgb_to_model, target_to_depth3
from depthcore.training.batches import step_indices, step_loader
from depthcore.training.feature_cache import build_feature_cache
from tests.helpers.frames import make_frame


@pytest.fixture(scope="module")
def tiny_vae() -> torch.nn.Module:
    torch.manual_seed(0)
    vae, _ = create_model("tiny")
    return vae.eval()


@pytest.fixture(scope="module")
def cache_path(processed_dir: Path, tiny_vae: torch.nn.Module, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("features") / "val.h5"
    ds = ShardDataset(processed_dir, "val")
    n = build_feature_cache(
        tiny_vae, ds, out, image_size=64, space=ds.space, split="val", batch_size=3
    )
    assert n == 4
    return out


def test_frame_at_size_resizes_to_model_resolution() -> None:
    frame = make_frame(np.random.default_rng(3), "a/b/c", size=96)
    item = {
        "rgb_3HW": torch.from_numpy(frame.rgb_HW3.transpose(2, 0, 1).copy()),
        "target_HW": torch.from_numpy(frame.target_HW),
        "depth_HW": torch.from_numpy(frame.depth_HW),
        "mask_HW": torch.from_numpy(frame.mask_HW),
    }
    rgb, target, depth, mask = frame_at_size(item, 64)
    assert rgb.shape == (3, 64, 64) and rgb.dtype == np.uint8
    assert target.shape == depth.shape == mask.shape == (64, 64)
    assert not mask.all() and mask.any()
    assert np.all(depth[~mask] == 0) and np.all(depth[mask] > 0)
    assert target.min() >= -1 and target.max() <= 1


def test_cache_holds_the_vae_outputs(
    cache_path: Path, processed_dir: Path, tiny_vae: torch.nn.Module
) -> None:
    assert not list(cache_path.parent.glob(".*tmp*")), "temporary file left behind"
    with h5py.File(cache_path) as h5:
        assert h5["fD"].shape == (4, 16, 8, 8)
        assert h5["prefix"].shape == (4, 130, 16)
        assert h5.attrs["space"] == "sqrt_disparity"
        assert list(h5.attrs["patch_nums"]) == [1, 2, 3, 4, 6, 8]
    ds = FeatureDataset(cache_path, fields=("fD", "prefix", "rgb", "target"))
    assert ds.keys == [ShardDataset(processed_dir, "val")[i]["key"] for i in range(4)]
    item = ds[2]
    with torch.no_grad():
        fD = tiny_vae.encode_features(target_to_depth3(item["target_SS"][None]))
        prefix = image_prefix(tiny_vae, rgb_to_model(item["rgb_3SS"][None]))
    torch.testing.assert_close(item["fD_Chw"], fD[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(item["prefix_LC"], prefix[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preload_max_bytes", [0, PRELOAD_MAX_BYTES])
def test_batched_reads_keep_order_and_duplicates(cache_path: Path, preload_max_bytes: int) -> None:
    ds = FeatureDataset(cache_path, preload_max_bytes=preload_max_bytes)
    assert ds.preload == (preload_max_bytes > 0)
    batch = ds.get_batch([3, 0, 3, 1])
    assert batch["fD_Chw"].shape == (4, 16, 8, 8)
    torch.testing.assert_close(batch["fD_Chw"][0], ds[3]["fD_Chw"])
    torch.testing.assert_close(batch["fD_Chw"][1], ds[0]["fD_Chw"])
    torch.testing.assert_close(batch["fD_Chw"][2], batch["fD_Chw"][0])


def test_memory_and_disk_reads_give_identical_batches(cache_path: Path) -> None:
    """Small caches are read into memory once; the batches must not change by a bit."""
    fields = ("fD", "prefix", "rgb", "target", "depth", "mask")
    disk = FeatureDataset(cache_path, fields=fields, preload_max_bytes=0)
    memory = FeatureDataset(cache_path, fields=fields)
    assert memory.preload and not disk.preload
    order = [2, 0, 2, 3, 1]
    a, b = disk.get_batch(order), memory.get_batch(order)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name
    assert torch.equal(disk[1]["prefix_LC"], memory[1]["prefix_LC"])
    assert pickle.loads(pickle.dumps(memory)).get_batch(order)["fD_Chw"].equal(a["fD_Chw"])


def test_cache_refusals(cache_path: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing.h5: feature cache not found"):
        FeatureDataset(tmp_path / "missing.h5")
    ds = FeatureDataset(cache_path)
    vae, _ = create_model("tiny", vae={"z_channels": 8})
    with pytest.raises(DataError, match=r"val.h5: cache cvae=16 but the model needs 8"):
        ds.check_compatible(vae, 64)
    tiny, _ = create_model("tiny")
    with pytest.raises(DataError, match=r"val.h5: cache tokenizer_sha256='' but .* 'abc'"):
        ds.check_compatible(tiny, 64, tokenizer_sha256="abc")
    with pytest.raises(ValueError, match="unknown cache fields"):
        FeatureDataset(cache_path, fields=("fD", "logits"))


def test_step_indices_cover_epochs_and_split_ranks() -> None:
    n, B = 10, 3
    stream = [i for s in range(10) for i in step_indices(s, n, B, seed=7)]
    for epoch in range(3):
        assert sorted(stream[epoch * n : (epoch + 1) * n]) == list(range(n))
    assert step_indices(4, n, B, seed=7) == step_indices(4, n, B, seed=7)
    assert step_indices(4, n, B, seed=7) != step_indices(4, n, B, seed=8)
    r0 = step_indices(2, n, B, seed=7, rank=0, world_size=2)
    r1 = step_indices(2, n, B, seed=7, rank=1, world_size=2)
    single = [i for s in (4, 5) for i in step_indices(s, n, B, seed=7)]
    assert r0 + r1 == single  # two ranks read exactly what one process reads in two steps


def test_step_loader_yields_the_step_batches(cache_path: Path) -> None:
    ds = FeatureDataset(cache_path)
    batches = list(step_loader(ds, batch_size=2, seed=1, start_step=3, end_step=5))
    assert len(batches) == 2
    torch.testing.assert_close(
        batches[1]["fD_Chw"], ds.get_batch(step_indices(4, 4, 2, 1))["fD_Chw"]
    )
