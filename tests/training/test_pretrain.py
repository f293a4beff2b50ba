"""The pretrain stage: RGB next-scale targets, prefix modes, and depth training started from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from depthcore.data.features import FeatureDataset
from depthcore.errors import CheckpointError
from depthcore.models import build_model, image_prefix, resolve_config
from depthcore.models.checkpoint import load_model, save_model
from depthcore.run_logger import NullLogger
from depthcore.spaces import rgb_to_model
from depthcore.training.distributed import DistInfo
from depthcore.training.launch import run_fingerprint
from depthcore.training.pretrain import (
    DEPTH_TEACHER_FORCING,
    RGB_NEXT_SCALE,
    DepthWarmupTrainer,
    PretrainConfig,
    PretrainTrainer,
    build_pretrain_trainer,
    run_pretraining,
)
from depthcore.training.runner import build_trainer
from depthcore.training.train_config import TrainConfig
from tests.helpers.reliability.crash_runs import dvc_removed_outs

BASE = dict(
    steps=2, batch_size=2, ckpt_every=0, val_frames=2, val_batch_size=2,
    log_every=1, lr=3e-3, warmup_steps=0, weight_decay=0.0,
    schedule="constant", resume=False,
)  # fmt: skip


def _paths(setup: Path, out: Path) -> dict[str, str]:
    return dict(
        tokenizer=str(setup / "vae.safetensors"),
        features_dir=str(setup / "features"),
        out_dir=str(out),
    )


def _pretrainer(setup: Path, out: Path, **kw: object) -> PretrainTrainer:
    cfg = PretrainConfig(**{**BASE, **_paths(setup, out), **kw})
    trainer = build_pretrain_trainer(cfg, RGB_NEXT_SCALE, out, NullLogger(), DistInfo())
    assert isinstance(trainer, PretrainTrainer)
    return trainer


def _first_frames(trainer: PretrainTrainer, n: int = 4) -> dict[str, torch.Tensor]:
    return trainer.train_set.get_batch(list(range(n)))


def test_targets_are_the_rgb_frames_own_tokens(feature_setup: Path, tmp_path: Path) -> None:
    trainer = _pretrainer(feature_setup, tmp_path)
    batch = _first_frames(trainer)
    vae = trainer.vae
    prefix_BLC, fRGB_BChw, rgb_B3HW = trainer.loss_inputs(batch)
    out = trainer.loss_fn(vae, trainer.var, prefix_BLC, fRGB_BChw, rgb_B3HW=rgb_B3HW)
    rgb_B3SS = rgb_to_model(batch["rgb_3SS"])
    torch.testing.assert_close(rgb_B3HW, rgb_B3SS)  # the default tiny reads the frames too
    want_BL = torch.cat(vae.f_to_idxBl(vae.encode_features(rgb_B3SS)), dim=1)
    assert torch.equal(out.target_BL, want_BL)
    depth = FeatureDataset(trainer.train_set.path, fields=("fD",)).get_batch(range(4))
    depth_BL = torch.cat(vae.f_to_idxBl(depth["fD_Chw"]), dim=1)
    assert not torch.equal(out.target_BL, depth_BL)  # not the depth tokens
    # the cached prefix is the same decomposition, so targets and prefix agree token for token
    torch.testing.assert_close(image_prefix(vae, rgb_B3SS), batch["prefix_LC"], atol=1e-4, rtol=0)


def test_depth_target_is_the_var_tf_objective(feature_setup: Path, tmp_path: Path) -> None:
    """``target: depth``: the warm-up both objectives start from is var_tf's teacher forcing."""
    out = tmp_path / "warm"
    cfg = PretrainConfig(**{**BASE, **_paths(feature_setup, out), "target": "depth"})
    warm = build_pretrain_trainer(cfg, DEPTH_TEACHER_FORCING, out, NullLogger(), DistInfo())
    assert isinstance(warm, DepthWarmupTrainer) and "fD" in warm.train_set.fields
    tf_cfg = TrainConfig(**{**BASE, **_paths(feature_setup, tmp_path / "tf")})
    var_tf = build_trainer(tf_cfg, "var_tf", tmp_path / "tf", NullLogger(), DistInfo())
    batch = _first_frames(var_tf)
    inputs, tf_inputs = warm.loss_inputs(batch), var_tf.loss_inputs(batch)
    for mine, theirs in zip(inputs, tf_inputs, strict=True):
        assert torch.equal(mine, theirs)
    with torch.no_grad():  # same seed, same init: the same loss as the var_tf objective
        a = warm.loss_fn(warm.vae, warm.var, *inputs[:2], rgb_B3HW=inputs[2])
        b = var_tf.loss_fn(var_tf.vae, var_tf.var, *tf_inputs[:2], rgb_B3HW=tf_inputs[2])
    assert torch.equal(a.target_BL, b.target_BL) and float(a.loss) == float(b.loss)
    metrics = run_pretraining(cfg)
    assert metrics["objective"] == DEPTH_TEACHER_FORCING and metrics["steps"] == 2
    assert load_model(out / "var.safetensors").meta["objective"] == DEPTH_TEACHER_FORCING


def test_prefix_modes(feature_setup: Path, tmp_path: Path) -> None:
    image = _pretrainer(feature_setup, tmp_path / "i", prefix="image")
    zero = _pretrainer(feature_setup, tmp_path / "z", prefix="zero")
    batch = _first_frames(image)
    prefix_i, f_i, rgb_i = image.loss_inputs(batch)
    prefix_z, f_z, rgb_z = zero.loss_inputs(batch)
    assert torch.equal(prefix_i, batch["prefix_LC"]) and prefix_i.abs().sum() > 0
    assert torch.equal(prefix_z, torch.zeros_like(prefix_i))
    assert rgb_i.abs().sum() > 0 and not rgb_z.any()  # the pixel path goes blank too
    assert torch.equal(f_i, f_z)  # same targets, only the conditioning differs


def _ce(trainer: PretrainTrainer, batch: dict[str, torch.Tensor], prefix: str) -> float:
    prefix_BLC, f_BChw, rgb_B3HW = trainer.loss_inputs(batch)
    if prefix == "zero":
        prefix_BLC, rgb_B3HW = torch.zeros_like(prefix_BLC), torch.zeros_like(rgb_B3HW)
    with torch.no_grad():
        loss = trainer.loss_fn(trainer.vae, trainer.var, prefix_BLC, f_BChw, rgb_B3HW=rgb_B3HW)
    return float(loss.loss)


def test_loss_falls_on_a_few_frames(feature_setup: Path, tmp_path: Path) -> None:
    trainer = _pretrainer(feature_setup, tmp_path, prefix="image", steps=12, batch_size=4)
    trainer.train_set.keys = trainer.train_set.keys[:4]  # the same 4 frames every step
    batch = _first_frames(trainer)
    before = _ce(trainer, batch, "real")
    trainer.fit()
    after = _ce(trainer, batch, "real")
    assert after < 0.85 * before, (before, after)
    # the prefix reaches the loss: the same weights score differently without it
    assert abs(after - _ce(trainer, batch, "zero")) > 1e-4


def test_run_pretraining_writes_outputs_and_train_starts_from_them(
    feature_setup: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pretrain"
    cfg = PretrainConfig(**{**BASE, **_paths(feature_setup, out), "steps": 2})
    metrics = run_pretraining(cfg)
    assert metrics["objective"] == RGB_NEXT_SCALE and metrics["steps"] == 2
    on_disk = json.loads((out / "pretrain_metrics.json").read_text())
    assert on_disk["val_loss"] == pytest.approx(metrics["val_loss"])
    pretrained = load_model(out / "var.safetensors")
    assert pretrained.meta["prefix"] == "image" and pretrained.meta["tokenizer_sha256"]

    paths = _paths(feature_setup, tmp_path / "models")
    plain = TrainConfig(**{**BASE, **paths})
    started = TrainConfig(**{**BASE, **paths, "init_pretrain": str(out / "var.safetensors")})
    for objective in ("depthart", "var_tf"):
        fresh = build_trainer(plain, objective, tmp_path, NullLogger(), DistInfo()).var
        trainer = build_trainer(started, objective, tmp_path, NullLogger(), DistInfo())
        want = pretrained.var.state_dict()
        for name, w in trainer.var.state_dict().items():
            assert torch.equal(w, want[name]), name
        assert any(
            not torch.equal(w, want[n]) for n, w in fresh.state_dict().items()
        )  # the test can tell a fresh init from the pretrained one
    # the checkpoints of a run started from other pretrained weights are not resumed
    before = run_fingerprint(started, "depthart")["init_pretrain_sha256"]
    model_cfg = resolve_config("tiny")
    torch.manual_seed(123)
    vae, var = build_model(model_cfg)
    save_model(out / "var.safetensors", vae, var, model_cfg, pretrained.meta)
    assert run_fingerprint(started, "depthart")["init_pretrain_sha256"] != before


def test_bad_pretrain_files_fail_naming_the_file(feature_setup: Path, tmp_path: Path) -> None:
    paths = _paths(feature_setup, tmp_path / "models")

    def build(path: Path) -> None:
        cfg = TrainConfig(**{**BASE, **paths, "init_pretrain": str(path)})
        build_trainer(cfg, "var_tf", tmp_path, NullLogger(), DistInfo())

    missing = tmp_path / "missing.safetensors"
    with pytest.raises(CheckpointError, match=f"{missing}: checkpoint file not found"):
        build(missing)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=str(garbage)):
        build(garbage)
    other_cfg = resolve_config("tiny", var={"depth": 2, "embed_dim": 64, "num_heads": 2})
    vae, var = build_model(other_cfg)
    other = tmp_path / "other_shape.safetensors"
    save_model(other, vae, var, other_cfg, {})
    with pytest.raises(CheckpointError, match=f"{other}: config mismatch"):
        build(other)
    model_cfg = resolve_config("tiny")
    vae, var = build_model(model_cfg)
    foreign = tmp_path / "foreign_tokenizer.safetensors"
    save_model(foreign, vae, var, model_cfg, {"tokenizer_sha256": "0" * 64})
    with pytest.raises(CheckpointError, match=f"{foreign}: pretrained with tokenizer"):
        build(foreign)


def test_pretrain_checkpoints_are_persisted_and_its_weights_are_not() -> None:
    removed = dvc_removed_outs("pretrain")
    assert "models/pretrain/ckpt" not in removed  # a killed pretrain resumes
    assert "models/pretrain/var.safetensors" in removed


def test_zero_steps_write_the_initial_weights(feature_setup: Path, tmp_path: Path) -> None:
    out = tmp_path / "pretrain"
    metrics = run_pretraining(PretrainConfig(**{**BASE, **_paths(feature_setup, out), "steps": 0}))
    assert metrics["steps"] == 0
    torch.manual_seed(0)
    _, var = build_model(resolve_config("tiny"))
    written = load_model(out / "var.safetensors").var.state_dict()
    for name, w in var.state_dict().items():
        assert torch.equal(written[name], w), name
