"""Optional prefix embeddings: extra parameters only, official layouts still load strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthcore.errors import CheckpointError
from depthcore.models import build_model, resolve_config
from depthcore.models.ablation import prefix_variants
from depthcore.models.checkpoint import load_official_var
from depthcore.training.losses import scale_balanced_loss

SMALL = {"depth": 2, "embed_dim": 64, "num_heads": 2, "prefix_local": False, "pixel_encoder": ""}


def _official_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    cfg = resolve_config("tiny", var=SMALL)
    _, var = build_model(cfg)
    path = tmp_path / "var_official_layout.pth"
    torch.save(var.state_dict(), path)
    return path, var.state_dict()


@pytest.mark.parametrize("mode", ["type", "own"])
def test_official_layout_loads_into_extended_model(tmp_path: Path, mode: str) -> None:
    path, official = _official_file(tmp_path)
    cfg = resolve_config("tiny", var={**SMALL, "prefix_embed": mode})
    var = load_official_var(path, cfg.var, cfg.vae)
    extra = {k for k in var.state_dict() if k not in official}
    assert extra and all(k.startswith("condition.") for k in extra)
    for k, v in official.items():
        torch.testing.assert_close(var.state_dict()[k], v)
    # the image tokens now differ from depth tokens at the same position
    prefix_BLC = torch.randn(1, var.L, var.Cvae)
    assert not torch.allclose(
        var.image_context(prefix_BLC).tokens_BLC, var._add_pos(var.word_embed(prefix_BLC), 0)
    )


def test_missing_official_key_still_fails(tmp_path: Path) -> None:
    path, official = _official_file(tmp_path)
    official.pop("word_embed.weight")
    torch.save(official, path)
    cfg = resolve_config("tiny", var={**SMALL, "prefix_embed": "own"})
    with pytest.raises(CheckpointError, match="word_embed.weight"):
        load_official_var(path, cfg.var, cfg.vae)


def test_residual_gain_opens_the_blocks() -> None:
    _, shut = build_model(resolve_config("tiny", var=SMALL))
    _, open_ = build_model(resolve_config("tiny", var={**SMALL, "init_residual_gain": 1.0}))
    C = shut.C
    assert shut.blocks[0].ada_lin[-1].bias[: 2 * C].abs().max() == 0
    assert torch.all(open_.blocks[0].ada_lin[-1].bias[: 2 * C] == 1.0)


def test_scale_balanced_loss_weights_scales_equally() -> None:
    begin_ends = [(0, 1), (1, 5)]
    ce_BL = torch.tensor([[4.0, 0.0, 0.0, 0.0, 0.0]])
    assert scale_balanced_loss(ce_BL, begin_ends).item() == pytest.approx(2.0)
    assert ce_BL.mean().item() == pytest.approx(0.8)


def test_prefix_variants() -> None:
    prefix_BLC = torch.arange(6.0).view(3, 2, 1)
    v = prefix_variants(prefix_BLC)
    assert torch.equal(v["real"][0], prefix_BLC) and v["real"][1] is None
    assert not v["zero"][0].any() and v["zero"][1] is None
    assert torch.equal(v["other"][0][1], prefix_BLC[0])
    # with frames (a model with a pixel path), they change with the prefix
    rgb_B3HW = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 3, 2, 2) + 1
    v = prefix_variants(prefix_BLC, rgb_B3HW)
    assert torch.equal(v["real"][1], rgb_B3HW)
    assert not v["zero"][1].any()
    assert torch.equal(v["other"][1][1], rgb_B3HW[0]) and torch.equal(
        v["other"][0][1], prefix_BLC[0]
    )
    # each image route blanked alone: tokens zeroed with the real frame, and the reverse
    assert not v["zero_prefix"][0].any() and torch.equal(v["zero_prefix"][1], rgb_B3HW)
    assert torch.equal(v["zero_frame"][0], prefix_BLC) and not v["zero_frame"][1].any()
    assert "zero_prefix" not in prefix_variants(prefix_BLC)  # no frames: no second route
