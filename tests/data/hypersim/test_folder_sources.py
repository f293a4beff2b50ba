"""Training on your own data: folder datasets through the same preprocess and validate stages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from depthcore.config import ConfigError, load_section
from depthcore.data.hypersim.preprocess import PreprocessConfig, preprocess
from depthcore.data.hypersim.validate import ValidateConfig, validate
from depthcore.data.shards import read_frame
from depthcore.errors import DataError
from depthcore.synth.folder import generate_folder
from stages.preprocess import main as preprocess_main
from stages.validate import main as validate_main

SPLITS = ["train"] * 5 + ["val", "test", "test"]


def test_folder_alone_is_sharded_by_its_manifest_splits_and_validates(tmp_path: Path) -> None:
    own = generate_folder(tmp_path / "own", SPLITS, seed=7, height=32, width=48)
    # in_dir does not exist: with hypersim off it is never read
    cfg = load_section("preprocess", PreprocessConfig, _params(tmp_path, own, False))
    stats = preprocess(cfg)
    dropped = pd.read_csv(tmp_path / "processed" / "dropped.csv")
    assert len(stats) + len(dropped) == len(SPLITS)  # each frame is kept or says why not
    assert len(stats) >= 5
    assert stats["key"].str.startswith("own/rgb/").all()
    manifest = yaml.safe_load((own / "manifest.yaml").read_text())["frames"]
    want = {f"own/{r['rgb'][:-4]}": r["split"] for r in manifest}
    assert all(want[k] == s for k, s in zip(stats["key"], stats["split"], strict=True))
    first = stats.iloc[0]
    arrays = read_frame(tmp_path / "processed" / first["shard"], int(first["index"]))
    assert arrays.key == first["key"] and arrays.rgb_HW3.shape == (16, 16, 3)
    report = validate(ValidateConfig(processed_dir=cfg.out_dir, report_dir=str(tmp_path / "r")))
    assert report.success


def _params(tmp_path: Path, own: Path, hypersim: bool, in_dir: Path | None = None) -> Path:
    section = {
        "in_dir": str(in_dir or tmp_path / "absent"),
        "out_dir": str(tmp_path / "processed"),
        "resolution": [16, 16],
        "workers": 2,
        "hypersim": hypersim,
        "folders": [{"name": "own", "root": str(own)}],
    }
    validate_section = {"processed_dir": section["out_dir"], "report_dir": str(tmp_path / "rep")}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"preprocess": section, "validate": validate_section}))
    return path


def test_folder_mixed_with_hypersim_through_the_stages(hypersim_dir, tmp_path: Path) -> None:
    own = generate_folder(tmp_path / "own", SPLITS, seed=8, height=32, width=48)
    params = _params(tmp_path, own, True, hypersim_dir())
    preprocess_main(["--params", str(params)])
    validate_main(["--params", str(params)])
    stats = pd.read_csv(tmp_path / "processed" / "stats.csv")
    sources = stats["key"].str.split("/").str[0]
    assert {"own", "ai_001_001", "ai_002_001"} <= set(sources)
    assert set(stats.loc[sources == "own", "split"]) <= {"train", "val", "test"}
    assert (tmp_path / "rep" / "validation_report.json").is_file()


def test_folder_source_errors_name_the_key_or_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hypersim: false needs at least one entry in folders"):
        load_section("preprocess", PreprocessConfig, _write(tmp_path, {"hypersim": False}))
    folders = [{"name": "a", "root": "x"}, {"name": "a", "root": "y"}]
    with pytest.raises(ConfigError, match="names must be unique"):
        load_section("preprocess", PreprocessConfig, _write(tmp_path, {"folders": folders}))
    with pytest.raises(ConfigError, match=r"preprocess.folders\[0\].rot"):
        load_section(
            "preprocess", PreprocessConfig, _write(tmp_path, {"folders": [{"name": "a", "rot": 1}]})
        )
    own = generate_folder(tmp_path / "own", ["test"], seed=9)
    folders = load_section("preprocess", PreprocessConfig, _params(tmp_path, own, False)).folders
    cfg = PreprocessConfig(out_dir=str(tmp_path / "p"), hypersim=False, splits=("train",),
                           folders=folders)  # fmt: skip
    with pytest.raises(DataError, match=rf"{own}: no frames of splits \['train'\]"):
        preprocess(cfg)
    assert not (tmp_path / "p").exists()


def _write(tmp_path: Path, section: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"preprocess": section}))
    return path
