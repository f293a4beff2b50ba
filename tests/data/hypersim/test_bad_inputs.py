"""Each bad input through the whole preprocess run gives one line naming the file (or
frame), and the transforms' invariants hold on random inputs, not only by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from depthcore.data.hypersim.preprocess import PreprocessConfig, preprocess
from depthcore.data.hypersim.reader import FrameId
from depthcore.data.transforms import infill_nearest, invert_normalisation, normalise_depth
from depthcore.errors import DataError
from tests.helpers.hypersim_files import write_frame, write_h5, write_tables

GOOD = FrameId("ai_001_001", "cam_00", 0)
BAD = FrameId("ai_001_001", "cam_00", 1)


def _raw(tmp_path: Path) -> Path:
    """Two public train frames of one scene; the test then spoils ``BAD``."""
    root = tmp_path / "raw"
    for i, fid in enumerate((GOOD, BAD)):
        write_frame(root, fid, seed=i)
    write_tables(root, [(GOOD, True, "", "train"), (BAD, True, "", "train")])
    return root


def _run(raw: Path, out: Path) -> pd.DataFrame:
    return preprocess(
        PreprocessConfig(in_dir=str(raw), out_dir=str(out), resolution=(12, 16), workers=1)
    )


def _one_line_error(raw: Path, out: Path, file: Path, match: str) -> None:
    with pytest.raises(DataError) as exc:
        _run(raw, out)
    message = str(exc.value)
    assert "\n" not in message and str(file) in message and match in message, message
    assert not out.exists() and not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_corrupt_hdf5_is_one_line_naming_the_file(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    bad = BAD.color_path(raw)
    bad.write_bytes(bad.read_bytes()[:200])
    _one_line_error(raw, tmp_path / "out", bad, "unreadable or corrupt HDF5")


def test_wrong_shape_is_one_line_naming_the_file(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    bad = BAD.depth_path(raw)
    write_h5(bad, np.ones((5, 24, 32), np.float16))
    _one_line_error(raw, tmp_path / "out", bad, "expected 2-D data")
    write_h5(bad, np.ones((20, 32), np.float16))  # 2-D but not the colour's size
    _one_line_error(raw, tmp_path / "out", BAD.color_path(raw), "sizes differ")


def test_all_nan_depth_is_dropped_with_one_line_naming_the_frame(tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    write_h5(BAD.depth_path(raw), np.full((24, 32), np.nan, np.float16))
    stats = _run(raw, tmp_path / "out")
    assert stats["key"].tolist() == [GOOD.key]
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv")
    assert dropped[["key", "reason", "value"]].values.tolist() == [
        [BAD.key, "invalid_fraction", 1.0]
    ]
    assert "\n" not in dropped["detail"][0]


def test_empty_scene_is_one_line_naming_the_folder(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "ai_001_001" / "images").mkdir(parents=True)
    write_tables(raw, [(GOOD, True, "", "train")])
    with pytest.raises(DataError) as exc:
        _run(raw, tmp_path / "out")
    message = str(exc.value)
    assert "\n" not in message and str(raw / "ai_001_001") in message, message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", range(5))
def test_infill_never_touches_valid_pixels_random(seed: int) -> None:
    rng = np.random.default_rng(seed)
    depth_HW = rng.uniform(0.5, 20.0, (17, 23)).astype(np.float32)
    valid_HW = rng.uniform(size=(17, 23)) < rng.uniform(0.05, 0.95)
    valid_HW[rng.integers(17), rng.integers(23)] = True
    depth_HW[~valid_HW] = rng.choice([np.nan, np.inf, 0.0, -1.0], size=int((~valid_HW).sum()))
    filled_HW = infill_nearest(depth_HW, valid_HW)
    np.testing.assert_array_equal(filled_HW[valid_HW], depth_HW[valid_HW])
    assert np.isfinite(filled_HW).all()
    assert set(np.unique(filled_HW[~valid_HW])) <= set(np.unique(depth_HW[valid_HW]))


@pytest.mark.parametrize("seed", range(5))
def test_sqrt_disparity_round_trip_random(seed: int) -> None:
    rng = np.random.default_rng(seed)
    depth_HW = np.exp(rng.uniform(np.log(0.3), np.log(60.0), (19, 13))).astype(np.float32)
    valid_HW = rng.uniform(size=(19, 13)) < 0.9
    target_HW, norm = normalise_depth(depth_HW, valid_HW, "sqrt_disparity", (0.0, 100.0))
    assert target_HW[valid_HW].min() == pytest.approx(-1.0, abs=1e-5)
    assert target_HW[valid_HW].max() == pytest.approx(1.0, abs=1e-5)
    # Nearer is larger in sqrt-disparity space: the order of depths is reversed.
    order = np.argsort(depth_HW[valid_HW])
    assert (np.diff(target_HW[valid_HW][order]) <= 1e-6).all()
    inside = valid_HW | ((target_HW > -1) & (target_HW < 1))
    np.testing.assert_allclose(
        invert_normalisation(target_HW, norm)[inside], depth_HW[inside], rtol=1e-4
    )
