"""Generated benchmark sets: read back by the real readers, deterministic, exact planes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from depthcore.data.benchmarks.nyu import NYU_FILE
from depthcore.data.benchmarks.registry import make_reader
from depthcore.data.benchmarks.tum import read_file_list
from depthcore.errors import DepthcoreError
from depthcore.synth.benchmarks import BENCHMARKS, generate_benchmark

N, H, W = 3, 48, 64


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    return {name: generate_benchmark(name, root / name, N, 7, H, W) for name in BENCHMARKS}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", BENCHMARKS)
def test_reader_reads_every_generated_frame(generated, name):
    reader = make_reader(name, generated[name], **({"crop": "none"} if name == "nyu" else {}))
    assert len(reader) == N
    for sample in reader:
        assert sample.rgb_HW3.shape == (H, W, 3) and sample.rgb_HW3.dtype == np.uint8
        assert sample.depth_HW.shape == (H, W) and sample.depth_HW.dtype == np.float32
        assert sample.valid_HW.mean() > 0.5
        assert sample.rgb_HW3.std() > 5  # a rendered picture, not a flat fill


def test_distribution_shifts_between_benchmarks(generated):
    def median_depth(name: str) -> float:
        return float(
            np.median(
                [np.median(s.depth_HW[s.valid_HW]) for s in make_reader(name, generated[name])]
            )
        )

    assert median_depth("tum") < 3.0  # desk close-ups
    assert median_depth("eth3d") > 2 * median_depth("nyu")  # halls are far
    eth3d = list(make_reader("eth3d", generated["eth3d"]))
    assert max(s.depth_HW.max() for s in eth3d) > 10.0
    assert all(not s.valid_HW.all() for s in eth3d)  # inf holes


def test_nyu_has_white_frame_and_a_split_that_skips_frames(generated):
    sample = make_reader("nyu", generated["nyu"], crop="none")[0]
    assert np.all(sample.rgb_HW3[0] == 255) and np.all(sample.rgb_HW3[:, -1] == 255)
    with h5py.File(generated["nyu"] / NYU_FILE, "r") as f:
        assert f["images"].shape[0] > N
    assert not np.all(make_reader("nyu", generated["nyu"])[0].rgb_HW3[0] == 255)


def test_tum_lists_are_unsynchronised_but_pair_up(generated):
    (seq,) = sorted(p.parent for p in generated["tum"].glob("*/rgb.txt"))
    rgb, depth = read_file_list(seq / "rgb.txt"), read_file_list(seq / "depth.txt")
    assert len(rgb) == len(depth) == N + 1  # one unpaired frame of each kind
    assert {t for t, _ in rgb}.isdisjoint(t for t, _ in depth)
    items = make_reader("tum", generated["tum"]).items
    assert [i.files[0].name for i in items] == [Path(f).name for _, f in rgb[:N]]
    assert [i.files[1].name for i in items] == [Path(f).name for _, f in depth[1:]]


def test_ibims_planes_are_exact(generated):
    """Back-projected plane pixels lie on the annotated plane: this checks the depth, the
    intrinsics convention (a 1 px principal-point error shears the points off it) and the
    normal conversion together."""
    checked = 0
    for sample in make_reader("ibims", generated["ibims"]):
        K = sample.intrinsics_33
        rows_HW, cols_HW = np.mgrid[0:H, 0:W]
        z_HW = sample.depth_HW.astype(np.float64)
        points_HW3 = np.stack(
            [(cols_HW - K[0, 2]) / K[0, 0] * z_HW, (rows_HW - K[1, 2]) / K[1, 1] * z_HW, z_HW], -1
        )
        for mask_HW, normal_3 in zip(sample.plane_masks, sample.plane_normals, strict=True):
            if mask_HW.sum() < 30:
                continue
            offsets = points_HW3[mask_HW] @ normal_3
            assert offsets.std() < 1e-5 * z_HW[mask_HW].mean() + 1e-6
            checked += 1
    assert checked >= N


def test_deterministic_and_atomic(tmp_path, generated):
    again = generate_benchmark("nyu", tmp_path / "nyu", N, 7, H, W)
    assert _digest(again) == _digest(generated["nyu"])
    (tmp_path / "nyu" / "stale.txt").write_text("old")
    generate_benchmark("nyu", tmp_path / "nyu", N, 8, H, W)
    assert not (tmp_path / "nyu" / "stale.txt").exists()
    assert _digest(tmp_path / "nyu") != _digest(generated["nyu"])
    assert [p.name for p in tmp_path.iterdir()] == ["nyu"]  # no temporary left behind


def test_bad_arguments():
    with pytest.raises(DepthcoreError, match="unknown benchmark 'kitti'"):
        generate_benchmark("kitti", "unused")
    with pytest.raises(DepthcoreError, match="at least 16x16"):
        generate_benchmark("tum", "unused", height=8)
