"""evaluate() on small in-memory benchmarks with the reference predictors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from depthcore.config import ConfigError, from_dict
from depthcore.data.benchmarks.base import BenchmarkSample
from depthcore.errors import DepthcoreError
from depthcore.evaluation.metrics import DEPTH_METRICS
from depthcore.evaluation.run import EvaluateConfig, evaluate, upsample_bilinear
from depthcore.models.references import ConstantPlane, DepthModel, VerticalGradient
from depthcore.predict.predictor import load_depth_model

H, W = 24, 32
K_33 = np.array([[30.0, 0.0, 15.5], [0.0, 30.0, 11.5], [0.0, 0.0, 1.0]])


class SampleList(list):
    """A reader stand-in: a list of samples with the reader's depth range."""

    min_depth = 0.01
    max_depth = 20.0


def room(rng: np.random.Generator, i: int) -> BenchmarkSample:
    """Far at the top, near at the bottom (what VerticalGradient assumes), plus noise."""
    rows_H = np.linspace(4.0, 1.5, H)[:, None]
    depth = (rows_H + 0.05 * rng.standard_normal((H, W))).astype(np.float32)
    valid = rng.random((H, W)) > 0.1
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return BenchmarkSample(f"room{i}", rgb, np.where(valid, depth, 0).astype(np.float32), valid)


def planes_frame(rng: np.random.Generator, i: int) -> BenchmarkSample:
    """A fronto-parallel wall at 3 m with a box at 1.5 m in front: planes, edges, intrinsics."""
    depth = np.full((H, W), 3.0, np.float32)
    depth[8:16, 10 + i : 20 + i] = 1.5
    masks = np.stack([depth == 3.0, depth == 1.5])
    normals = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    edges = np.zeros((H, W), bool)
    edges[8:16, [10 + i, 19 + i]] = True
    edges[[8, 15], 10 + i : 20 + i] = True
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    return BenchmarkSample(
        f"planes{i}", rgb, depth, np.ones((H, W), bool), K_33, masks, normals, edges
    )


@pytest.fixture
def benchmarks() -> dict[str, SampleList]:
    rng = np.random.default_rng(0)
    return {
        "rooms": SampleList(room(rng, i) for i in range(5)),
        "planes": SampleList(planes_frame(rng, i) for i in range(3)),
    }


CFG = EvaluateConfig(batch_size=2, num_panels=2)


@pytest.mark.parametrize("model", [ConstantPlane(), VerticalGradient()])
def test_evaluate_writes_finite_metrics_csv_and_panels(model, benchmarks, tmp_path: Path) -> None:
    assert isinstance(model, DepthModel)
    results = evaluate(model, benchmarks, CFG, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert set(on_disk) == {"rooms", "planes"}
    for bench, n in (("rooms", 5), ("planes", 3)):
        assert set(on_disk[bench]) == {"lsq", "median"}
        for summary in on_disk[bench].values():
            assert summary["num_images"] == n
            for metric in DEPTH_METRICS:
                assert math.isfinite(summary[metric]), (bench, metric)
    for metric in ("pe_fla", "pe_ori", "dbe_acc", "dbe_com"):
        assert math.isfinite(on_disk["planes"]["lsq"][metric])
        assert metric not in on_disk["rooms"]["lsq"]
    assert on_disk["planes"]["lsq"]["num_planes"] == 6  # 2 planes, both >= 5%, 3 frames
    assert results["rooms"]["lsq"]["abs_rel"] == pytest.approx(on_disk["rooms"]["lsq"]["abs_rel"])

    with (tmp_path / "per_image.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == (5 + 3) * 2
    assert {r["name"] for r in rows if r["benchmark"] == "rooms"} == {f"room{i}" for i in range(5)}
    lsq_rooms = [
        float(r["abs_rel"]) for r in rows if r["benchmark"] == "rooms" and r["alignment"] == "lsq"
    ]
    assert np.mean(lsq_rooms) == pytest.approx(on_disk["rooms"]["lsq"]["abs_rel"])

    panels = sorted(p.name for p in (tmp_path / "panels").glob("[!.]*"))
    assert panels == ["planes_000.png", "planes_001.png", "rooms_000.png", "rooms_001.png"]
    with Image.open(tmp_path / "panels" / "rooms_000.png") as img:
        assert img.format == "PNG" and img.width > img.height


def test_vertical_gradient_beats_constant_plane_on_rooms(benchmarks, tmp_path: Path) -> None:
    cfg = EvaluateConfig(num_panels=0)
    const = evaluate(ConstantPlane(), benchmarks, cfg, tmp_path / "c")["rooms"]
    grad = evaluate(VerticalGradient(), benchmarks, cfg, tmp_path / "g")["rooms"]
    for alignment in ("lsq", "median"):
        assert grad[alignment]["abs_rel"] < 0.5 * const[alignment]["abs_rel"]
        assert grad[alignment]["delta1"] > const[alignment]["delta1"]


class HalfResDisparity:
    """A test predictor: exact disparity of the planes frame, at half resolution."""

    space = "disparity"

    def __init__(self, sample: BenchmarkSample) -> None:
        self.disp_hw = 1.0 / sample.depth_HW[::2, ::2]

    def predict_batch(self, rgb_BHW3: np.ndarray) -> np.ndarray:
        return np.repeat(self.disp_hw[None], len(rgb_BHW3), axis=0).astype(np.float32)


def test_predictions_are_upsampled_and_aligned_in_their_space(benchmarks, tmp_path) -> None:
    frame = benchmarks["planes"][0]
    cfg = EvaluateConfig(alignments=("lsq",), num_panels=0)
    out = evaluate(HalfResDisparity(frame), {"planes": SampleList([frame])}, cfg, tmp_path)
    # exact away from the box border, which bilinear upsampling blurs
    assert out["planes"]["lsq"]["delta1"] > 0.85
    assert out["planes"]["lsq"]["abs_rel"] < 0.1
    assert list((tmp_path / "panels").glob("[!.]*")) == []


def test_upsample_bilinear_keeps_constant_and_shape() -> None:
    up = upsample_bilinear(np.full((2, 3, 4), 2.5, np.float32), 6, 8)
    assert up.shape == (2, 6, 8)
    np.testing.assert_allclose(up, 2.5)


def test_non_finite_prediction_fails_naming_the_frame(benchmarks, tmp_path: Path) -> None:
    class NaNModel(ConstantPlane):
        def predict_batch(self, rgb_BHW3: np.ndarray) -> np.ndarray:
            return np.full(rgb_BHW3.shape[:3], np.nan, np.float32)

    with pytest.raises(DepthcoreError, match="room0"):
        evaluate(NaNModel(), benchmarks, CFG, tmp_path)
    assert not (tmp_path / "metrics.json").exists()


def test_config_and_predictor_lookup_fail_loudly() -> None:
    cfg = from_dict(
        EvaluateConfig,
        {"benchmarks": {"nyu": {"root": "data/nyu", "max_images": 3, "crop": "eigen"}}},
    )
    assert cfg.benchmarks["nyu"].max_images == 3 and cfg.alignments == ("lsq", "median")
    with pytest.raises(ConfigError, match="max_image"):
        from_dict(EvaluateConfig, {"benchmarks": {"nyu": {"root": "x", "max_image": 3}}})
    with pytest.raises(ConfigError, match="alignments"):
        from_dict(EvaluateConfig, {"alignments": ["lsq", "mean"]})
    # One check, the declared bound: 0 (torch's "all threads") would make results host-dependent.
    with pytest.raises(ConfigError, match=r"evaluate\.num_threads: 0 out of range: must be >= 1"):
        from_dict(EvaluateConfig, {"num_threads": 0}, "evaluate")
    assert from_dict(EvaluateConfig, {"num_threads": 1}, "evaluate").num_threads == 1
    with pytest.raises(DepthcoreError, match="constant_plane"):
        load_depth_model("reference:constant")
    assert isinstance(load_depth_model("reference:vertical_gradient"), VerticalGradient)


def test_uncomputable_metrics_are_left_out_of_metrics_json(benchmarks, tmp_path: Path) -> None:
    frame = benchmarks["planes"][0]
    frame.edges_HW = np.zeros((H, W), bool)  # no GT edge: no boundary error
    frame.plane_masks = np.zeros((1, H, W), bool)  # a plane below 5%: not scored
    frame.plane_masks[0, :2, :2] = True
    frame.plane_normals = frame.plane_normals[:1]
    cfg = EvaluateConfig(alignments=("median",), num_panels=0)
    returned = evaluate(VerticalGradient(), {"planes": SampleList([frame])}, cfg, tmp_path)
    assert np.isnan(returned["planes"]["median"]["pe_fla"])
    assert np.isnan(returned["planes"]["median"]["dbe_acc"])
    on_disk = json.loads((tmp_path / "metrics.json").read_text())["planes"]["median"]
    assert {"pe_fla", "pe_ori", "dbe_acc", "dbe_com"}.isdisjoint(on_disk)
    assert math.isfinite(on_disk["abs_rel"]) and on_disk["num_images"] == 1
    with (tmp_path / "per_image.csv").open() as fh:
        (row,) = csv.DictReader(fh)
    assert row["pe_fla"] == "" and row["dbe_acc"] == "" and float(row["abs_rel"]) > 0
