"""Sources end to end: generator -> downloader -> our readers, refetch of a corrupt transfer,
planar depth of an analytic wall through the reader, an empty scene zip."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from depthcore.data.hypersim.download import DownloadConfig, download
from depthcore.data.hypersim.preprocess import PreprocessConfig, preprocess
from depthcore.data.hypersim.reader import distance_to_planar, find_frames, load_frame
from depthcore.data.hypersim.tables import camera_matrix, load_camera_table, load_split_table
from depthcore.errors import DataError
from depthcore.synth.render import Camera, Light, Rect, Scene, default_M_cam_from_uv, render

# The real lens-shift camera of Hypersim scene ai_037_002 (metadata_camera_parameters.csv).
M_AI_037_002 = np.array(
    [
        [0.579607251426182, 0.0, -0.06955286861651404],
        [0.0, 0.4346865334657201, 0.09273312506660672],
        [-0.0, 0.004054126980668954, -1.003909173803896],
    ]
)


def _cfg(source: str, out: Path) -> DownloadConfig:
    return DownloadConfig(source=source, out_dir=str(out), backoff_s=0.01, workers=2)


@pytest.fixture(scope="module")
def raw(hypersim_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "raw"
    download(_cfg(f"file://{hypersim_source}", out))
    return out


def test_generated_scenes_read_back_by_our_readers(hypersim_source: Path, raw: Path) -> None:
    split = load_split_table(raw)
    cameras = load_camera_table(raw)
    with open(hypersim_source / "metadata_images_split_scene_v1.csv", newline="") as f:
        assert len(split) == len(list(csv.DictReader(f))) == 3 * 1 * 2
    for scene in sorted(split["scene_name"].unique()):
        M = camera_matrix(cameras, scene)
        frames = find_frames(raw, scene)
        assert len(frames) == 2
        for fid in frames:
            frame = load_frame(raw, fid, M)
            with h5py.File(fid.depth_path(raw)) as f:
                distance_HW = f["dataset"][()].astype(np.float32)
            with h5py.File(fid.entity_path(raw)) as f:
                surface_HW = f["dataset"][()] != -1
            assert frame.rgb_HW3.shape == (16, 16, 3) and frame.rgb_HW3.dtype == np.uint8
            np.testing.assert_array_equal(frame.valid_HW, surface_HW & np.isfinite(distance_HW))
            d, p = distance_HW[frame.valid_HW], frame.depth_HW[frame.valid_HW]
            assert (p <= d * (1 + 1e-6)).all() and (p > 0.5 * d).all()


def test_preprocess_drops_exactly_the_generators_expected_drops(
    hypersim_source: Path, raw: Path, tmp_path: Path
) -> None:
    stats = preprocess(
        PreprocessConfig(in_dir=str(raw), out_dir=str(tmp_path / "p"), resolution=(16, 16))
    )
    dropped = pd.read_csv(tmp_path / "p" / "dropped.csv")
    with open(hypersim_source / "synth_expected_drops.csv", newline="") as f:
        expected = [
            f"{d['scene_name']}/{d['camera_name']}/{int(d['frame_id']):04d}"
            for d in csv.DictReader(f)
        ]
    assert expected and dropped["key"].tolist() == expected
    assert len(stats) == 6 - len(expected)


def test_corrupt_transfer_fails_crc_and_is_refetched(
    hypersim_source: Path, raw: Path, tmp_path: Path
) -> None:
    out = tmp_path / "raw"
    first = download(_cfg(f"file://{hypersim_source}", out))
    entry = json.loads(first.manifest.read_text())["members"][3]
    target = out / entry["path"]
    good = target.read_bytes()
    with zipfile.ZipFile(hypersim_source / entry["zip"]) as zf:
        info = zf.getinfo(entry["path"])
        at = info.header_offset + 30 + len(info.filename) + len(info.extra)
    compressed = (hypersim_source / entry["zip"]).read_bytes()[at : at + info.compress_size]
    damaged = bytearray(compressed)
    damaged[len(damaged) // 2] ^= 0x40  # full-length .part whose bytes went bad in transit
    target.unlink()
    part = target.with_name(target.name + ".part")
    part.write_bytes(bytes(damaged))

    rerun = download(_cfg(f"file://{hypersim_source}", out))
    assert (rerun.fetched, rerun.bytes_transferred) == (1, entry["compressed_size"])
    assert target.read_bytes() == good and not part.exists()


def test_empty_scene_zip_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / "ai_900_001.zip", "w"):
        pass
    with pytest.raises(DataError) as exc:
        download(_cfg(f"file://{src}", tmp_path / "raw"))
    assert "ai_900_001.zip" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("M", [default_M_cam_from_uv(24, 16), M_AI_037_002])
def test_fronto_parallel_wall_gives_constant_planar_depth_through_the_reader(
    M: np.ndarray,
) -> None:
    wall = Rect((-50.0, -50.0, -3.25), (100.0, 0.0, 0.0), (0.0, 100.0, 0.0))
    light = (Light((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),)
    out = render(Scene((wall,), light), Camera(np.eye(3), np.zeros(3), M), 16, 24)
    assert out.distance_HW.max() > 1.1 * out.distance_HW.min()  # corners are further away
    planar_HW = distance_to_planar(out.distance_HW.astype(np.float32), M)
    np.testing.assert_allclose(planar_HW, np.full((16, 24), 3.25), rtol=1e-5)
