"""A stage (and ``depthart predict``) never deletes or overwrites what it reads.

Real folders, real stage processes: ``preprocess`` with ``out_dir`` equal to, a
symlink to, inside, or a parent of its ``in_dir`` (unrelated files next to it) is
refused with one line and every file is still there, byte for byte, afterwards; a
foreign folder at an output path is refused, never replaced.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from depthcore.cli import main as depthart
from depthcore.io import MARKER, UnsafeOutputError, atomic_path, protect, protected_inputs
from tests.helpers.checkpoints import random_rgb
from tests.helpers.reliability.crash_runs import REPO, stage_env, tree_digest
from tests.reliability.conftest import preprocess_run as _preprocess


def _copy_raw(raw: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(raw), str(dst)], check=True)
    return dst


def _refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("[preprocess]")]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: stage preprocess failed"), lines
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_out_dir_equal_to_in_dir_is_refused(raw: Path, tmp_path: Path) -> None:
    data = _copy_raw(raw, tmp_path / "data")
    before = tree_digest(data)
    proc = _preprocess(tmp_path, data, data)
    _refused(proc, "preprocess.out_dir", "preprocess.in_dir", "is the input")
    assert tree_digest(data) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml"]


def test_out_dir_parent_of_in_dir_keeps_everything(raw: Path, tmp_path: Path) -> None:
    """The case that deleted the whole parent, unrelated files included."""
    parent = tmp_path / "project"
    _copy_raw(raw, parent / "raw")
    (parent / "notes.txt").write_text("my thesis\n")
    (parent / "photos").mkdir()
    (parent / "photos" / "a.jpg").write_bytes(b"jpeg bytes")
    before = tree_digest(parent)
    proc = _preprocess(tmp_path, parent / "raw", parent)
    _refused(proc, "contains the input", "preprocess.in_dir")
    assert tree_digest(parent) == before


def test_out_dir_inside_or_symlinked_to_in_dir_is_refused(raw: Path, tmp_path: Path) -> None:
    data = _copy_raw(raw, tmp_path / "data")
    before = tree_digest(data)
    _refused(_preprocess(tmp_path, data, data / "processed"), "is inside the input")
    os.symlink(data, tmp_path / "link")
    _refused(_preprocess(tmp_path, data, tmp_path / "link"), "is the input")
    assert tree_digest(data) == before and (tmp_path / "link").is_symlink()


def test_foreign_folder_refused_own_output_replaced(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "processed"
    out.mkdir()
    (out / "precious.txt").write_text("not ours\n")
    _refused(_preprocess(tmp_path, raw, out), "not written by depthcore", MARKER)
    assert [p.name for p in out.iterdir()] == ["precious.txt"]
    (out / "precious.txt").unlink()  # an empty folder holds nothing to lose
    first = _preprocess(tmp_path, raw, out)
    assert first.returncode == 0, first.stderr
    assert (out / MARKER).is_file() and (out / "stats.csv").is_file()
    again = _preprocess(tmp_path, raw, out)  # our own previous output: replaced
    assert again.returncode == 0, again.stderr
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_atomic_path_rules(tmp_path: Path) -> None:
    """The library rules behind the stage checks, on their own."""
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "x.txt").write_text("input")
    with protected_inputs():
        protect("cfg.in_dir", inp)
        for target in (inp, inp / "x.txt", inp / "sub", tmp_path):
            with pytest.raises(UnsafeOutputError, match="cfg.in_dir"), atomic_path(target):
                pass
    with atomic_path(inp / "sub") as tmp:  # the scope ended: nothing protected any more
        tmp.mkdir()
    assert (inp / "sub" / MARKER).is_file() and (inp / "x.txt").read_text() == "input"
    (tmp_path / "afile").write_text("f")
    with (
        pytest.raises(UnsafeOutputError, match="exists as a file"),
        atomic_path(tmp_path / "afile") as tmp,
    ):
        tmp.mkdir()
    assert (tmp_path / "afile").read_text() == "f"


def test_other_stages_refuse_their_inputs(tmp_path: Path) -> None:
    """validate: report_dir inside processed_dir; evaluate: --out equal to a benchmark root."""
    processed = tmp_path / "processed"
    processed.mkdir()
    (processed / "keep.txt").write_text("k")
    params = {"validate": {"processed_dir": str(processed), "report_dir": str(processed)}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.validate", "--params", "params.yaml"],
        cwd=tmp_path, env=stage_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and "validate.report_dir" in proc.stderr, proc.stderr
    assert "is the input validate.processed_dir" in proc.stderr
    assert [p.name for p in processed.iterdir()] == ["keep.txt"]
    assert REPO.is_dir()


def _predict(capsys, *argv: str) -> tuple[int, str]:
    code = depthart(["predict", "-q", "--device", "cpu", "--outputs", "npy,png", *argv])
    return code, capsys.readouterr().err


def test_predict_never_reads_its_own_outputs(tmp_path, tiny_checkpoint, capsys) -> None:
    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    Image.fromarray(random_rgb(16, 20)).save(photos / "a.png")
    Image.fromarray(random_rgb(18, 14, seed=1)).save(photos / "trip" / "b.png")
    model = ["--model", str(tiny_checkpoint)]
    for _ in range(2):  # the second run finds the first run's outputs in the input tree
        code, err = _predict(capsys, str(photos), "-r", "-o", str(photos / "depth"), *model)
        assert code == 0, err
    assert "wrote depth for 2 of 2 images" in err and "skipped 2 file(s)" in err
    assert not list((photos / "depth").rglob("*_depth_depth*"))
    code, err = _predict(capsys, str(photos), "-o", str(photos), *model)
    assert code == 1 and "is the input folder" in err and "Traceback" not in err
    # an output name that is another input image: that image is refused, not overwritten
    (tmp_path / "flat").mkdir()
    Image.fromarray(random_rgb(8, 8)).save(tmp_path / "flat" / "c.png")
    Image.fromarray(random_rgb(8, 8, seed=3)).save(tmp_path / "flat" / "c_depth.png")
    before = (tmp_path / "flat" / "c_depth.png").read_bytes()
    code, err = _predict(
        capsys,
        str(tmp_path / "flat" / "c.png"),
        str(tmp_path / "flat" / "c_depth.png"),
        "-o",
        str(tmp_path / "flat"),
        *model,
    )
    assert code == 1 and "is an input image; not overwritten" in err
    assert (tmp_path / "flat" / "c_depth.png").read_bytes() == before
    assert np.load(tmp_path / "flat" / "c_depth_depth.npy").shape == (8, 8)
