"""Training the regression baseline: it fits, it sees the image, it resumes, it serves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depthcore.evaluation.scales import ScalesConfig, run_scales
from depthcore.models.regression import load_regression
from depthcore.predict.predictor import load_depth_model
from depthcore.run_logger import NullLogger
from depthcore.spaces import rgb_to_model
from depthcore.training.distributed import DistInfo
from depthcore.training.regression import (
    REGRESSION,
    RegressionTrainer,
    build_regression_trainer,
    masked_l1,
)
from depthcore.training.runner import run_training
from depthcore.training.train_config import TrainConfig


def _config(setup: Path, out: Path, **overrides: object) -> TrainConfig:
    settings = {
        "features_dir": str(setup / "features"), "out_dir": str(out), "steps": 4,
        "batch_size": 2, "ckpt_every": 2, "val_frames": 4, "val_batch_size": 2,
        "warmup_steps": 0, **overrides,
    }  # fmt: skip
    return TrainConfig(**settings)


def _trainer(cfg: TrainConfig) -> RegressionTrainer:
    out = Path(cfg.out_dir) / REGRESSION
    return build_regression_trainer(cfg, REGRESSION, out, NullLogger(), DistInfo())


def test_masked_l1_scores_only_the_real_pixels() -> None:
    target_BSS = torch.zeros(1, 2, 2)
    pred_BSS = torch.tensor([[[1.0, 0.5], [9.0, 9.0]]])
    mask_BSS = torch.tensor([[[True, True], [False, False]]])
    assert masked_l1(pred_BSS, target_BSS, mask_BSS).item() == pytest.approx(0.75)
    assert masked_l1(pred_BSS, target_BSS, torch.zeros_like(mask_BSS)).item() == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        masked_l1(pred_BSS, target_BSS[:, :1], mask_BSS)


@torch.no_grad()
def _eval_loss_and_errors(trainer: RegressionTrainer) -> tuple[float, torch.Tensor]:
    """Masked L1 of 4 training frames, and L1 of each frame's prediction to each target."""
    batch = trainer.train_set.get_batch(list(range(4)))
    trainer.var.eval()
    try:
        loss, _ = trainer.batch_loss(batch)
        pred_BSS = trainer.var(rgb_to_model(batch["rgb_3SS"]))[:, 0]
    finally:
        trainer.var.train()
    target_BSS = batch["target_SS"]
    errors_BB = (pred_BSS[:, None] - target_BSS[None]).abs().mean(dim=(-2, -1))
    return float(loss), errors_BB


def test_short_fit_lowers_the_loss_and_follows_the_image(
    feature_setup: Path, tmp_path: Path
) -> None:
    trainer = _trainer(_config(feature_setup, tmp_path, steps=24, batch_size=4, ckpt_every=0))
    before, _ = _eval_loss_and_errors(trainer)
    trainer.fit()
    after, errors_BB = _eval_loss_and_errors(trainer)
    assert after < 0.7 * before, (before, after)
    # each frame's prediction is nearer its own depth than any other frame's: the map
    # follows the image, not a prior shared by all frames
    own_B = errors_BB.diagonal()
    others_B = (errors_BB + torch.eye(4) * 1e9).min(dim=1).values
    assert (own_B < others_B).all(), errors_BB


def test_resume_equals_uninterrupted(feature_setup: Path, tmp_path: Path) -> None:
    whole = _trainer(_config(feature_setup, tmp_path / "a"))
    whole.fit()
    first = _trainer(_config(feature_setup, tmp_path / "b"))
    first.fit(stop_at=2)
    resumed = _trainer(_config(feature_setup, tmp_path / "b"))
    resumed.fit()
    assert resumed.step == 4
    for (name, w), w_resumed in zip(
        whole.var.state_dict().items(), resumed.var.state_dict().values(), strict=True
    ):
        assert torch.equal(w, w_resumed), name


def test_train_stage_outputs_scales_row_and_predictor(feature_setup: Path, tmp_path: Path) -> None:
    # train.regression_steps gives the baseline its own step count (the transformers keep 2)
    cfg = _config(feature_setup, tmp_path / "models", steps=2, regression_steps=3)
    metrics = run_training(cfg, REGRESSION, build_regression_trainer)
    out = tmp_path / "models" / REGRESSION
    assert json.loads((out / "train_metrics.json").read_text())["objective"] == REGRESSION
    assert metrics["val_loss"] > 0 and metrics["steps"] == 3
    loaded = load_regression(out / "model.safetensors")
    meta = dict(loaded.meta)
    assert meta.pop("trained_on")["frames"] > 0  # its training sources (depthcore.data.domain)
    assert meta == {"objective": REGRESSION, "space": "sqrt_disparity", "image_size": 64,
                    "input_fit": "stretch", "steps": 3}  # fmt: skip

    scales = ScalesConfig(
        models_dir=cfg.out_dir, features_dir=cfg.features_dir, frames=4, batch_size=2,
        num_figures=1,
    )  # fmt: skip
    summary = run_scales(scales, REGRESSION, "one_pass")
    rows = list(csv.DictReader((out / "scales.csv").open()))
    assert [int(r["patch_num"]) for r in rows] == [64]
    assert 0 < summary["val_abs_rel"] < 1 and summary["refinement_gain"] == 0
    assert summary["exposure_gap"] is None and not any((out / "exposure").glob("[!.]*"))
    assert sorted(p.name for p in (out / "figures").glob("[!.]*")) == ["scales_000.png"]

    # the evaluate stage's loader dispatches on the checkpoint kind
    model = load_depth_model(str(out / "model.safetensors"))
    assert model.space == "sqrt_disparity"
    rng = np.random.default_rng(0)
    rgb_BHW3 = rng.integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    pred_BHW = model.predict_batch(rgb_BHW3)
    assert pred_BHW.shape == (2, 64, 64) and np.isfinite(pred_BHW).all()  # S x S (stretch fit)
    result = model(rgb_BHW3[0], scales=True, samples=2)
    assert result.depth.shape == (48, 64) and len(result.scales) == 1
    assert result.std is not None and not result.std.any()
