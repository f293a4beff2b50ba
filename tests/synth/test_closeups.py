"""Close-up views of furniture tops: clutter stands on the tops, cameras look down from close."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from depthcore.config import ConfigError, from_dict
from depthcore.synth.closeups import (
    CLUTTER,
    add_clutter,
    furniture_tops,
    sample_closeup_camera,
)
from depthcore.synth.hypersim import SynthConfig, generate_hypersim
from depthcore.synth.primitives import Box, Cylinder, Sphere
from depthcore.synth.render import Scene, default_M_cam_from_uv
from depthcore.synth.scenes import STYLES, inside, make_room
from tests.helpers.hypersim_files import SMALL_SYNTH

M = default_M_cam_from_uv(32, 24)


def _cluttered(seed: int, style: str = "hypersim") -> tuple[np.random.Generator, Scene]:
    rng = np.random.default_rng(seed)
    scene = make_room(rng, style)  # type: ignore[arg-type]
    return rng, add_clutter(np.random.default_rng([seed, 1]), scene)


def _bottom_and_centre(obj: Box | Sphere | Cylinder) -> tuple[float, np.ndarray]:
    if isinstance(obj, Box):
        return obj.center[2] - obj.half[2], np.asarray(obj.center)
    if isinstance(obj, Sphere):
        return obj.center[2] - obj.radius, np.asarray(obj.center)
    return obj.base[2], np.asarray(obj.base)


def test_clutter_stands_on_the_furniture_tops() -> None:
    for seed in range(10):
        _, scene = _cluttered(seed)
        tops = furniture_tops(scene)
        clutter = [o for o in scene.objects if o.label == CLUTTER]
        assert tops and len(clutter) >= 2 * len(tops)
        for obj in clutter:
            assert isinstance(obj, Box | Sphere | Cylinder)
            bottom, centre_3 = _bottom_and_centre(obj)
            size = max(obj.half) if isinstance(obj, Box) else obj.radius
            assert size <= 0.15
            # standing on some top: resting at its height, above its footprint
            assert any(
                abs(bottom - t.center_3[2]) < 1e-9
                and np.hypot(*(centre_3 - t.center_3)[:2]) < np.hypot(t.half_x, t.half_y)
                for t in tops
            ), obj


def test_a_room_without_tops_gets_a_table() -> None:
    rng = np.random.default_rng(0)
    bare = make_room(rng, "hypersim")
    bare = Scene(
        tuple(o for o in bare.objects if not isinstance(o, Box)),
        bare.lights,
        eye_min=bare.eye_min,
        eye_max=bare.eye_max,
    )
    assert furniture_tops(bare) == []
    with pytest.raises(ValueError, match="without furniture tops"):
        sample_closeup_camera(rng, bare, M)
    scene = add_clutter(rng, bare)
    assert [o.label for o in scene.objects if isinstance(o, Box) and o.label == "table"]
    assert len(furniture_tops(scene)) == 1
    sample_closeup_camera(rng, scene, M)


@pytest.mark.parametrize("style", STYLES)
def test_closeup_camera_looks_down_at_a_top_from_close(style: str) -> None:
    for seed in range(15):
        rng, scene = _cluttered(seed, style)
        tops = furniture_tops(scene)
        cam = sample_closeup_camera(rng, scene, M)
        eye_3, forward_3 = cam.position, -cam.R_world_from_cam[:, 2]
        pitch = np.degrees(np.arcsin(-forward_3[2]))
        assert 30.0 - 1e-6 <= pitch <= 70.0 + 1e-6
        assert not any(inside(obj, eye_3, 0.1) for obj in scene.objects)
        # the optical axis meets a top's plane 0.4-1.2 m away, within that top
        hits = []
        for t in tops:
            dist = (eye_3[2] - t.center_3[2]) / -forward_3[2]
            p_3 = eye_3 + dist * forward_3
            c, s = np.cos(t.yaw), np.sin(t.yaw)
            rel = p_3 - t.center_3
            local = (c * rel[0] + s * rel[1], -s * rel[0] + c * rel[1])
            if abs(local[0]) <= t.half_x and abs(local[1]) <= t.half_y:
                hits.append(dist)
        assert any(0.4 - 1e-6 <= d <= 1.2 + 1e-6 for d in hits), (style, seed)


SMALL = SMALL_SYNTH


def _views(zip_path: Path, camera: str) -> tuple[list[float], np.ndarray]:
    """Median valid distance of each frame of ``camera`` and its orientations ``(F, 3, 3)``."""
    name = zip_path.stem
    with zipfile.ZipFile(zip_path) as zf:
        geo = f"{name}/images/scene_{camera}_geometry_hdf5"
        stems = sorted(n for n in zf.namelist() if n.startswith(geo) and "depth_meters" in n)
        medians = []
        for stem in stems:
            depth_HW = h5py.File(io.BytesIO(zf.read(stem)))["dataset"][()].astype(np.float32)
            medians.append(float(np.nanmedian(depth_HW)))
        raw = zf.read(f"{name}/_detail/{camera}/camera_keyframe_orientations.hdf5")
        R_F33 = h5py.File(io.BytesIO(raw))["dataset"][()]  # noqa: N806
    return medians, R_F33


def test_the_last_cameras_are_close_ups(tmp_path: Path) -> None:
    cfg = from_dict(SynthConfig, {**SMALL.__dict__, "closeup_cameras": 1}, "synth")
    zips = generate_hypersim(tmp_path / "close", cfg)
    plain = generate_hypersim(tmp_path / "plain", SMALL)
    normal, close = [], []
    for z, z0 in zip(zips, plain, strict=True):
        med_room, R_room = _views(z, "cam_00")
        med_close, R_close = _views(z, "cam_01")
        assert len(med_close) == cfg.frames_per_camera
        # the clutter has its own random stream: the room cameras do not move
        assert np.array_equal(R_room, _views(z0, "cam_00")[1])
        pitch_F = np.degrees(np.arcsin(R_close[:, 2, 2]))  # -forward_z = R[2, 2]
        assert np.all((pitch_F > 29.9) & (pitch_F < 70.1)), pitch_F
        assert np.all(np.abs(np.degrees(np.arcsin(R_room[:, 2, 2]))) < 29.9)
        normal += med_room
        close += med_close
    assert np.median(close) < 0.5 * np.median(normal)
    assert max(close) < 2.0


def test_closeup_cameras_cannot_exceed_the_cameras() -> None:
    with pytest.raises(ConfigError, match="synth.closeup_cameras: 3 exceeds cameras_per_scene"):
        from_dict(SynthConfig, {"cameras_per_scene": 2, "closeup_cameras": 3}, "synth")
    assert from_dict(SynthConfig, {"cameras_per_scene": 2, "closeup_cameras": 2}, "synth")
