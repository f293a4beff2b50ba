"""Training the regression baseline through the transformer's loop, on the same frames.

The baseline must differ from the transformers in the model only: it reads the
same feature cache (its ``rgb``, ``target`` and ``mask`` fields are the frames the
transformers see, at their resolution, resized once by ``frame_at_size``), takes
the same ``train`` section (steps, batch, optimiser, schedule, seed) and runs
through :class:`~depthcore.training.trainer.Trainer`, so its batches, learning
rates, checkpoints, resume and MLflow logging are the transformers' own. Only the
loss differs: masked L1 between the prediction and the normalised target on the
real depth pixels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from depthcore.data.features import FeatureDataset
from depthcore.models.regression import (
    DepthRegressor,
    RegressionConfig,
    load_regression,
    resolve_regression_config,
    save_regression,
)
from depthcore.run_logger import RunLogger
from depthcore.spaces import rgb_to_model
from depthcore.training.distributed import DistInfo
from depthcore.training.losses import masked_l1
from depthcore.training.objectives import objectives_of
from depthcore.training.train_config import TrainConfig
from depthcore.training.trainer import Trainer

#: The objective name of the baseline (its folder under ``train.out_dir``, its registry tag).
REGRESSION = "regression"

__all__ = ["REGRESSION", "REGRESSION_FIELDS", "RegressionTrainer", "masked_l1"]

#: The cache fields the baseline trains on (no tokenizer features).
REGRESSION_FIELDS = ("rgb", "target", "mask")


class RegressionTrainer(Trainer):
    """The :class:`Trainer` loop over a :class:`DepthRegressor`.

    Built with ``vae=None``, the net as ``var`` and its :class:`RegressionConfig` as
    ``model_cfg`` (see :func:`build_regression_trainer`).
    """

    objectives = objectives_of("regression")

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        rgb_B3SS = rgb_to_model(batch["rgb_3SS"].to(self.device, non_blocking=True))
        pred_BSS = self.var(rgb_B3SS)[:, 0]
        target_BSS = batch["target_SS"].to(self.device, non_blocking=True)
        mask_BSS = batch["mask_SS"].to(self.device, non_blocking=True)
        return self.loss_fn(pred_BSS, target_BSS, mask_BSS), {}

    def val_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return {"val_loss": float(self.batch_loss(batch)[0])}

    def save_model(self, path: Path) -> None:
        save_regression(path, self.var, self.meta())

    def load_weights(self, path: Path) -> None:
        loaded = load_regression(path, map_location=str(self.device), expected=self.model_cfg)
        self.var.load_state_dict(loaded.net.state_dict())


def regression_datasets(
    cfg: TrainConfig, model_cfg: RegressionConfig
) -> tuple[FeatureDataset, FeatureDataset]:
    """(train, val) frames of the feature cache, checked against the model's resolution."""
    features = Path(cfg.features_dir)
    train_set = FeatureDataset(features / f"{cfg.train_split}.h5", fields=REGRESSION_FIELDS)
    val_set = FeatureDataset(features / f"{cfg.val_split}.h5", fields=REGRESSION_FIELDS)
    space = str(train_set.attrs.get("space"))
    for ds in (train_set, val_set):
        ds.check_compatible(None, model_cfg.image_size, space)
    return train_set, val_set


def build_regression_trainer(
    cfg: TrainConfig, objective: str, out_dir: Path, logger: RunLogger, info: DistInfo
) -> RegressionTrainer:
    """The ``train@regression`` trainer (a :data:`~depthcore.training.runner.TrainerFactory`).

    ``train.model`` names the baseline too: ``REGRESSION_CONFIGS[train.model]`` has the
    transformer's ``image_size``.
    """
    if objective != REGRESSION:
        raise ValueError(f"the regression trainer trains {REGRESSION!r}, not {objective!r}")
    if cfg.regression_steps:
        cfg = dataclasses.replace(cfg, steps=cfg.regression_steps)
    model_cfg = resolve_regression_config(cfg.model)
    train_set, val_set = regression_datasets(cfg, model_cfg)
    torch.manual_seed(cfg.seed)
    net = DepthRegressor(model_cfg)
    return RegressionTrainer(
        None, net, model_cfg, cfg, REGRESSION, train_set, val_set, out_dir, logger, info
    )
