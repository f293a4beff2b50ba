"""Depth metrics and the rank metric against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthcore.evaluation.metrics import METRICS, compute_metrics, metric_direction
from depthcore.evaluation.ranking import average_ranks, rank_table


def test_compute_metrics_hand_computed() -> None:
    # gt 2 m everywhere; ratios 1, 1.2, 1.5, 1.9, 2.5; the last pixel is masked out.
    gt = np.full((2, 3), 2.0)
    pred = np.array([[2.0, 2.4, 3.0], [3.8, 5.0, 1e3]])
    mask = np.array([[True, True, True], [True, True, False]])
    m = compute_metrics(pred, gt, mask)
    ratios = [1.0, 1.2, 1.5, 1.9, 2.5]
    assert m["abs_rel"] == pytest.approx((0 + 0.2 + 0.5 + 0.9 + 1.5) / 5)
    assert m["sq_rel"] == pytest.approx((0 + 0.16 + 1 + 3.24 + 9) / 2 / 5)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 0.16 + 1 + 3.24 + 9) / 5))
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(math.log(r) ** 2 for r in ratios) / 5))
    assert m["log10"] == pytest.approx(sum(math.log10(r) for r in ratios) / 5)
    assert m["delta1"] == pytest.approx(2 / 5)  # 1.0, 1.2 < 1.25
    assert m["delta2"] == pytest.approx(3 / 5)  # + 1.5 < 1.5625
    assert m["delta3"] == pytest.approx(4 / 5)  # + 1.9 < 1.953
    assert m["bad_pixel"] == pytest.approx(3 / 5)


def test_compute_metrics_is_symmetric_in_ratio_for_deltas() -> None:
    gt = np.array([1.0, 4.0])
    pred = np.array([1.2, 3.0])  # ratios 1.2 and 4/3
    m = compute_metrics(pred, gt, np.ones(2, bool))
    assert m["delta1"] == pytest.approx(0.5)
    assert m["abs_rel"] == pytest.approx((0.2 + 0.25) / 2)


def test_compute_metrics_refuses_bad_input() -> None:
    gt = np.ones((2, 2))
    with pytest.raises(ValueError, match="shape mismatch"):
        compute_metrics(np.ones((2, 3)), gt, np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="no valid pixels"):
        compute_metrics(gt, gt, np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="> 0"):
        compute_metrics(np.zeros((2, 2)), gt, np.ones((2, 2), bool))


def test_metric_directions_come_from_the_table() -> None:
    assert metric_direction("abs_rel") == "lower"
    assert metric_direction("delta1") == "higher"
    assert metric_direction("bad_pixel") == "lower"
    assert set(METRICS.values()) == {"lower", "higher"}
    with pytest.raises(KeyError, match="abs_rle"):
        metric_direction("abs_rle")


RESULTS = {
    "A": {"b1": {"abs_rel": 0.1, "delta1": 0.90}, "b2": {"abs_rel": 0.3, "delta1": 0.5}},
    "B": {"b1": {"abs_rel": 0.2, "delta1": 0.80}, "b2": {"abs_rel": 0.1, "delta1": 0.5}},
    "C": {"b1": {"abs_rel": 0.2, "delta1": 0.95}, "b2": {"abs_rel": 0.2, "delta1": 0.4}},
}


def test_rank_table_hand_made_three_models() -> None:
    # b1 abs_rel: A1 B2.5 C2.5 (tie) | b1 delta1 (higher better): C1 A2 B3
    # b2 abs_rel: B1 C2 A3           | b2 delta1: A1.5 B1.5 (tie) C3
    ranks = rank_table(RESULTS, ["abs_rel", "delta1"])
    assert ranks == pytest.approx({"A": 7.5 / 4, "B": 8.0 / 4, "C": 8.5 / 4})


def test_rank_table_single_metric_and_nan_is_worst() -> None:
    results = {
        "A": {"b": {"pe_fla": float("nan")}},
        "B": {"b": {"pe_fla": 3.0}},
        "C": {"b": {"pe_fla": 1.0}},
    }
    assert rank_table(results, ["pe_fla"]) == {"A": 3.0, "B": 2.0, "C": 1.0}


def test_rank_table_fails_loudly() -> None:
    with pytest.raises(KeyError, match="delta_1"):
        rank_table(RESULTS, ["delta_1"])
    with pytest.raises(KeyError, match="rmse"):
        rank_table(RESULTS, ["rmse"])
    with pytest.raises(ValueError, match="share no benchmark"):
        rank_table({"A": {"x": {"rmse": 1.0}}, "B": {"y": {"rmse": 1.0}}}, ["rmse"])


def test_average_ranks_share_ties() -> None:
    ranks = average_ranks(np.array([3.0, 1.0, 3.0, np.inf, 2.0, 3.0]))
    np.testing.assert_allclose(ranks, [4.0, 1.0, 4.0, 6.0, 2.0, 4.0])
