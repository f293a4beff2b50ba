"""Small Hypersim-format download folders written with h5py, for the preprocess tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from depthcore.data.hypersim.reader import FrameId
from depthcore.synth.hypersim import SynthConfig

#: A 4-scene embedded source that renders in about a second (synth tests).
SMALL_SYNTH = SynthConfig(
    n_scenes=4,
    cameras_per_scene=2,
    frames_per_camera=2,
    height=24,
    width=32,
    val_scenes=1,
    test_scenes=1,
    lens_shift_scenes=2,
    window_views=1,
    flat_views=1,
    excluded_frames=1,
)

#: A 3-scene Hypersim-format source: the downloader tests' size.
SMALL_SOURCE = SynthConfig(
    n_scenes=3, cameras_per_scene=1, frames_per_camera=2, height=16, width=16, val_scenes=1,
    test_scenes=1, lens_shift_scenes=1, window_views=1, flat_views=0, excluded_frames=0,
)  # fmt: skip

SRC_H, SRC_W = 24, 32
M_DEFAULT = "0.5773502886169104,0.0,0.0,0.0,0.4330127164626828,0.0,0.0,0.0,-1.0"


def write_h5(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset", data=data, compression="gzip")


def write_frame(root: Path, fid: FrameId, kind: str = "good", seed: int = 0) -> None:
    """One frame: a textured room-like depth ramp; ``kind`` makes it fail one filter."""
    rng = np.random.default_rng(seed)
    rows_HW, cols_HW = np.mgrid[0:SRC_H, 0:SRC_W]
    distance_HW = 2.0 + 3.0 * rows_HW / SRC_H + 0.5 * np.sin(cols_HW / 3.0 + seed)
    hdr_HW3 = rng.uniform(0.05, 2.0, (SRC_H, SRC_W, 3)) * (1 + seed % 3)
    entity_HW = np.ones((SRC_H, SRC_W), np.int16)
    entity_HW[1, 1] = -1  # one hole (0.13%; nearest resizing samples it), infilled
    if kind == "holes":
        entity_HW[:4, :8] = -1  # 4% invalid
    elif kind == "flat":
        distance_HW = np.full((SRC_H, SRC_W), 1.0)  # planar range ~0.2 m
    elif kind == "dull":
        hdr_HW3 = np.full((SRC_H, SRC_W, 3), 0.7)
    distance_HW = np.where(entity_HW == -1, np.nan, distance_HW)
    write_h5(fid.color_path(root), hdr_HW3.astype(np.float16))
    write_h5(fid.depth_path(root), distance_HW.astype(np.float16))
    write_h5(fid.entity_path(root), entity_HW)


def write_tables(root: Path, rows: list[tuple[FrameId, bool, str, str]]) -> None:
    """The dataset-wide split and camera CSVs in the real column layout."""
    lines = [
        "scene_name,camera_name,frame_id,included_in_public_release,exclude_reason,"
        "split_partition_name"
    ]
    for fid, public, reason, split in rows:
        lines.append(f"{fid.scene},{fid.camera},{fid.frame},{public},{reason},{split}")
    (root / "metadata_images_split_scene_v1.csv").write_text("\n".join(lines) + "\n")
    names = ",".join(f"M_cam_from_uv_{i}{j}" for i in range(3) for j in range(3))
    scenes = sorted({fid.scene for fid, *_ in rows})
    cam = [f"scene_name,settings_output_img_height,settings_output_img_width,{names}"]
    cam += [f"{s},{SRC_H}.0,{SRC_W}.0,{M_DEFAULT}" for s in scenes]
    (root / "metadata_camera_parameters.csv").write_text("\n".join(cam) + "\n")


@pytest.fixture
def hypersim_dir(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a download folder with 3 scenes (train x2, val x1) and every drop reason."""

    def make(name: str = "raw") -> Path:
        root = tmp_path / name
        rows = []
        seed = 0
        for scene, split in (
            ("ai_001_001", "train"),
            ("ai_001_002", "train"),
            ("ai_002_001", "val"),
        ):
            for cam in ("cam_00", "cam_01"):
                for i in range(2):
                    fid = FrameId(scene, cam, i)
                    write_frame(root, fid, seed=seed)
                    rows.append((fid, True, "", split))
                    seed += 1
            (root / scene / "_detail").mkdir(parents=True, exist_ok=True)
            (root / scene / "_detail" / "metadata_scene.csv").write_text(
                "parameter_name,parameter_value\nmeters_per_asset_unit,0.0254\n"
            )
        for i, kind in enumerate(("holes", "flat", "dull"), start=10):
            fid = FrameId("ai_001_001", "cam_00", i)
            write_frame(root, fid, kind=kind, seed=i)
            rows.append((fid, True, "", "train"))
        hidden = FrameId("ai_001_002", "cam_00", 20)
        write_frame(root, hidden, seed=20)
        rows.append((hidden, False, "CONTENT FLAGGED FOR REMOVAL", ""))
        write_frame(root, FrameId("ai_002_001", "cam_00", 30), seed=30)  # not in the table
        test_only = FrameId("ai_002_001", "cam_01", 40)
        write_frame(root, test_only, seed=40)
        rows.append((test_only, True, "", "test"))
        write_tables(root, rows)
        return root

    return make
