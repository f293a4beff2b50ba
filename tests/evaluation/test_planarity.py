"""iBims-1 planarity and depth boundary errors on synthetic planes and steps."""

from __future__ import annotations

import numpy as np
import pytest

from depthcore.evaluation.planarity import DBE_MAX_DIST, boundary_errors, canny, planarity

H, W = 48, 64
K_33 = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])


def plane_depth(normal_3: np.ndarray, offset: float) -> np.ndarray:
    """z-depth of the plane ``n . X = offset`` seen through K_33 (OpenCV frame)."""
    v_HW, u_HW = np.mgrid[0:H, 0:W].astype(float)
    rays_HW3 = np.stack(
        [(u_HW - K_33[0, 2]) / K_33[0, 0], (v_HW - K_33[1, 2]) / K_33[1, 1], np.ones((H, W))], -1
    )
    return offset / (rays_HW3 @ normal_3)


def rot_y(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


NORMAL_3 = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
FULL_P = np.ones((1, H, W), bool)


def test_perfect_plane_scores_zero() -> None:
    gt = plane_depth(NORMAL_3, 3.0)
    fla, ori = planarity(2.0 * gt, gt, FULL_P, NORMAL_3[None], K_33)  # scale is free
    assert fla[0] == pytest.approx(0.0, abs=1e-6)
    assert ori[0] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rotated_plane_gives_the_rotation_angle(sign: float) -> None:
    normal_3 = np.array([0.3, 0.0, 1.0]) / np.linalg.norm([0.3, 0.0, 1.0])  # _|_ to the y axis
    gt = plane_depth(normal_3, 3.0)
    pred = plane_depth(rot_y(10.0) @ normal_3, 3.0)
    fla, ori = planarity(pred, gt, FULL_P, sign * normal_3[None], K_33)
    assert fla[0] == pytest.approx(0.0, abs=1e-6)
    assert ori[0] == pytest.approx(10.0, abs=1e-6)


def test_two_layer_prediction_flatness_is_half_the_gap() -> None:
    # gt: fronto-parallel wall at 2 m; pred alternates 2.0 / 2.1 m on a checkerboard.
    gt = np.full((H, W), 2.0)
    checker = (np.add.outer(np.arange(H), np.arange(W)) % 2).astype(bool)
    pred = np.where(checker, 2.1, 2.0)
    fla, ori = planarity(pred, gt, FULL_P, np.array([[0.0, 0.0, 1.0]]), K_33)
    scale = 2.0 / 2.05  # median(gt) / median(pred) inside the plane
    assert fla[0] == pytest.approx(100 * 0.05 * scale, rel=1e-6)
    assert ori[0] == pytest.approx(0.0, abs=1e-6)


def test_small_planes_are_not_scored() -> None:
    gt = plane_depth(NORMAL_3, 3.0)
    masks = np.zeros((2, H, W), bool)
    masks[0, :, :32] = True  # half the image
    masks[1, :5, :5] = True  # < 5%
    fla, ori = planarity(gt, gt, masks, np.stack([NORMAL_3, NORMAL_3]), K_33)
    assert np.isfinite(fla[0]) and np.isfinite(ori[0])
    assert np.isnan(fla[1]) and np.isnan(ori[1])
    with pytest.raises(ValueError, match="normals"):
        planarity(gt, gt, masks, NORMAL_3[None], K_33)


def step_image(col: int) -> np.ndarray:
    """1 left of ``col``, 3 right of it, 2 on it: the gradient peaks on column ``col``."""
    img = np.ones((H, W))
    img[:, col:] = 3.0
    img[:, col] = 2.0
    return img


def test_canny_finds_a_step_and_nothing_on_flat() -> None:
    edges = canny((step_image(30) - 1) / 2)
    assert set(np.nonzero(edges)[1]) == {30}
    assert edges[1:-1, 30].all()  # on every interior row
    # a step exactly between two pixels still gives a one-pixel-wide edge
    sharp = np.where(np.arange(W) < 30, 0.0, 1.0)[None].repeat(H, 0)
    assert canny(sharp)[1:-1].sum(axis=1).max() == 1
    assert not canny(np.full((H, W), 0.5)).any()


def test_boundary_errors_measure_the_edge_offset() -> None:
    pred = step_image(30)
    est = canny((pred - 1) / 2)
    assert boundary_errors(pred, est, None) == pytest.approx((0.0, 0.0))
    shifted = np.roll(est, 4, axis=1)  # every gt edge 4 px right of the predicted one
    acc, com = boundary_errors(pred, shifted, None)
    assert acc == pytest.approx(4.0)
    assert com == pytest.approx(4.0)


def test_boundary_errors_caps_and_missing_edges() -> None:
    pred = step_image(30)
    far = np.roll(canny((pred - 1) / 2), 12, axis=1)
    assert boundary_errors(pred, far, None) == (DBE_MAX_DIST, DBE_MAX_DIST)
    assert boundary_errors(np.full((H, W), 2.0), far, None) == (DBE_MAX_DIST, DBE_MAX_DIST)
    acc, com = boundary_errors(pred, np.zeros((H, W), bool), None)
    assert np.isnan(acc) and np.isnan(com)
