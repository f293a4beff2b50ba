"""iBims-1 planarity and depth boundary errors on synthetic planes and steps."""

from __future__ import annotations

import numpy as np
import pytest

from depthcore.evaluation.planarity import (
    DBE_MAX_DIST,
    boundary_errors,
    canny,
    edge_distances,
    edge_errors,
    planarity,
)

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


def test_plane_masks_are_cut_by_the_validity_mask() -> None:
    """iBims-1 multiplies each plane by the validity mask before the size test and the fit."""
    gt = plane_depth(NORMAL_3, 3.0)
    pred = gt.copy()
    valid = np.ones((H, W), bool)
    valid[:, 40:] = False  # e.g. a window (transparent): the prediction there is the glass
    pred[:, 40:] = 1.0
    fla_masked, ori_masked = planarity(pred, gt, FULL_P, NORMAL_3[None], K_33, valid)
    fla_plain, ori_plain = planarity(pred, gt, FULL_P, NORMAL_3[None], K_33)
    assert fla_masked[0] == pytest.approx(0.0, abs=1e-6)
    assert ori_masked[0] == pytest.approx(0.0, abs=1e-4)
    assert fla_plain[0] > 10.0 and ori_plain[0] > 1.0  # the unmasked fit sees the glass


def test_the_size_test_counts_valid_pixels_only() -> None:
    gt = plane_depth(NORMAL_3, 3.0)
    plane = np.zeros((1, H, W), bool)
    plane[0, :, :8] = True  # 12.5% of the image
    valid = np.ones((H, W), bool)
    valid[: H // 2] = False  # half of it invalid: 6.25%: still scored
    assert np.isfinite(planarity(gt, gt, plane, NORMAL_3[None], K_33, valid)[0][0])
    valid[: H * 3 // 4] = False  # three quarters invalid: 3.1% < 5%: not scored
    assert np.isnan(planarity(gt, gt, plane, NORMAL_3[None], K_33, valid)[0][0])
    assert np.isfinite(planarity(gt, gt, plane, NORMAL_3[None], K_33)[0][0])
    # a missing depth (gt 0) or an invalid prediction counts as invalid too
    holes = gt.copy()
    holes[: H * 3 // 4] = 0.0
    assert np.isnan(planarity(gt, holes, plane, NORMAL_3[None], K_33)[0][0])
    assert np.isnan(planarity(holes, gt, plane, NORMAL_3[None], K_33)[0][0])


def column_edges(*cols: int) -> np.ndarray:
    edges = np.zeros((H, W), bool)
    edges[:, list(cols)] = True
    return edges


def test_edge_errors_on_hand_made_maps() -> None:
    """Hand-computed values of the iBims-1 script's definitions (n = H pixels per line).

    A correct edge plus a spurious one 20 px away: accuracy looks only at predicted
    edges within 10 px of the truth (0); the script's completeness sums both directed
    terms, capped at 10: (0 n + 10 n + 0 n) / (2n + n) = 10/3. The GT-to-prediction
    term alone (the paper's prose) would be 0. A missed edge: same 10/3, whereas the
    one-way term would be 5.
    """
    gt = column_edges(20)
    spurious = column_edges(20, 40)
    assert edge_errors(spurious, gt) == pytest.approx((0.0, 10.0 / 3.0))
    assert edge_distances(gt, spurious).mean() == 0.0  # one-way GT -> prediction
    missed = edge_errors(column_edges(20), column_edges(20, 40))
    assert missed == pytest.approx((0.0, 10.0 / 3.0))
    assert edge_distances(column_edges(20, 40), column_edges(20)).mean() == pytest.approx(5.0)
    # a uniform 3 px offset: both terms are 3 everywhere
    assert edge_errors(column_edges(23), gt) == pytest.approx((3.0, 3.0))
    # no predicted edge near the truth: the cap; no GT edge: not computable
    assert edge_errors(column_edges(45), gt) == (DBE_MAX_DIST, DBE_MAX_DIST)
    assert all(np.isnan(edge_errors(gt, np.zeros((H, W), bool))))
    assert edge_distances(gt, np.zeros((H, W), bool)).tolist() == [DBE_MAX_DIST] * H


def test_boundary_errors_of_a_prediction_with_a_spurious_step() -> None:
    pred = step_image(20)
    pred[:, 40:] = 5.0  # a second depth step 20 px from the only true one
    gt_edges = canny((step_image(20) - 1) / 2)
    acc, com = boundary_errors(pred, gt_edges, None)
    assert acc == pytest.approx(0.0)
    n_gt = gt_edges.sum()
    assert com == pytest.approx(10.0 * n_gt / (n_gt + 2 * n_gt), rel=0.05)


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
