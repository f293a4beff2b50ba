"""Alignment recovers a known scale and shift exactly, in every prediction space."""

from __future__ import annotations

import numpy as np
import pytest

from depthcore.alignment import (
    align_lsq,
    align_median,
    fit_scale_shift,
    median_not_applicable,
    median_relative_depth,
)
from depthcore.data.transforms import fit_normalisation
from depthcore.evaluation.metrics import compute_metrics
from depthcore.evaluation.run import align
from depthcore.spaces import DEFAULT_NEAR_FAR_RATIO, normalised_to_depth

# What a model in each space predicts for metric depth z (up to the affine map we undo).
TO_SPACE = {
    "depth": lambda z: z,
    "scale_depth": lambda z: z,
    "disparity": lambda z: 1.0 / z,
    "sqrt_disparity": lambda z: np.sqrt(1.0 / z),
}


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    gt_HW = rng.uniform(1.0, 5.0, size=(12, 16))
    mask_HW = rng.random((12, 16)) > 0.2
    return gt_HW, mask_HW


@pytest.mark.parametrize("space", sorted(TO_SPACE))
def test_align_lsq_recovers_scale_and_shift(space: str, scene) -> None:
    gt_HW, mask_HW = scene
    scale, shift = 2.5, 0.3
    pred_HW = (TO_SPACE[space](gt_HW) - shift) / scale
    pred_HW[~mask_HW] = 1e3  # garbage outside the mask must not move the fit
    aligned_HW = align_lsq(pred_HW, gt_HW, mask_HW, space, min_depth=0.5, max_depth=10.0)
    np.testing.assert_allclose(aligned_HW[mask_HW], gt_HW[mask_HW], rtol=1e-9)
    assert aligned_HW.min() >= 0.5 and aligned_HW.max() <= 10.0


def test_align_lsq_clips_to_the_range() -> None:
    gt = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.0, 2.0, 3.0, 40.0])
    mask = np.array([True, True, True, False])
    aligned = align_lsq(pred, gt, mask, "depth", min_depth=1.5, max_depth=10.0)
    np.testing.assert_allclose(aligned, [1.5, 2.0, 3.0, 10.0])
    # a negative disparity has no depth: it is clipped to the far end, never negative
    aligned = align_lsq(
        np.array([1.0, 0.5, -1.0]),
        np.array([1.0, 2.0, 3.0]),
        np.array([True, True, False]),
        "disparity",
        0.01,
        20.0,
    )
    np.testing.assert_allclose(aligned, [1.0, 2.0, 20.0])


def test_fit_scale_shift_constant_prediction_is_the_mean() -> None:
    assert fit_scale_shift(np.ones(4), np.array([1.0, 2.0, 3.0, 6.0])) == (0.0, 3.0)
    s, t = fit_scale_shift(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    assert (s, t) == pytest.approx((2.0, 1.0))


def test_align_median_recovers_scale_despite_outliers(scene) -> None:
    gt_HW, mask_HW = scene
    pred_HW = gt_HW / 3.0
    pred_HW.flat[::4] *= 7.0  # 25% outliers: the median ratio is still 3
    aligned_HW = align_median(pred_HW, gt_HW, np.ones_like(mask_HW))
    clean = np.ones(gt_HW.size, bool)
    clean[::4] = False
    np.testing.assert_allclose(aligned_HW.ravel()[clean], gt_HW.ravel()[clean])


def test_normalised_to_depth_rules_align_by_median() -> None:
    z = np.array([1.0, 2.0, 4.0])
    # scale_depth = 2 z / q98 - 1 is exact up to scale
    rel = normalised_to_depth(2 * z / 4.0 - 1, "scale_depth")
    np.testing.assert_allclose(align_median(rel, z, np.ones(3, bool)), z)
    np.testing.assert_allclose(normalised_to_depth(1.0 / (2 * z), "disparity"), 2 * z)
    # sqrt_disparity: the far end p = -1 is DEFAULT_NEAR_FAR_RATIO times the near end p = +1
    rel = normalised_to_depth(np.array([-1.0, 1.0]), "sqrt_disparity")
    assert rel[0] / rel[1] == pytest.approx(DEFAULT_NEAR_FAR_RATIO)
    np.testing.assert_allclose(median_relative_depth(z, "depth"), z)
    for space in ("sqrt_disparity", "disparity"):
        with pytest.raises(ValueError, match="not applicable"):
            median_relative_depth(z, space)
    with pytest.raises(ValueError, match="unknown prediction space"):
        normalised_to_depth(z, "log_depth")


def test_median_applies_to_scale_depth_only() -> None:
    assert median_not_applicable("scale_depth") is None
    assert median_not_applicable("depth") is None
    assert "offset is lost" in median_not_applicable("sqrt_disparity")
    assert "offset is lost" in median_not_applicable("disparity")


def _exact_prediction(z_HW: np.ndarray, valid_HW: np.ndarray, space: str) -> np.ndarray:
    """The ground truth in the model's own space, unclipped: what a perfect model predicts."""
    if space in ("scale_depth", "sqrt_disparity"):
        norm = fit_normalisation(z_HW, valid_HW, space)
        feature = z_HW if space == "scale_depth" else 1.0 / np.sqrt(z_HW)
        return norm.a * feature + norm.b
    return z_HW if space == "depth" else 1.0 / z_HW


@pytest.mark.parametrize("space", ["depth", "scale_depth", "sqrt_disparity", "disparity"])
@pytest.mark.parametrize("alignment", ["lsq", "median"])
def test_exact_ground_truth_scores_zero(space: str, alignment: str) -> None:
    """A perfect prediction scores AbsRel 0 under every alignment that applies to its space.

    (Main used to give 0.47 for median on a 2-4 m sqrt-disparity scene, via an assumed
    near/far ratio; that rule is gone: median is refused there.)
    """
    rng = np.random.default_rng(3)
    for lo, hi in ((2.0, 4.0), (3.0, 3.6), (0.5, 9.0)):
        z_HW = rng.uniform(lo, hi, size=(16, 20))
        valid_HW = rng.random((16, 20)) > 0.1
        pred_HW = _exact_prediction(z_HW, valid_HW, space)
        if alignment == "median" and median_not_applicable(space):
            with pytest.raises(ValueError, match="not applicable"):
                align(pred_HW, z_HW, valid_HW, space, alignment, 0.01, 10.0)
            continue
        aligned_HW = align(pred_HW, z_HW, valid_HW, space, alignment, 0.01, 10.0)
        assert compute_metrics(aligned_HW, z_HW, valid_HW)["abs_rel"] == pytest.approx(
            0.0, abs=1e-6
        )


def test_alignment_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        align_lsq(np.ones(3), np.ones(4), np.ones(4, bool), "depth", 0.1, 10)
    with pytest.raises(ValueError, match="zero valid"):
        align_lsq(np.ones(3), np.ones(3), np.zeros(3, bool), "depth", 0.1, 10)
