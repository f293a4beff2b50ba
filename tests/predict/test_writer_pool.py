"""``depthart predict`` writing outputs on a thread pool: the same files as the serial path,
errors per image in the serial order, an image's files all or none (issue 28)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from depthcore import viz as vis
from depthcore.cli import main
from depthcore.cli.common import module_doc
from depthcore.cli.writer import OutputWriter
from tests.helpers.checkpoints import random_rgb


def _photos(folder: Path, names: list[str]) -> None:
    folder.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(random_rgb(24 + 4 * i, 40 - 2 * i, seed=i)).save(folder / name)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))}


def _predict(capsys, src: Path, out: Path, ckpt: Path, writers: int, *extra: str) -> tuple:
    code = main(
        ["predict", "-q", "--device", "cpu", str(src), "-o", str(out), "--model", str(ckpt)]
        + ["--writers", str(writers), *extra]
    )
    return code, capsys.readouterr().err


def test_pool_writes_the_serial_bytes(tmp_path, tiny_checkpoint, capsys) -> None:
    src = tmp_path / "in"
    _photos(src, [f"img{i}.png" for i in range(5)] + ["img10.png"])  # img1* also matches img10
    extra = ("--batch-size", "2", "--ply", "--scales", "--samples", "2")
    code, err = _predict(capsys, src, tmp_path / "serial", tiny_checkpoint, 0, *extra)
    assert code == 0 and "wrote depth for 6 of 6" in err, err
    code, err = _predict(capsys, src, tmp_path / "pool", tiny_checkpoint, 3, *extra)
    assert code == 0 and "wrote depth for 6 of 6" in err, err
    serial, pool = _tree(tmp_path / "serial"), _tree(tmp_path / "pool")
    assert len(serial) == 6 * 7  # npy, png, colour, ply, scales, std npy and png
    assert serial.keys() == pool.keys()
    assert [name for name in serial if serial[name] != pool[name]] == []


def test_write_error_fails_one_image_in_the_serial_order(tmp_path, tiny_checkpoint, capsys) -> None:
    # A stem whose .npy/.png temporaries fit the 255-byte name limit but whose colour PNG's
    # does not: the image's first two files are written, the third fails with an OSError.
    stem = "a" * (255 - len(f"._depth.npy.tmp-{os.getpid()}"))
    src = tmp_path / "in"
    _photos(src, [f"{stem}.png", "c.png", "d.png"])
    (src / "b.png").write_bytes(b"not an image")
    for writers in (0, 2):
        out = tmp_path / f"out{writers}"
        code, err = _predict(capsys, src, out, tiny_checkpoint, writers, "--batch-size", "1")
        assert code == 1 and "wrote depth for 2 of 4" in err, err
        summary = err.split("2 failed:\n")[1].splitlines()
        assert summary[0].startswith(f"  {src / stem}.png: cannot write outputs: ")
        assert "File name too long" in summary[0]
        assert summary[1].startswith(f"  {src / 'b.png'}: cannot read image")
        names = sorted(p.name for p in out.iterdir())  # the long stem: none of its files
        assert names == [
            f"{s}{x}" for s in "cd" for x in ("_depth.npy", "_depth.png", "_depth_color.png")
        ]


@pytest.mark.parametrize("cmap", ["turbo", "gray", "viridis"])
def test_colorize_table_matches_the_colour_map(cmap: str) -> None:
    """The lookup table gives matplotlib's own colours (rounded to 8 bits) per pixel."""
    depth_HW = np.random.default_rng(0).random((50, 70)).astype(np.float32) + 0.5
    depth_HW[0, :3] = (np.nan, np.inf, -np.inf)
    lo, hi = np.percentile(depth_HW[np.isfinite(depth_HW)], (2.0, 98.0))
    t = 1.0 - np.clip((depth_HW.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0)
    want = (colormaps[cmap](np.nan_to_num(t))[..., :3] * 255.0 + 0.5).astype(np.uint8)
    want[0, :3] = 0
    assert np.array_equal(vis.colorize(depth_HW, cmap=cmap), want)


@pytest.mark.parametrize("name", ["depthcore.predict.metric", "depthcore.tracking.lineage"])
def test_help_texts_read_without_import_are_the_docstrings(name: str) -> None:
    """The parser's help of the lazily imported commands is their module's own docstring."""
    assert module_doc(name) == importlib.import_module(name).__doc__


def test_predict_start_loads_no_tracking_registry_or_lineage() -> None:
    """What only ``lineage``/``profile`` use stays unloaded in a predict run's start-up."""
    code = "import sys, depthcore.cli; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    lazy = ["depthcore.tracking.lineage", "depthcore.tracking.registry", "depthcore.profiles"]
    assert "depthcore.cli.predict" in loaded and not set(lazy) & set(loaded)


@pytest.mark.parametrize("workers", [0, 2])
def test_interrupted_image_keeps_no_files_and_the_pool_stops(tmp_path, workers: int) -> None:
    """Ctrl-C inside one image's writes: its new files go, a finished image's stay, an
    older file of the interrupted image stays, and no thread writes after close()."""
    writer: OutputWriter[int] = OutputWriter(workers, max_pending=8)
    first, second = [tmp_path / "a_1", tmp_path / "a_2"], [tmp_path / "b_1", tmp_path / "b_2"]
    second[1].write_text("from an earlier run")

    def whole() -> None:
        for path in first:
            path.write_text("done")

    def interrupted_after_one_file() -> None:
        second[0].write_text("new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        writer.submit(1, first, whole)
        writer.submit(2, second, interrupted_after_one_file)
        writer.drain()
    writer.close()
    assert all(p.read_text() == "done" for p in first)
    assert not second[0].exists() and second[1].read_text() == "from an earlier run"
