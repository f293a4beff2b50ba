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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from depthcore.models.resnet_t import build_empty, feature_info, is_supported, seeded

#: True while a checkpoint loader builds a model whose every tensor it will then load
#: (:func:`weights_from_checkpoint`); a contextvar, so threads and tasks do not share it.
_FROM_CHECKPOINT: ContextVar[bool] = ContextVar("depthcore_weights_from_checkpoint", default=False)


@contextmanager
def weights_from_checkpoint() -> Iterator[None]:
    """Build feature backbones for a strict checkpoint load: timm-free, uninitialised.

    Inside it, :func:`feature_backbone` (and so PixelEncoder and the regression model)
    builds a written-out backbone (:mod:`depthcore.models.resnet_t`) on the meta device:
    no timm import (~1.6 s with torchvision), no initialisation, no draw from the global
    RNG. The caller must then load every backbone tensor, strictly and with ``assign``
    (``checkpoint._strict_load`` does). Outside it, fresh models are built as before.
    """
    token = _FROM_CHECKPOINT.set(True)
    try:
        yield
    finally:
        _FROM_CHECKPOINT.reset(token)


def timm_features(name: str, **kwargs: object) -> nn.Module:
    """A randomly initialised timm ``features_only`` backbone (never a hub download).

    timm is imported here, not at module level: it pulls in torchvision and
    torch._dynamo (~2.4 s), which every stage importing ``depthcore.models`` (the
    tokenizer, features and register stages build no timm model) would pay at start.
    """
    import timm

    return timm.create_model(name, features_only=True, pretrained=False, **kwargs)


def feature_backbone(name: str, out_indices: Sequence[int] | None = None) -> nn.Module:
    """timm's ``features_only`` backbone ``name`` (levels ``out_indices``, default all).

    When :mod:`~depthcore.models.resnet_t` has ``name``, it is the written-out module
    (same keys, same forward; the module a checkpoint later loads into), without timm:
    fresh, with timm's initialisation and RNG draws (:func:`~depthcore.models.resnet_t.seeded`,
    the seeded init the measured models were trained from); under
    :func:`weights_from_checkpoint`, empty for the load. Other names are timm's.
    """
    if is_supported(name):
        return (
            build_empty(name, out_indices) if _FROM_CHECKPOINT.get() else seeded(name, out_indices)
        )
    kwargs = {} if out_indices is None else {"out_indices": tuple(out_indices)}
    return timm_features(name, **kwargs)


def _level_strides(name: str) -> list[int]:
    """The stride of every level of backbone ``name`` (timm's ``feature_info.reduction()``).

    A fresh build makes a full backbone first, as it always has (a full timm build): its
    draws from the RNG are part of the seeded initialisation the measured default was
    trained from. A build for a checkpoint reads the strides from the written-out table
    (no build, no draw).
    """
    if not is_supported(name):
        return list(timm_features(name).feature_info.reduction())
    if not _FROM_CHECKPOINT.get():
        seeded(name)  # the full build's draws
    return feature_info(name).reduction()


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
        coarse = [i for i, r in enumerate(_level_strides(backbone)) if r >= stride]
        if len(coarse) < levels:
            raise ValueError(
                f"{backbone} has {len(coarse)} feature level(s) with stride >= {stride}, "
                f"pixel_levels asks for {levels}"
            )
        # timm stops the backbone at the last level asked for: fewer levels, less compute
        self.backbone = feature_backbone(backbone, coarse[:levels])
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
