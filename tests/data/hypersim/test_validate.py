"""The great-expectations gate over preprocessed shards: passes good data, names what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from depthcore.data.hypersim.preprocess import PreprocessConfig, preprocess
from depthcore.data.hypersim.validate import ValidateConfig, validate
from depthcore.errors import DataError
from stages.validate import main as stage_main


@pytest.fixture
def processed(hypersim_dir, tmp_path: Path) -> Path:
    out = tmp_path / "processed"
    cfg = PreprocessConfig(
        in_dir=str(hypersim_dir()), out_dir=str(out), resolution=(12, 16), workers=1
    )
    preprocess(cfg)
    return out


def _results(report_dir: Path) -> dict[str, dict]:
    payload = json.loads((report_dir / "validation_report.json").read_text())
    return {r["check"]: r for r in payload["results"]}


def test_good_set_passes_and_writes_report(processed: Path, tmp_path: Path) -> None:
    report = validate(ValidateConfig(processed_dir=str(processed), report_dir=str(tmp_path / "r")))
    assert report.success and report.failed == []
    results = _results(tmp_path / "r")
    assert len(results) == len(report.results) > 30
    assert results["stats rows == frames in shards"]["observed"] == "13"
    assert results["arrays: finite targets"]["success"]
    md = (tmp_path / "r" / "validation_report.md").read_text()
    assert "**Result: PASSED**" in md and "| frames | no key in two splits |" in md


def test_corrupted_set_fails_naming_the_checks(processed: Path, tmp_path: Path) -> None:
    # A NaN in one stored target, and a train key copied into the val split.
    with h5py.File(processed / "train" / "shard_00000.h5", "r+") as f:
        target = f["target"][2]
        target[3, 4] = np.nan
        f["target"][2] = target
        train_key = f["key"].asstr()[0]
    with h5py.File(processed / "val" / "shard_00000.h5", "r+") as f:
        f["key"][1] = train_key
    stats = pd.read_csv(processed / "stats.csv")
    stats.loc[(stats["split"] == "val") & (stats["index"] == 1), "key"] = train_key
    stats.to_csv(processed / "stats.csv", index=False)

    cfg = ValidateConfig(processed_dir=str(processed), report_dir=str(tmp_path / "r"))
    with pytest.raises(DataError, match="data validation failed .*validation_report.md"):
        validate(cfg)
    results = _results(tmp_path / "r")
    failed = {name for name, r in results.items() if not r["success"]}
    assert failed == {
        "no key in two splits",
        "each key stored once",
        "arrays: finite targets",
        "arr_target_min not NaN",
        "arr_target_max not NaN",
    }
    assert results["no key in two splits"]["observed"].startswith("2 of 13 unexpected")
    md = (tmp_path / "r" / "validation_report.md").read_text()
    assert "**Result: FAILED**" in md
    assert "| frames | arrays: finite targets | expect_column_values_to_be_in_set" in md


def test_stats_out_of_range_and_missing_split(processed: Path, tmp_path: Path) -> None:
    stats = pd.read_csv(processed / "stats.csv")
    stats.loc[0, "target_max"] = 1.5
    stats.loc[1, "valid_frac"] = 0.9
    stats.loc[2, "depth_min"] = np.nan
    stats.to_csv(processed / "stats.csv", index=False)
    with h5py.File(processed / "val" / "shard_00000.h5", "r+") as f:
        depth = f["depth"][()]
        del f["depth"]
        f["depth"] = depth.astype(np.float64)
    cfg = ValidateConfig(
        processed_dir=str(processed),
        report_dir=str(tmp_path / "r"),
        splits=("train", "val", "test", "extra"),
    )
    with pytest.raises(DataError):
        validate(cfg)
    failed = {n for n, r in _results(tmp_path / "r").items() if not r["success"]}
    assert failed == {
        "target within [-1, 1] (max)",
        "valid fraction",
        "depth_min not NaN",
        "every configured split non-empty",
        "depth dtype",
    }


def test_stage_exit_codes(processed: Path, tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    section = {"processed_dir": str(processed), "report_dir": str(tmp_path / "r")}
    params.write_text(yaml.safe_dump({"validate": section}))
    stage_main(["--params", str(params)])
    assert "checks passed" in capsys.readouterr().out
    stats = pd.read_csv(processed / "stats.csv")
    stats.iloc[:-1].to_csv(processed / "stats.csv", index=False)  # a frame without its row
    with pytest.raises(SystemExit) as exc:
        stage_main(["--params", str(params)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "stats rows == frames in shards" in err and "validation_report.md" in err
