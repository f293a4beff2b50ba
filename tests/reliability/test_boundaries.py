"""Every numeric input checked where it enters, with the file / key / option named.

``depthart align`` points and maps, ``depthart`` options, folder-dataset manifests
(values, paths that leave the folder, 8-bit depth PNGs), params files with a key
given twice, and a SQLite file at the MLflow tracking path that MLflow did not make.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from depthcore.cli import main as depthart
from depthcore.config import ConfigError, read_params
from depthcore.data.folder import read_depth, read_manifest
from depthcore.errors import DataError
from depthcore.run_logger import MlflowLogger, TrackingError, resolve_tracking_uri
from stages.preprocess import main as preprocess_main


def _align(capsys, tmp_path: Path, depth_HW: np.ndarray, points: str) -> tuple[int, str]:
    np.save(tmp_path / "d.npy", depth_HW.astype(np.float32))
    (tmp_path / "p.csv").write_text(points)
    argv = ["align", str(tmp_path / "d.npy"), "--points", str(tmp_path / "p.csv")]
    code = depthart([*argv, "-o", str(tmp_path / "m.npy")])
    return code, capsys.readouterr().err


def test_align_refuses_non_finite_points_and_maps(tmp_path: Path, capsys) -> None:
    depth_HW = np.linspace(1.0, 3.0, 64, dtype=np.float32).reshape(8, 8)
    code, err = _align(capsys, tmp_path, depth_HW, "x,y,depth\n1,1,2.0\n5,5,nan\n")
    assert code == 1 and "p.csv: line 3: depth must be positive metres, got 'nan'" in err
    code, err = _align(capsys, tmp_path, depth_HW, "x,y,depth\n1,1,2.0\n5,5,inf\n")
    assert code == 1 and "p.csv: line 3" in err
    depth_HW[5, 5] = np.nan
    code, err = _align(capsys, tmp_path, depth_HW, "x,y,depth\n1,1,2.0\n5,5,4.0\n")
    assert code == 1 and "d.npy with" in err and "no valid depth" in err and "(5, 5)" in err
    assert not (tmp_path / "m.npy").exists()
    before = (tmp_path / "d.npy").read_bytes()  # -o onto the input map: refused, kept
    argv = ["align", str(tmp_path / "d.npy"), "--points", str(tmp_path / "p.csv")]
    assert depthart([*argv, "-o", str(tmp_path / "d.npy")]) == 1
    assert "-o " in capsys.readouterr().err and (tmp_path / "d.npy").read_bytes() == before
    depth_HW[5, 5] = 2.5  # the same inputs, fixed: aligned and written
    code, err = _align(capsys, tmp_path, depth_HW, "x,y,depth\n1,1,2.0\n5,5,4.0\n")
    assert code == 0 and np.isfinite(np.load(tmp_path / "m.npy")).all(), err


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["predict", "a.png", "-o", "out", "--fov", "0"], "--fov"),
        (["predict", "a.png", "-o", "out", "--fov", "nan"], "--fov"),
        (["predict", "a.png", "-o", "out", "--fov", "inf"], "--fov"),
        (["predict", "a.png", "-o", "out", "--fov", "180"], "--fov"),
        (
            ["align", "d.npy", "--points", "p.csv", "-o", "m.npy", "--max-depth", "-1"],
            "--max-depth",
        ),
        (
            ["align", "d.npy", "--points", "p.csv", "-o", "m.npy", "--max-depth", "nan"],
            "--max-depth",
        ),
    ],
)
def test_options_checked_before_anything_is_written(
    argv, option, tmp_path, monkeypatch, capsys
) -> None:  # noqa: E501
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save("a.png")
    with pytest.raises(SystemExit) as info:
        depthart(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"argument {option}: must be a finite number" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no output, no mlflow.db


def _manifest(root: Path, doc: dict | str, depth: np.ndarray | None = None) -> None:
    (root / "rgb").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "rgb" / "a.png")
    Image.fromarray(np.full((6, 8), 1000, np.uint16) if depth is None else depth).save(
        root / "depth" / "a.png"
    )
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    (root / "manifest.yaml").write_text(text)


FRAME = {"rgb": "rgb/a.png", "depth": "depth/a.png"}


@pytest.mark.parametrize(
    ("settings", "frame", "message"),
    [
        ({"min_depth": 5.0, "max_depth": 1.0}, {}, "min_depth 5 must be below max_depth 1"),
        ({"min_depth": "near"}, {}, "manifest.yaml: min_depth: expected a number, got 'near'"),
        ({"min_depth": float("nan")}, {}, "min_depth: must be a finite number >= 0"),
        ({"max_depth": float("inf")}, {}, "max_depth: must be a finite positive number"),
        ({"depth_scale": -0.001}, {}, "frame 0: depth_scale: must be a finite positive"),
        ({}, {"depth": "../outside/a.png"}, "frame 0: depth: path '../outside/a.png' leaves"),
        ({}, {"rgb": "/etc/passwd.png"}, "frame 0: rgb: path '/etc/passwd.png' leaves"),
        ({}, {"mask": "../../m.png"}, "frame 0: mask: path '../../m.png' leaves"),
    ],
)
def test_manifest_values_and_paths(tmp_path: Path, settings, frame, message) -> None:
    _manifest(tmp_path, {"depth_scale": 0.001, **settings, "frames": [{**FRAME, **frame}]})
    with pytest.raises(DataError) as info:
        read_manifest(tmp_path)
    assert message in str(info.value) and "manifest.yaml" in str(info.value)


def test_manifest_symlink_out_of_the_folder_and_duplicate_key(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    _manifest(root, {"depth_scale": 0.001, "frames": [FRAME]})
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((6, 8), 7, np.uint16)).save(secret)
    os.symlink(secret, root / "depth" / "link.png")
    _manifest(root, {"depth_scale": 0.001, "frames": [{**FRAME, "depth": "depth/link.png"}]})
    with pytest.raises(DataError, match="depth: path 'depth/link.png' leaves the dataset folder"):
        read_manifest(root)
    _manifest(root, "depth_scale: 0.001\ndepth_scale: 1.0\nframes: []\n")
    with pytest.raises(DataError, match=r"manifest.yaml: duplicate key 'depth_scale' at line 2"):
        read_manifest(root)


def test_depth_png_must_be_16_bit(tmp_path: Path) -> None:
    _manifest(tmp_path, {"depth_scale": 0.01, "frames": [FRAME]}, np.full((6, 8), 90, np.uint8))
    (frame,) = read_manifest(tmp_path).frames
    with pytest.raises(
        DataError,
        match=r"depth/a.png: depth PNG must be single-channel 16-bit, got mode L \(8-bit\)",
    ):  # noqa: E501
        read_depth(frame.depth, frame.depth_scale)
    Image.fromarray(np.full((6, 8), 1000, np.uint16)).save(frame.depth)
    assert read_depth(frame.depth, frame.depth_scale)[0, 0] == pytest.approx(10.0)


def test_params_with_a_duplicate_key_refused(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("preprocess:\n  in_dir: raw\n  workers: 1\n  workers: 4\n")
    with pytest.raises(
        ConfigError, match=r"params.yaml: duplicate key 'workers' at line 4 \(first at line 3\)"
    ):  # noqa: E501
        read_params("params.yaml")
    with pytest.raises(SystemExit) as info:
        preprocess_main(["--params", "params.yaml"])
    assert info.value.code == 1 and "duplicate key 'workers'" in capsys.readouterr().err


def _foreign_db(path: Path) -> bytes:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    con.execute("INSERT INTO invoices (amount) VALUES (12.5)")
    con.commit()
    con.close()
    return path.read_bytes()


def test_foreign_sqlite_or_other_file_at_mlflow_db_is_never_touched(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "mlflow.db"
    before = _foreign_db(db)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save("a.png")
    assert depthart(["predict", "a.png", "-o", "out", "-q"]) == 1  # the champion of ./mlflow.db
    err = capsys.readouterr().err
    assert f"{db}: an SQLite database that is not an MLflow store" in err
    for attempt in (
        lambda: resolve_tracking_uri("sqlite:///mlflow.db"),
        lambda: MlflowLogger("sqlite:///mlflow.db", "depthart"),
    ):
        with pytest.raises(TrackingError, match="not an MLflow store"):
            attempt()
    assert db.read_bytes() == before and not Path("out").exists()
    db.write_text("my notes, not a database\n")
    assert depthart(["predict", "a.png", "-o", "out", "-q"]) == 1
    assert f"{db}: not an SQLite database" in capsys.readouterr().err
    assert db.read_text() == "my notes, not a database\n"
