"""End-to-end preprocessing of small Hypersim-format folders into shards."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from depthcore.config import ConfigError, from_dict
from depthcore.data.hypersim import preprocess as preprocess_module
from depthcore.data.hypersim.preprocess import (
    FilterConfig,
    FolderSourceConfig,
    PreprocessConfig,
    prepare_frame,
    preprocess,
)
from depthcore.data.hypersim.reader import FrameId, ray_directions
from depthcore.data.hypersim.tables import camera_matrix, load_camera_table
from depthcore.data.shards import ShardDataset, shard_files
from depthcore.data.transforms import Normalisation, invert_normalisation
from depthcore.errors import DataError
from depthcore.synth.folder import generate_folder
from stages.preprocess import main as stage_main
from tests.helpers.hypersim_files import write_frame, write_h5


def _cfg(in_dir: Path, out_dir: Path, **kw) -> PreprocessConfig:
    base = dict(in_dir=str(in_dir), out_dir=str(out_dir), resolution=(12, 16), shard_size=5)
    return PreprocessConfig(**{**base, **kw})


def _arrays(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in shard_files(root, split_dir.name):
            with h5py.File(path, "r") as f:
                for name in ("rgb", "depth", "mask", "target", "key"):
                    data = f[name].asstr()[()].tolist() if name == "key" else f[name][()]
                    out[f"{split_dir.name}/{path.name}/{name}"] = data
    return out


@pytest.fixture
def processed(hypersim_dir, tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    raw = hypersim_dir()
    out = tmp_path / "processed"
    stats = preprocess(_cfg(raw, out, workers=2))
    return out, stats


def test_outputs_layout_and_drop_reasons(processed) -> None:
    out, stats = processed
    assert sorted(p.name for p in out.iterdir()) == [
        ".depthcore-output", "config.json", "dropped.csv", "stats.csv", "test", "train", "val",
    ]  # fmt: skip
    assert stats["split"].value_counts().to_dict() == {"train": 8, "val": 4, "test": 1}
    assert [p.name for p in shard_files(out, "train")] == ["shard_00000.h5", "shard_00001.h5"]
    dropped = pd.read_csv(out / "dropped.csv").set_index("key")
    assert dropped["reason"].to_dict() == {
        "ai_001_001/cam_00/0010": "invalid_fraction",
        "ai_001_001/cam_00/0011": "depth_range",
        "ai_001_001/cam_00/0012": "rgb_range",
        "ai_001_002/cam_00/0020": "not_in_public_release",
        "ai_002_001/cam_00/0030": "not_in_split_table",
    }
    assert dropped.loc["ai_001_001/cam_00/0010", "value"] == pytest.approx(8 / 192)
    assert dropped.loc["ai_001_001/cam_00/0010", "detail"] == "invalid fraction 0.0417 > 0.03"
    assert dropped.loc["ai_001_001/cam_00/0010", "split"] == "train"
    assert json.loads((out / "config.json").read_text())["resolution"] == [12, 16]
    assert pd.read_csv(out / "stats.csv").columns.tolist() == stats.columns.tolist()


def test_shard_format(processed) -> None:
    out, stats = processed
    with h5py.File(out / "train" / "shard_00000.h5", "r") as f:
        assert dict(f.attrs) == {"space": "sqrt_disparity", "height": 12, "width": 16}
        assert f["rgb"].shape == (5, 12, 16, 3) and f["rgb"].dtype == np.uint8
        assert f["depth"].dtype == np.float32 and f["target"].dtype == np.float32
        assert f["mask"].dtype == np.bool_
        assert f["rgb"].compression == "gzip" and f["rgb"].chunks == (1, 12, 16, 3)
        keys = list(f["key"].asstr()[()])
        assert keys == sorted(keys) and keys[0] == "ai_001_001/cam_00/0000"
        depth, mask, target = f["depth"][()], f["mask"][()], f["target"][()]
    assert np.isfinite(depth).all() and (depth > 0).all()  # infilled
    assert not mask.all() and mask.mean() > 0.97  # the one real hole is kept in the mask
    assert target.min() == -1.0 and target.max() == 1.0
    row = stats[stats["key"] == keys[0]].iloc[0]
    assert row["shard"] == "train/shard_00000.h5" and row["index"] == 0
    assert row["valid_frac"] == pytest.approx(mask[0].mean())
    assert row["depth_min"] == pytest.approx(depth[0].min())
    # The stored norm params invert the target back to the stored depth (unclipped pixels).
    norm = Normalisation("sqrt_disparity", row["norm_a"], row["norm_b"])
    inside = np.abs(target[0]) < 1
    np.testing.assert_allclose(invert_normalisation(target[0], norm)[inside], depth[0][inside],
                               rtol=1e-4)  # fmt: skip


def test_one_and_two_workers_give_identical_arrays(hypersim_dir, tmp_path: Path) -> None:
    raw = hypersim_dir()
    stats1 = preprocess(_cfg(raw, tmp_path / "w1", workers=1))
    stats2 = preprocess(_cfg(raw, tmp_path / "w2", workers=2))
    pd.testing.assert_frame_equal(stats1, stats2)
    a1, a2 = _arrays(tmp_path / "w1"), _arrays(tmp_path / "w2")
    assert a1.keys() == a2.keys() and len(a1) == 4 * 5
    for name in a1:
        if name.endswith("/key"):
            assert a1[name] == a2[name]
        else:
            assert a1[name].tobytes() == a2[name].tobytes(), name


def test_jobs_of_two_frames_in_three_workers_give_the_same_sorted_shards(
    hypersim_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = hypersim_dir()
    stats1 = preprocess(_cfg(raw, tmp_path / "w1", workers=1))
    monkeypatch.setattr(preprocess_module, "JOB_FRAMES", 2)  # 9 jobs, some crossing splits
    stats3 = preprocess(_cfg(raw, tmp_path / "w3", workers=3))
    pd.testing.assert_frame_equal(stats1, stats3)
    a1, a3 = _arrays(tmp_path / "w1"), _arrays(tmp_path / "w3")
    assert a1.keys() == a3.keys()
    for name in a1:
        same = (
            a1[name] == a3[name]
            if name.endswith("/key")
            else a1[name].tobytes() == a3[name].tobytes()
        )
        assert same, name
    for _, rows in stats3.groupby("split", sort=False):
        assert rows["key"].tolist() == sorted(rows["key"])
        assert rows["index"].tolist() == [i % 5 for i in range(len(rows))]  # shard_size 5


def test_folder_frames_are_stored_in_key_order(tmp_path: Path) -> None:
    own = generate_folder(tmp_path / "own", ["train"] * 6, seed=3, height=24, width=32)
    manifest = yaml.safe_load((own / "manifest.yaml").read_text())
    manifest["frames"] = manifest["frames"][::-1]  # listed backwards
    (own / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    folders = (FolderSourceConfig(name="own", root=str(own)),)
    cfg = _cfg(tmp_path / "absent", tmp_path / "out", hypersim=False, folders=folders)
    stats = preprocess(cfg)
    assert len(stats) >= 4 and stats["key"].tolist() == sorted(stats["key"])
    assert stats["frame"].tolist() == sorted(stats["frame"], reverse=True)  # manifest rows


def test_shard_dataset_items(processed) -> None:
    out, stats = processed
    ds = ShardDataset(out, "train")
    assert len(ds) == 8 and ds.space == "sqrt_disparity"
    item = ds[6]  # second shard, index 1
    assert item["rgb_3HW"].shape == (3, 12, 16) and item["rgb_3HW"].dtype == torch.uint8
    assert item["depth_HW"].dtype == torch.float32 and item["mask_HW"].dtype == torch.bool
    assert item["target_HW"].shape == (12, 16)
    train = stats[stats["split"] == "train"].reset_index(drop=True)
    assert item["key"] == train.loc[6, "key"] and train.loc[6, "shard"] == "train/shard_00001.h5"
    with h5py.File(out / "train" / "shard_00001.h5", "r") as f:
        np.testing.assert_array_equal(item["rgb_3HW"].numpy(), f["rgb"][1].transpose(2, 0, 1))
    with pytest.raises(IndexError):
        ds[8]
    ds.close()
    batch = next(iter(DataLoader(pickle.loads(pickle.dumps(ds)), batch_size=3)))
    assert batch["target_HW"].shape == (3, 12, 16) and batch["key"] == train["key"][:3].tolist()
    with pytest.raises(DataError, match="no such split folder"):
        ShardDataset(out, "nope")


def test_scale_depth_space_and_split_selection(hypersim_dir, tmp_path: Path) -> None:
    raw = hypersim_dir()
    cfg = _cfg(raw, tmp_path / "out", space="scale_depth", splits=("val",), workers=1)
    stats = preprocess(cfg)
    assert set(stats["split"]) == {"val"} and len(stats) == 4
    assert not (tmp_path / "out" / "train").exists()
    assert (stats["norm_b"] == -1.0).all()
    ds = ShardDataset(tmp_path / "out", "val")
    assert ds.space == "scale_depth"


def test_failure_keeps_previous_output(hypersim_dir, tmp_path: Path) -> None:
    raw = hypersim_dir()
    out = tmp_path / "processed"
    preprocess(_cfg(raw, out, workers=1))
    before = (out / "stats.csv").read_bytes()
    bad = FrameId("ai_002_001", "cam_01", 1).depth_path(raw)
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match=f"{bad.name}: unreadable or corrupt HDF5"):
        preprocess(_cfg(raw, out, workers=2))
    assert (out / "stats.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_packaged_tables_when_csvs_absent(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    # ai_001_001 cam_00: frames 0 and 1 are public train, 36 is flagged for removal.
    for i in (0, 1, 36):
        write_frame(raw, FrameId("ai_001_001", "cam_00", i), seed=i)
    stats = preprocess(_cfg(raw, tmp_path / "out", workers=1))
    assert stats["key"].tolist() == ["ai_001_001/cam_00/0000", "ai_001_001/cam_00/0001"]
    assert set(stats["split"]) == {"train"}
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv")
    assert dropped[["key", "reason", "detail"]].values.tolist() == [
        ["ai_001_001/cam_00/0036", "not_in_public_release", "CONTENT FLAGGED FOR REMOVAL"]
    ]


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ConfigError, match="preprocess.space"):
        from_dict(PreprocessConfig, {"space": "log"}, "preprocess")
    with pytest.raises(ConfigError, match="preprocess.filters.max_invalid"):
        from_dict(PreprocessConfig, {"filters": {"max_invalid": 0.1}}, "preprocess")
    with pytest.raises(ConfigError, match="percentiles"):
        from_dict(PreprocessConfig, {"percentiles": [98, 2]}, "preprocess")
    assert PreprocessConfig().filters == FilterConfig()


def test_stage_entry_point(hypersim_dir, tmp_path: Path, capsys) -> None:
    raw = hypersim_dir()
    params = tmp_path / "params.yaml"
    section = {"in_dir": str(raw), "out_dir": str(tmp_path / "p"), "resolution": [8, 8]}
    params.write_text(yaml.safe_dump({"preprocess": {**section, "workers": 1}}))
    stage_main(["--params", str(params)])
    assert "13 frames kept" in capsys.readouterr().out
    assert len(ShardDataset(tmp_path / "p", "train")) == 8
    params.write_text(yaml.safe_dump({"preprocess": {**section, "in_dir": str(tmp_path / "x")}}))
    with pytest.raises(SystemExit) as exc:
        stage_main(["--params", str(params)])
    assert exc.value.code == 1
    assert "input folder not found" in capsys.readouterr().err


def test_frame_without_usable_percentiles_is_dropped(tmp_path: Path) -> None:
    # Planar depth 3 m everywhere but 4 pixels (0.5%) at 5 m: the range passes the filter,
    # but the 2nd and 98th percentiles coincide, so no target can be made.
    fid = FrameId("ai_001_001", "cam_00", 0)
    M = camera_matrix(load_camera_table(), "ai_001_001")
    rays_HW3 = ray_directions(M, 24, 32)
    cos_HW = np.abs(rays_HW3[..., 2]) / np.linalg.norm(rays_HW3, axis=-1)
    planar_HW = np.full((24, 32), 3.0)
    planar_HW[10:12, 10:12] = 5.0
    write_h5(fid.color_path(tmp_path), np.random.default_rng(0).uniform(0, 1, (24, 32, 3)))
    write_h5(fid.depth_path(tmp_path), (planar_HW / cos_HW).astype(np.float32))
    write_h5(fid.entity_path(tmp_path), np.ones((24, 32), np.int16))
    arrays, info = prepare_frame(tmp_path, fid, M, PreprocessConfig(resolution=(24, 32)))
    assert arrays is None and info["reason"] == "normalisation"
    assert "degenerate" in info["detail"]
