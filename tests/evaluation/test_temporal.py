"""The temporal scores of a depth video, checked on hand-made clips with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from depthcore.evaluation.temporal import flicker, temporal_change_error, video_scores


def _ramp(values: list[float]) -> np.ndarray:
    """A clip of constant 2x3 frames, one value per frame."""
    return np.stack([np.full((2, 3), v) for v in values])


def test_flicker_is_the_mean_absolute_change_per_pair() -> None:
    np.testing.assert_allclose(flicker(_ramp([2.0, 2.5, 2.0])), [0.5, 0.5])
    clip = _ramp([1.0, 1.0])
    clip[1, 0, 0] = np.nan  # that pixel counts in neither frame of the pair
    np.testing.assert_allclose(flicker(clip), [0.0])
    with pytest.raises(ValueError, match="T >= 2"):
        flicker(np.ones((1, 2, 2)))


def test_temporal_change_error_counts_change_not_per_frame_error() -> None:
    gt = _ramp([2.0, 1.8, 1.6])
    mask = np.ones_like(gt, dtype=bool)
    assert temporal_change_error(gt + 0.5, gt, mask) == pytest.approx(
        0.0
    )  # offset: no change error
    flickering = gt + _ramp([0.0, 0.2, 0.0])
    # pair 0: |0.0 - (-0.2)| / 2.0 = 0.1; pair 1: |(-0.4) - (-0.2)| / 1.8
    assert temporal_change_error(flickering, gt, mask) == pytest.approx((0.1 + 0.2 / 1.8) / 2)
    mask[1] = False  # frame 1 invalid: no pair has a pixel valid in both frames
    with pytest.raises(ValueError, match="consecutive"):
        temporal_change_error(flickering, gt, mask)


def test_video_scores_beside_abs_rel() -> None:
    gt = _ramp([2.0, 2.0])
    pred = _ramp([2.2, 1.8])
    scores = video_scores(pred, gt, np.ones_like(gt, dtype=bool))
    assert scores["abs_rel"] == pytest.approx(0.1)
    assert scores["temporal_change"] == pytest.approx(0.2)
    assert scores["flicker"] == pytest.approx(0.4) and scores["flicker_gt"] == 0.0
