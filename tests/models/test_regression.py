"""The timm regression baseline: shapes, gradients, its name table and its checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from depthcore.errors import CheckpointError
from depthcore.models import MODEL_CONFIGS
from depthcore.models.checkpoint import checkpoint_kind, load_model
from depthcore.models.regression import (
    REGRESSION_CONFIGS,
    RegressionConfig,
    create_regression,
    load_regression,
    save_regression,
)

META = {"objective": "regression", "space": "sqrt_disparity", "image_size": 64, "steps": 0}


def test_forward_backward_is_finite_bounded_and_reaches_every_layer() -> None:
    torch.manual_seed(0)
    net = create_regression("tiny")
    rgb_B3SS = torch.rand(2, 3, 64, 64) * 2 - 1
    pred_B1SS = net(rgb_B3SS)
    assert pred_B1SS.shape == (2, 1, 64, 64)
    assert torch.isfinite(pred_B1SS).all() and pred_B1SS.abs().max() <= 1
    (pred_B1SS - 0.5).abs().mean().backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    first = next(name for name, _ in net.named_parameters())
    assert first.startswith("encoder.") and grads[first].abs().sum() > 0
    assert grads["head.weight"].abs().sum() > 0


def test_every_baseline_runs_at_its_transformers_resolution() -> None:
    assert set(REGRESSION_CONFIGS) == set(MODEL_CONFIGS)
    for name, cfg in REGRESSION_CONFIGS.items():
        assert cfg.image_size == MODEL_CONFIGS[name].image_size, name


def test_bad_names_and_shapes_fail_clearly() -> None:
    with pytest.raises(KeyError, match="choices: d16, d16-depthart, tiny"):
        create_regression("huge")
    with pytest.raises(ValueError, match="multiple of 32"):
        RegressionConfig(image_size=48)
    with pytest.raises(ValueError, match="feature levels"):
        create_regression("tiny", decoder_channels=(64, 32, 32, 32, 32))


def test_checkpoint_round_trip_is_strict_and_names_its_kind(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    torch.manual_seed(1)
    net = create_regression("tiny", decoder_channels=(32, 16, 16))
    path = tmp_path / "regression.safetensors"
    save_regression(path, net, META)
    assert checkpoint_kind(path) == "regression" and checkpoint_kind(tiny_checkpoint) == "model"
    loaded = load_regression(path, expected=net.config)
    assert loaded.config == net.config and loaded.meta == META
    for (name, w), w_loaded in zip(
        net.state_dict().items(), loaded.net.state_dict().values(), strict=True
    ):
        assert torch.equal(w, w_loaded), name
    other = dataclasses.replace(net.config, decoder_channels=(64, 32, 32))
    with pytest.raises(CheckpointError, match="config mismatch"):
        load_regression(path, expected=other)
    with pytest.raises(CheckpointError, match="'model' checkpoint, not a regression baseline"):
        load_regression(tiny_checkpoint)
    with pytest.raises(CheckpointError, match=str(path)):
        load_model(path)
