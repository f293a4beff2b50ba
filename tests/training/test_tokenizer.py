"""Tokenizer training and its reconstruction ceiling, on tiny real-format shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from depthcore.data.shards import ShardDataset
from depthcore.data.transforms import invert_normalisation
from depthcore.evaluation.ceiling import frame_normalisation, reconstruction_metrics
from depthcore.models import create_model
from depthcore.training.tokenizer import TokenizerConfig, load_training_images, train_vqvae


def test_frame_normalisation_inverts_the_target_exactly(processed_dir: Path) -> None:
    item = ShardDataset(processed_dir, "val")[1]
    norm = frame_normalisation(item, "sqrt_disparity")
    target = item["target_HW"].numpy()
    depth = item["depth_HW"].numpy()
    inner = item["mask_HW"].numpy() & (np.abs(target) < 0.999)
    back = invert_normalisation(target, norm)
    np.testing.assert_allclose(back[inner], depth[inner], rtol=1e-4)


def test_training_lowers_loss_and_reconstruction_error(processed_dir: Path) -> None:
    torch.manual_seed(0)
    vae, _ = create_model("tiny")
    train = ShardDataset(processed_dir, "train")
    val = ShardDataset(processed_dir, "val")
    images = load_training_images(train, 64)
    assert images.shape == (24, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1
    before = reconstruction_metrics(vae, val, 64, "sqrt_disparity")
    cfg = TokenizerConfig(steps=25, batch_size=2, lr=3e-3)
    fit = train_vqvae(vae, images, cfg)
    after = reconstruction_metrics(vae, val, 64, "sqrt_disparity")
    assert len(fit.losses) == 25 and fit.ms_per_step > 0
    assert np.mean(fit.losses[-5:]) < 0.8 * np.mean(fit.losses[:5])
    assert after["frames"] == 4.0
    assert 0 < after["abs_rel"] < before["abs_rel"]
