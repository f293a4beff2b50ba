"""``python -m stages.synth`` then ``python -m stages.download`` on a tiny params file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stages import download as download_stage
from stages import synth as synth_stage

PARAMS = {
    "synth": {
        "out_dir": "data/source/hypersim",
        "n_scenes": 3,
        "cameras_per_scene": 1,
        "frames_per_camera": 2,
        "height": 16,
        "width": 16,
        "window_views": 1,
        "flat_views": 0,
    },
    "download": {"source": "file://data/source/hypersim", "out_dir": "data/raw/hypersim"},
}


def test_synth_then_download_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump(PARAMS))
    synth_stage.main(["--params", "params.yaml"])
    assert sorted(p.name for p in Path("data/source/hypersim").glob("*.zip")) == [
        "ai_100_001.zip",
        "ai_100_002.zip",
        "ai_100_003.zip",
    ]
    download_stage.main(["--params", "params.yaml"])
    manifest = json.loads(Path("data/raw/hypersim/download_manifest.json").read_text())
    # 3 scenes x 2 frames x 3 kinds + 3 scene metadata, + 2 excluded frames (cam_01) x 3 kinds
    assert len(manifest["members"]) == 3 * 2 * 3 + 3 + 2 * 3
    assert Path("data/raw/hypersim/metadata_images_split_scene_v1.csv").is_file()
    assert "download: 27 members (27 fetched" in capsys.readouterr().out
    assert not list(tmp_path.rglob(".*tmp-*"))  # atomic writes leave no temporaries


def test_stage_reports_bad_params_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(yaml.safe_dump({"download": {"sorce": "file://x"}}))
    with pytest.raises(SystemExit) as exc:
        download_stage.main(["--params", "params.yaml"])
    assert exc.value.code == 1
    Path("params.yaml").write_text(yaml.safe_dump({"download": {"source": "ftp://x"}}))
    with pytest.raises(SystemExit):
        download_stage.main(["--params", "params.yaml"])
