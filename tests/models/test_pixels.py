"""The pixel path: a timm CNN's features of the frame, added to each depth token."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_model, save_model
from depthcore.models.generate import GREEDY, rollout
from depthcore.models.pixels import PixelEncoder
from depthcore.training.objectives import OBJECTIVES
from depthcore.training.pretrain import PretrainTrainer
from depthcore.training.teacher_forcing import teacher_forcing_loss
from depthcore.training.trainer import Trainer
from tests.helpers.models import TEST_PIXEL_ENCODER, tiny_pixel_batch


@pytest.fixture(scope="module")
def batch():
    return tiny_pixel_batch(B=2, seed=21)


def _inputs(vae, fD):
    with torch.no_grad():
        return vae.idxBl_to_var_input(vae.f_to_idxBl(fD))


def test_a_fresh_pixel_path_leaves_the_transformer_unchanged() -> None:
    """Its output projection starts at zero, so adding it to pretrained weights is safe."""
    vae, plain, prefix, fD, rgb = tiny_pixel_batch(B=2, seed=3, var={"pixel_encoder": ""})
    torch.manual_seed(1)
    _, with_pixels = build_model(resolve_config("tiny", var={"pixel_encoder": TEST_PIXEL_ENCODER}))
    missing = with_pixels.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("condition.pixels.") for k in missing)
    x_BlCv = _inputs(vae, fD)
    with torch.no_grad():
        torch.testing.assert_close(with_pixels(prefix, x_BlCv, rgb), plain(prefix, x_BlCv))


def test_the_frames_change_the_logits_of_every_scale(batch) -> None:
    vae, var, prefix, fD, rgb = batch
    x_BlCv = _inputs(vae, fD)
    with torch.no_grad():
        base = var(prefix, x_BlCv, rgb)
        other = var(prefix, x_BlCv, rgb.flip(0))  # same prefix, the other frame's pixels
    for start, end in var.begin_ends:
        assert (base[:, start:end] - other[:, start:end]).abs().max() > 1e-3


def test_missing_or_misshapen_frames_fail_clearly(batch) -> None:
    vae, var, prefix, fD, rgb = batch
    x_BlCv = _inputs(vae, fD)
    with pytest.raises(ValueError, match="reads pixels"):
        var(prefix, x_BlCv)
    with pytest.raises(ValueError, match="2 RGB frames for 1 prefixes"):
        var(prefix[:1], x_BlCv[:1], rgb)
    with pytest.raises(ValueError, match=r"needs RGB \(B, 3, 64, 64\)"):
        var(prefix, x_BlCv, rgb[:, :, :32, :32])


def test_evaluation_features_do_not_depend_on_the_batch() -> None:
    """The backbone's BatchNorm normalises with its running statistics in evaluation: a
    frame's features are its own there (training normalises over the batch)."""
    torch.manual_seed(0)
    enc = PixelEncoder(TEST_PIXEL_ENCODER, 32, (1, 2, 4), 32)
    rgb = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        enc.proj.weight.normal_()
        enc.train()(rgb)  # one training pass moves the running statistics
        enc.eval()
        torch.testing.assert_close(enc(rgb)[:1], enc(rgb[:1]))
        assert enc(rgb).shape == (3, 1 + 4 + 16, 32)
        in_eval = enc(rgb)
        assert (enc.train()(rgb) - in_eval).abs().max() > 1e-4  # training: batch statistics


def test_cached_generation_equals_the_parallel_pass_with_repeats(batch) -> None:
    vae, var, prefix, _, rgb = batch
    var.eval()
    cached = rollout(vae, var, prefix, GREEDY, rgb_B3HW=rgb, repeats=2)
    plain = rollout(vae, var, prefix, GREEDY, rgb_B3HW=rgb, repeats=2, use_cache=False)
    for a, b in zip(cached.idx_Bl, plain.idx_Bl, strict=True):
        assert torch.equal(a, b)
    torch.testing.assert_close(cached.f_hat_BChw, plain.f_hat_BChw, atol=1e-5, rtol=1e-5)
    # the frames drive the rollout: another frame, other tokens
    swapped = rollout(vae, var, prefix, GREEDY, rgb_B3HW=rgb.flip(0))
    assert any(
        not torch.equal(a[::2], b) for a, b in zip(cached.idx_Bl, swapped.idx_Bl, strict=True)
    )


def test_depthart_shared_prefix_pass_trains_the_pixel_path(batch) -> None:
    """DepthART's one prefix pass carries the pixel path in the cache: loss and gradients
    equal a plain masked pass on the rollout's own inputs and targets."""
    vae, var, prefix, fD, rgb = batch
    var.train()
    var.zero_grad(set_to_none=True)
    out = OBJECTIVES["depthart"](vae, var, prefix, fD, rgb_B3HW=rgb)
    out.loss.backward()
    shared = {k: p.grad.clone() for k, p in var.named_parameters() if p.grad is not None}
    assert shared["condition.pixels.proj.weight"].abs().sum() > 0
    assert shared["condition.pixels.lateral.0.weight"].abs().sum() > 0
    var.zero_grad(set_to_none=True)
    own = rollout(vae, var, prefix, GREEDY, rgb_B3HW=rgb)
    logits = var(prefix, vae.idxBl_to_var_input(own.idx_Bl), rgb)
    ref = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), out.target_BL.reshape(-1)
    )
    torch.testing.assert_close(out.loss, ref, atol=1e-5, rtol=1e-5)
    ref.backward()
    for k, p in var.named_parameters():
        if k in shared:
            torch.testing.assert_close(shared[k], p.grad, atol=1e-5, rtol=1e-4, msg=k)
    tf = teacher_forcing_loss(vae, var, prefix, fD, rgb_B3HW=rgb)
    assert torch.isfinite(tf.loss)


def test_checkpoints_keep_the_pixel_path(batch, tmp_path: Path) -> None:
    vae, var, prefix, fD, rgb = batch
    var.eval()
    cfg = resolve_config("tiny", var={"pixel_encoder": TEST_PIXEL_ENCODER})
    path = tmp_path / "model.safetensors"
    save_model(path, vae, var, cfg, meta={"space": "sqrt_disparity"})
    loaded = load_model(path)
    assert loaded.var.reads_pixels and loaded.config.var.pixel_encoder == TEST_PIXEL_ENCODER
    x_BlCv = _inputs(vae, fD)
    with torch.no_grad():
        torch.testing.assert_close(loaded.var.eval()(prefix, x_BlCv, rgb), var(prefix, x_BlCv, rgb))


def test_pixel_levels_pick_the_backbone_stages() -> None:
    """Levels start at the token grid's stride; the backbone stops at the last one."""
    one = PixelEncoder(TEST_PIXEL_ENCODER, 16, (1, 2, 4), 32, levels=1)  # grid stride 8
    assert one.backbone.feature_info.reduction() == [8]
    two = PixelEncoder(TEST_PIXEL_ENCODER, 16, (1, 2, 4), 32, levels=2)
    assert two.backbone.feature_info.reduction() == [8, 16]
    with pytest.raises(ValueError, match="3 feature level.* pixel_levels asks for 4"):
        PixelEncoder(TEST_PIXEL_ENCODER, 16, (1, 2, 4), 32, levels=4)
    with pytest.raises(ValueError, match="pixel_levels must be >= 1"):
        resolve_config("tiny", var={"pixel_levels": 0})


def test_only_a_model_with_a_pixel_path_loads_the_frames() -> None:
    """The frames are the largest cache field at 256 px: the official layout skips them."""
    _, plain = build_model(resolve_config("tiny", var={"pixel_encoder": ""}))
    _, pixels = build_model(resolve_config("tiny", var={"pixel_encoder": TEST_PIXEL_ENCODER}))
    assert Trainer.fields_for(plain) == ("fD", "prefix")
    assert Trainer.fields_for(pixels) == ("fD", "prefix", "rgb")
    assert PretrainTrainer.fields_for(pixels) == ("prefix", "rgb")  # it always reads them
