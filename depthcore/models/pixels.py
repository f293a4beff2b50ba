"""A pixel path for DepthVAR: a trainable timm CNN reads the RGB frame itself.

The image prefix is the frozen VQ-VAE's quantised RGB decomposition, at most one token
per 8 x 8 pixels: what the quantiser dropped, the transformer never sees. The timm
regression baseline, which reads every pixel through a CNN, beat both transformers on
every benchmark at equal steps (docs/learning.md), so this module gives the transformer
the same view: a ``features_only`` timm backbone (random init, no hub download) whose
first ``levels`` levels at or coarser than the finest token grid (the ones of stride 8
and 16 for ``tiny``: the network stops there) are projected to the transformer width,
summed on that grid (a one-step feature pyramid: detail from the fine level, context
from the coarse ones) and area-pooled to every scale, so each depth token adds the
features of its own cell. The output projection starts at zero: a freshly added pixel
path leaves the transformer's function unchanged until training opens it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def timm_features(name: str, **kwargs: object) -> nn.Module:
    """A randomly initialised timm ``features_only`` backbone (never a hub download).

    timm is imported here, not at module level: it pulls in torchvision and
    torch._dynamo (~2.4 s), which every stage importing ``depthcore.models`` (the
    tokenizer, features and register stages build no timm model) would pay at start.
    """
    import timm

    return timm.create_model(name, features_only=True, pretrained=False, **kwargs)


class PixelEncoder(nn.Module):
    """RGB (B, 3, S, S) in [-1, 1] -> per-token features (B, L, C) over ``patch_nums``."""

    def __init__(
        self,
        backbone: str,
        width: int,
        patch_nums: tuple[int, ...],
        image_size: int,
        levels: int = 3,
    ) -> None:
        super().__init__()
        self.patch_nums = tuple(patch_nums)
        self.image_size = image_size
        finest = self.patch_nums[-1]
        if image_size % finest:
            raise ValueError(f"image_size {image_size} is not a multiple of the grid {finest}")
        stride = image_size // finest
        # a full first build for the level strides (its draws from the RNG are part of the
        # seeded initialisation the measured default was trained from)
        probe = timm_features(backbone)
        coarse = [i for i, r in enumerate(probe.feature_info.reduction()) if r >= stride]
        if len(coarse) < levels:
            raise ValueError(
                f"{backbone} has {len(coarse)} feature level(s) with stride >= {stride}, "
                f"pixel_levels asks for {levels}"
            )
        # timm stops the backbone at the last level asked for: fewer levels, less compute
        self.backbone = timm_features(backbone, out_indices=tuple(coarse[:levels]))
        channels = self.backbone.feature_info.channels()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, width)
        self.reset_output()

    @torch.no_grad()
    def reset_output(self) -> None:
        """Zero the output projection: the path adds nothing until training opens it."""
        self.proj.weight.zero_()
        self.proj.bias.zero_()

    def forward(self, rgb_B3HW: torch.Tensor) -> torch.Tensor:
        if rgb_B3HW.ndim != 4 or tuple(rgb_B3HW.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(
                f"the pixel path needs RGB (B, 3, {self.image_size}, {self.image_size}), "
                f"got {tuple(rgb_B3HW.shape)}"
            )
        finest = self.patch_nums[-1]
        grid_BChw: torch.Tensor | None = None
        feats = self.backbone(rgb_B3HW.to(self.proj.weight.dtype))
        for lateral, feat in zip(self.lateral, feats, strict=True):
            level_BChw = lateral(feat)
            if level_BChw.shape[-1] != finest:
                level_BChw = F.interpolate(level_BChw, size=(finest, finest), mode="bilinear")
            grid_BChw = level_BChw if grid_BChw is None else grid_BChw + level_BChw
        assert grid_BChw is not None
        tokens: list[torch.Tensor] = []
        for pn in self.patch_nums:
            pooled = grid_BChw if pn == finest else F.adaptive_avg_pool2d(grid_BChw, pn)
            tokens.append(pooled.flatten(2).transpose(1, 2))
        return self.proj(self.norm(torch.cat(tokens, dim=1)))
