"""The ``paper`` evaluation protocol against hand-computed values on small arrays.

Every expected number here is worked out by hand from the official code's rules
(nearest resize = ``floor(i * in / out)``, NYU 8 px border, ``torch.median`` lower median,
D1 strict ``> 1.25``), not by calling the code under test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from depthcore.config import ConfigError, from_dict
from depthcore.evaluation.protocol import (
    PaperReader,
    align_median_paper,
    lower_median,
    nearest_resize,
    paper_metrics,
    paper_upsample,
)
from depthcore.evaluation.run import EvaluateConfig, evaluate, open_benchmarks, run_evaluation
from depthcore.models.references import ConstantPlane
from depthcore.synth.bench_formats import write_nyu_set

# ----- resize and crop ---------------------------------------------------------------------------


def test_nearest_resize_picks_floor_of_i_times_in_over_out() -> None:
    a_46 = np.arange(24, dtype=np.float32).reshape(4, 6)
    # rows floor(0*4/2)=0, floor(1*4/2)=2; cols floor(j*6/3) = 0, 2, 4
    np.testing.assert_array_equal(nearest_resize(a_46, 2, 3), [[0, 2, 4], [12, 14, 16]])
    # upsampling 2 -> 3: floor(j*2/3) = 0, 0, 1
    a_22 = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    np.testing.assert_array_equal(nearest_resize(a_22, 3, 3), [[1, 1, 2], [1, 1, 2], [3, 3, 4]])
    mask = np.array([[True, False], [False, True]])
    out = nearest_resize(mask, 3, 3)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, [[1, 1, 0], [1, 1, 0], [0, 0, 1]])


def _nyu_root(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """60 x 80 frames (border 8 px at 480 x 640 -> 1 px here); raw depth (r*80 + c + 1) mm."""
    h, w = 60, 80
    raw_HW = (np.arange(h * w, dtype=np.float32).reshape(h, w) + 1) / 1000
    raw_HW[1, 1] = 0.0  # a hole at the first kept pixel
    raw_NHW = np.stack([raw_HW, raw_HW])
    depth_NHW = raw_NHW + 0.5  # the filled depths differ everywhere: which one is read shows
    rgb_NHW3 = np.zeros((2, h, w, 3), np.uint8)
    write_nyu_set(tmp_path, rgb_NHW3, depth_NHW, raw_NHW, [1])
    return tmp_path, raw_HW


def test_paper_nyu_cuts_the_border_reads_raw_depth_and_resizes_to_256(tmp_path: Path) -> None:
    root, raw_HW = _nyu_root(tmp_path)
    cfg = from_dict(
        EvaluateConfig,
        {"protocol": "paper", "alignments": ["median"], "benchmarks": {"nyu": {"root": str(root)}}},
    )
    (sample,) = list(open_benchmarks(cfg)["nyu"])
    assert sample.depth_HW.shape == sample.valid_HW.shape == (256, 256)
    # crop [1:59, 1:79] (58 x 78), then out[i, j] = cropped[floor(i*58/256), floor(j*78/256)]
    assert not sample.valid_HW[0, 0] and sample.depth_HW[0, 0] == 0  # the hole at raw[1, 1]
    assert sample.depth_HW[0, 4] == raw_HW[1, 2]  # floor(4*78/256) = 1 -> raw col 2
    assert sample.depth_HW[5, 0] == raw_HW[2, 1]  # floor(5*58/256) = 1 -> raw row 2
    assert sample.depth_HW[255, 255] == raw_HW[58, 78]  # floor(255*58/256)=57, 255*78/256 -> 77
    assert sample.valid_HW.sum() == 256 * 256 - 5 * 4  # rows 0..4, cols 0..3 map to the hole
    native = from_dict(EvaluateConfig, {"benchmarks": {"nyu": {"root": str(root)}}})
    (native_sample,) = list(open_benchmarks(native)["nyu"])
    assert native_sample.depth_HW.shape == (58, 78)
    assert native_sample.depth_HW[0, 0] == pytest.approx(raw_HW[1, 1] + 0.5)  # filled depths


def test_paper_upsample_is_bicubic_to_256_then_bilinear_with_corners() -> None:
    ramp_W = np.arange(256, dtype=np.float32)
    pred_BHW = np.broadcast_to(ramp_W, (1, 256, 256)).copy()
    # align_corners=True to 3 columns samples x = 0, 127.5, 255 exactly
    out = paper_upsample(pred_BHW, 2, 3)
    np.testing.assert_allclose(out[0], [[0.0, 127.5, 255.0]] * 2, atol=1e-4)
    # a 2 x 2 prediction goes to 256 first: a constant stays that constant
    np.testing.assert_allclose(paper_upsample(np.full((1, 2, 2), 3.0), 5, 7), 3.0, atol=1e-6)


# ----- alignment and metrics ---------------------------------------------------------------------


def test_median_is_torch_lower_median_and_not_clipped() -> None:
    assert lower_median(np.array([4.0, 1.0, 3.0, 2.0])) == 2.0  # numpy's median: 2.5
    assert lower_median(np.array([3.0, 1.0, 2.0])) == 2.0
    gt = np.array([[1.0, 2.0], [3.0, 40.0]])
    aligned = align_median_paper(np.ones((2, 2)), gt, np.ones((2, 2), bool))
    np.testing.assert_array_equal(aligned, 2.0)  # median(gt/1) = 2 (lower of 2, 3)
    # no range clip: a scale of 100 stays 100 even where a benchmark's range ends at 10
    np.testing.assert_array_equal(
        align_median_paper(np.ones((1, 2)), np.full((1, 2), 100.0), np.ones((1, 2), bool)), 100.0
    )


def test_official_d1_is_strictly_above_1_25_and_mae_is_added() -> None:
    gt = np.array([[1.0, 2.0, 4.0, 1.0]])
    pred = np.array([[1.25, 2.0, 2.0, 1.0]])  # ratios 1.25 (exact), 1, 2, 1
    row = paper_metrics(pred, gt, np.ones_like(gt, bool))
    assert row["bad_pixel"] == 0.25  # only the ratio 2; 1.25 is not > 1.25
    assert row["delta1"] == 0.5  # < 1.25: the 1.25 pixel is not good either
    assert row["abs_rel"] == pytest.approx((0.25 + 0 + 0.5 + 0) / 4)
    assert row["mae"] == pytest.approx((0.25 + 0 + 2.0 + 0) / 4)


# ----- config and the whole evaluation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"alignments": ["lsq", "median"]}, "set alignments: \\[median\\]"),
        ({"benchmarks": {"nyu": {"root": "x", "crop": "eigen"}}}, "benchmarks.nyu.crop"),
        ({"benchmarks": {"mine": {"root": "x", "format": "folder"}}}, "benchmarks.mine"),
    ],
)
def test_paper_protocol_refuses_what_the_official_code_does_not_do(section, message) -> None:
    data = {"protocol": "paper", "alignments": ["median"]} | section
    with pytest.raises(ConfigError, match=message):
        from_dict(EvaluateConfig, data, "evaluate")
    with pytest.raises(ConfigError, match="evaluate.protocol"):
        from_dict(EvaluateConfig, {"protocol": "official"}, "evaluate")


def test_evaluate_paper_scores_a_constant_on_the_resized_ground_truth(tmp_path: Path) -> None:
    root, raw_HW = _nyu_root(tmp_path / "nyu")
    cfg = from_dict(
        EvaluateConfig,
        {"protocol": "paper", "alignments": ["median"], "benchmarks": {"nyu": {"root": str(root)}}},
    )
    results = run_evaluation(cfg, ConstantPlane(), "reference:constant_plane", tmp_path / "out")
    # by hand: the 256 x 256 ground truth samples the cropped raw depth at
    # (1 + floor(i*58/256), 1 + floor(j*78/256)); the constant aligns to its lower median
    rows_I = 1 + (np.arange(256) * 58) // 256
    cols_J = 1 + (np.arange(256) * 78) // 256
    g = raw_HW[np.ix_(rows_I, cols_J)].astype(np.float64)
    g = g[g > 0]
    s = np.sort(g)[(g.size - 1) // 2]
    got = results["nyu"]["median"]
    assert got["abs_rel"] == pytest.approx(np.mean(np.abs(s - g) / g), rel=1e-9)
    assert got["mae"] == pytest.approx(np.mean(np.abs(s - g)), rel=1e-9)
    assert got["bad_pixel"] == pytest.approx(np.mean(np.maximum(s / g, g / s) > 1.25))
    written = json.loads((tmp_path / "out" / "evaluate_config.json").read_text())
    assert written["protocol"] == "paper"
    assert written["official_metric_names"]["bad_pixel"].startswith("D1")
    with (tmp_path / "out" / "per_image.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert float(row["mae"]) == pytest.approx(got["mae"])


def test_native_protocol_is_unchanged_by_the_switch(tmp_path: Path) -> None:
    root, _ = _nyu_root(tmp_path / "nyu")
    reader = open_benchmarks(
        from_dict(EvaluateConfig, {"benchmarks": {"nyu": {"root": str(root)}}})
    )
    assert not isinstance(reader["nyu"], PaperReader)
    cfg = EvaluateConfig(alignments=("median",))
    results = evaluate(ConstantPlane(), reader, cfg, tmp_path / "out")
    assert "mae" not in results["nyu"]["median"]
    with (tmp_path / "out" / "per_image.csv").open() as fh:
        assert "mae" not in next(csv.reader(fh))
