"""The ray caster's geometry is exact: distances, planar depth, holes, ids, normals, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from depthcore.synth.render import (
    Box,
    Camera,
    Light,
    Rect,
    Scene,
    Sphere,
    default_M_cam_from_uv,
    pinhole_M_cam_from_uv,
    render,
)
from depthcore.synth.scenes import STYLES, make_room, sample_camera

# The real lens-shift camera of Hypersim scene ai_037_002 (metadata_camera_parameters.csv).
M_AI_037_002 = np.array(
    [
        [0.579607251426182, 0.0, -0.06955286861651404],
        [0.0, 0.4346865334657201, 0.09273312506660672],
        [-0.0, 0.004054126980668954, -1.003909173803896],
    ]
)
LIGHT = (Light((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),)


def _front_camera(M: np.ndarray) -> Camera:
    """At the origin, looking down world -z (camera frame == world frame)."""
    return Camera(np.eye(3), np.zeros(3), M)


@pytest.mark.parametrize("M", [default_M_cam_from_uv(24, 16), M_AI_037_002])
def test_plane_distance_and_planar_depth_are_exact(M: np.ndarray) -> None:
    wall = Rect((-50.0, -50.0, -5.0), (100.0, 0.0, 0.0), (0.0, 100.0, 0.0))
    out = render(Scene((wall,), LIGHT), _front_camera(M), 16, 24)
    rays_HW3 = _front_camera(M).rays_cam(16, 24)
    norm_HW = np.linalg.norm(rays_HW3, axis=-1)
    expected_HW = 5.0 * norm_HW / np.abs(rays_HW3[..., 2])
    np.testing.assert_allclose(out.distance_HW, expected_HW, rtol=1e-5)
    np.testing.assert_allclose(out.planar_HW, np.full((16, 24), 5.0), rtol=1e-5)
    np.testing.assert_allclose(
        out.planar_HW, out.distance_HW * np.abs(rays_HW3[..., 2]) / norm_HW, rtol=1e-6
    )
    np.testing.assert_allclose(out.normal_HW3, np.broadcast_to([0, 0, 1.0], (16, 24, 3)), atol=1e-6)
    assert (out.entity_HW == 0).all() and (out.plane_id_HW == 0).all()


def test_sphere_distance_matches_closed_form() -> None:
    centre, r = np.array([0.3, -0.2, -10.0]), 2.0
    cam = _front_camera(default_M_cam_from_uv(32, 32))
    out = render(Scene((Sphere(tuple(centre), r),), LIGHT), cam, 32, 32)
    d_HW3 = cam.rays_cam(32, 32)
    d_HW3 /= np.linalg.norm(d_HW3, axis=-1, keepdims=True)
    b_HW = d_HW3 @ centre
    disc_HW = b_HW**2 - centre @ centre + r * r
    hit = disc_HW >= 0
    assert 0.05 < hit.mean() < 0.95
    np.testing.assert_allclose(
        out.distance_HW[hit], (b_HW - np.sqrt(np.maximum(disc_HW, 0)))[hit], rtol=1e-5
    )
    assert np.isnan(out.distance_HW[~hit]).all() and (out.entity_HW[~hit] == -1).all()
    assert (out.plane_id_HW == -1).all()  # curved: no plane annotation


def test_window_has_no_surface() -> None:
    hole = (48.5, 48.5, 51.5, 51.5)  # a 3 m square opening in the middle of a 100 m wall
    wall = Rect((-50.0, -50.0, -5.0), (100.0, 0.0, 0.0), (0.0, 100.0, 0.0), holes=(hole,))
    out = render(Scene((wall,), LIGHT), _front_camera(default_M_cam_from_uv(16, 16)), 16, 16)
    none = out.entity_HW == -1
    assert none[8, 8] and not none[0, 0]
    assert np.isnan(out.distance_HW[none]).all() and np.isnan(out.planar_HW[none]).all()
    assert np.isnan(out.normal_HW3[none]).all() and (out.plane_id_HW[none] == -1).all()
    assert np.isfinite(out.hdr_HW3).all() and (out.hdr_HW3[none] > 0).all()  # sky radiance


def test_box_faces_get_plane_ids_and_exact_normals() -> None:
    floor = Rect((-20.0, -20.0, 0.0), (40.0, 0.0, 0.0), (0.0, 40.0, 0.0), label="floor")
    table = Box((4.0, 0.0, 0.5), (0.5, 1.0, 0.5), label="table")
    cam = Camera.look_at((0.0, 0.0, 2.5), (4.0, 0.0, 0.8), default_M_cam_from_uv(64, 48))
    scene = Scene((floor, table), (Light((3.0, 0.0, 3.0), (5.0, 5.0, 5.0), radius=0.3),))
    out = render(scene, cam, 48, 64)
    planes = {(p.label, p.face): p for p in scene.planes()}
    top, front = planes[("table", "top")], planes[("table", "-x")]
    for info in (top, front, planes[("floor", "front")]):
        m = out.plane_id_HW == info.plane_id
        assert m.sum() > 20, info
        expected_cam = cam.R_world_from_cam.T @ info.normal_3  # both faces face the camera
        np.testing.assert_allclose(
            out.normal_HW3[m], np.broadcast_to(expected_cam, (m.sum(), 3)), atol=1e-6
        )
        assert (out.entity_HW[m] == info.entity_id).all()


def test_soft_shadow_darkens_floor_under_box() -> None:
    floor = Rect((-5.0, -5.0, 0.0), (10.0, 0.0, 0.0), (0.0, 10.0, 0.0), label="floor")
    blocker = Box((0.0, 0.0, 1.5), (0.5, 0.5, 0.1))
    light = Light((0.0, 0.0, 3.0), (20.0, 20.0, 20.0), radius=0.2)
    cam = Camera.look_at((0.0, -3.0, 2.0), (0.0, 0.0, 0.0), default_M_cam_from_uv(64, 64))
    lit = render(Scene((floor,), (light,)), cam, 64, 64, shadow_samples=4)
    shadowed = render(Scene((floor, blocker), (light,)), cam, 64, 64, shadow_samples=4)
    floor_px = (shadowed.entity_HW == 0) & (lit.entity_HW == 0)
    ratio = shadowed.hdr_HW3[..., 0][floor_px] / lit.hdr_HW3[..., 0][floor_px]
    assert ratio.min() < 0.2 and np.quantile(ratio, 0.5) > 0.9


def test_pinhole_intrinsics_round_trip() -> None:
    M = pinhole_M_cam_from_uv(500.0, 510.0, 310.0, 250.0, 640, 480)
    cam = Camera(np.eye(3), np.zeros(3), M)
    K = cam.intrinsics(480, 640)
    np.testing.assert_allclose(K, [[500, 0, 310], [0, 510, 250], [0, 0, 1]], atol=1e-9)
    rays = cam.rays_cam(480, 640)  # pixel (row 250, col 310) is the principal point
    np.testing.assert_allclose(rays[250, 310], [0.0, 0.0, -1.0], atol=1e-12)
    with pytest.raises(ValueError, match="pinhole"):
        Camera(np.eye(3), np.zeros(3), M_AI_037_002).intrinsics(768, 1024)


@pytest.mark.parametrize("style", STYLES)
def test_styles_render_deterministically(style: str) -> None:
    M = default_M_cam_from_uv(48, 48)

    def frame(seed: int):
        rng = np.random.default_rng(seed)
        scene = make_room(rng, style)
        return render(scene, sample_camera(rng, scene, M), 48, 48, seed=seed)

    a, b, c = frame(7), frame(7), frame(8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.hdr_HW3, c.hdr_HW3)
    assert np.isfinite(a.hdr_HW3).all() and (a.hdr_HW3 >= 0).all()
    valid = a.entity_HW >= 0
    assert valid.mean() > 0.5
    assert np.isfinite(a.distance_HW[valid]).all() and (a.distance_HW[valid] > 0.05).all()


def test_style_depth_ranges_differ() -> None:
    """Desk close-ups are near, halls are far: the benchmarks are real distribution shifts."""
    M = default_M_cam_from_uv(32, 32)

    def median_depth(style: str) -> float:
        rng = np.random.default_rng(0)
        meds = []
        for _ in range(3):
            scene = make_room(rng, style)
            meds.append(
                np.nanmedian(render(scene, sample_camera(rng, scene, M), 32, 32).distance_HW)
            )
        return float(np.median(meds))

    assert median_depth("tum") < median_depth("hypersim") < median_depth("eth3d")


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scene style 'kitchen'"):
        make_room(np.random.default_rng(0), "kitchen")  # type: ignore[arg-type]
