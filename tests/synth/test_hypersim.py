"""The Hypersim-format generator writes what apple/ml-hypersim publishes, byte-deterministically."""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from depthcore.config import ConfigError, from_dict
from depthcore.synth.hypersim import SPLIT_COLUMNS, SynthConfig, generate_hypersim
from tests.helpers.hypersim_files import SMALL_SYNTH

REAL_TABLES = Path(__file__).resolve().parents[2] / "depthcore" / "resources" / "hypersim"
SMALL = SMALL_SYNTH


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("hypersim")
    return out, generate_hypersim(out, SMALL)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _h5(zf: zipfile.ZipFile, name: str) -> h5py.Dataset:
    return h5py.File(io.BytesIO(zf.read(name)), "r")["dataset"]


def test_zip_layout_and_hdf5_format_match_the_real_files(
    source: tuple[Path, list[Path]], fixtures_dir: Path
) -> None:
    out, zips = source
    assert [z.name for z in zips] == [f"ai_100_00{i}.zip" for i in range(1, 5)]
    real = h5py.File(
        fixtures_dir
        / "hypersim/ai_037_002/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5"
    )["dataset"]
    real_tiles = tuple(s // c for s, c in zip(real.shape, real.chunks, strict=True))
    with zipfile.ZipFile(zips[0]) as zf:
        names = set(zf.namelist())
        base = "ai_100_001/images/scene_cam_01"
        color = _h5(zf, f"{base}_final_hdf5/frame.0001.color.hdf5")
        depth = _h5(zf, f"{base}_geometry_hdf5/frame.0001.depth_meters.hdf5")
        entity = _h5(zf, f"{base}_geometry_hdf5/frame.0001.render_entity_id.hdf5")
        assert (color.shape, color.dtype) == ((24, 32, 3), np.float16)
        assert (depth.shape, depth.dtype, depth.compression) == (
            (24, 32),
            real.dtype,
            real.compression,
        )
        assert (entity.shape, entity.dtype) == ((24, 32), np.int16)
        assert tuple(s // c for s, c in zip(depth.shape, depth.chunks, strict=True)) == real_tiles
        d, e = depth[()], entity[()]
        assert np.array_equal(np.isnan(d), e == -1) and np.nanmin(d) > 0
        assert f"{base}_final_preview/frame.0001.tonemap.jpg" in names
        meta = zf.read("ai_100_001/_detail/metadata_scene.csv").decode().splitlines()
        assert meta[0] == "parameter_name,parameter_value"
        assert meta[1].startswith("meters_per_asset_unit,")
        positions = _h5(zf, "ai_100_001/_detail/cam_00/camera_keyframe_positions.hdf5")
        assert positions.shape == (2, 3)


def test_camera_table_has_the_real_columns_and_lens_shift(source: tuple[Path, list[Path]]) -> None:
    out, _ = source
    with gzip.open(REAL_TABLES / "metadata_camera_parameters.csv.gz", "rt") as f:
        real_columns = next(csv.reader(f))
    rows = _read_csv(out / "metadata_camera_parameters.csv")
    assert list(rows[0]) == real_columns
    assert [r["scene_name"] for r in rows] == [f"ai_100_00{i}" for i in range(1, 5)]
    shifted = [
        r for r in rows if float(r["M_cam_from_uv_02"]) != 0 or float(r["M_cam_from_uv_12"]) != 0
    ]
    assert len(shifted) == 2
    for r in rows:
        assert (r["settings_output_img_height"], r["settings_output_img_width"]) == ("24.0", "32.0")
        m00, m11 = float(r["M_cam_from_uv_00"]), float(r["M_cam_from_uv_11"])
        assert m11 == pytest.approx(m00 * 24 / 32)  # square pixels
        assert float(r["M_proj_00"]) == pytest.approx(1 / m00)


def test_split_partitions_by_scene_and_marks_exclusions(source: tuple[Path, list[Path]]) -> None:
    out, _ = source
    with gzip.open(REAL_TABLES / "metadata_images_split_scene_v1.csv.gz", "rt") as f:
        assert tuple(next(csv.reader(f))) == SPLIT_COLUMNS
    rows = _read_csv(out / "metadata_images_split_scene_v1.csv")
    included = [r for r in rows if r["included_in_public_release"] == "True"]
    by_scene = {r["scene_name"]: r["split_partition_name"] for r in included}
    assert sorted(by_scene.values()) == ["test", "train", "train", "val"]
    for r in included:
        assert by_scene[r["scene_name"]] == r["split_partition_name"]
    excluded = [r for r in rows if r["included_in_public_release"] == "False"]
    assert len(excluded) == 1 and excluded[0]["split_partition_name"] == ""
    assert excluded[0]["exclude_reason"].startswith("OUTSIDE VIEWING AREA")
    assert len(included) == 4 * 2 * 2


def test_expected_drops_really_fail_the_filters(source: tuple[Path, list[Path]]) -> None:
    out, _ = source
    drops = _read_csv(out / "synth_expected_drops.csv")
    assert sorted(d["reason"] for d in drops) == ["flat_wall", "window"]
    for d in drops:
        with zipfile.ZipFile(out / f"{d['scene_name']}.zip") as zf:
            folder = f"{d['scene_name']}/images/scene_{d['camera_name']}_geometry_hdf5"
            stem = f"{folder}/frame.{int(d['frame_id']):04d}"
            depth = _h5(zf, f"{stem}.depth_meters.hdf5")[()].astype(np.float32)
        if d["reason"] == "window":
            assert np.isnan(depth).mean() > 0.03
        else:
            assert np.nanmax(depth) - np.nanmin(depth) < 0.5


def test_generation_is_byte_deterministic_in_any_process_count(
    source: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    out, zips = source
    params = {**SMALL.__dict__, "exposure_range": list(SMALL.exposure_range), "workers": 2}
    again = generate_hypersim(tmp_path, from_dict(SynthConfig, params))  # two processes
    assert [z.read_bytes() for z in again] == [z.read_bytes() for z in zips]
    name = "metadata_images_split_scene_v1.csv"
    assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="val_scenes"):
        from_dict(SynthConfig, {"n_scenes": 2, "val_scenes": 1, "test_scenes": 1}, "synth")
    with pytest.raises(ConfigError, match="synth.frames_per_cam"):
        from_dict(SynthConfig, {"frames_per_cam": 3}, "synth")
