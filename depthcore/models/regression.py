"""The discriminative baseline: a timm backbone and a light U-Net decoder regressing depth.

The paper compares DepthART with DPT/MiDaS-style regressors; this is that row at our
scale, and the yardstick of the generative models: it sees the same RGB frames at the
same resolution and regresses the same normalised target (a map in [-1, 1] in the
model's ``space``) in one forward pass, no tokenizer, no tokens. A transformer that
loses to it at equal compute is not yet using the image.

The backbone is built by ``timm.create_model(..., features_only=True,
pretrained=False)``: random init, never a hub download, so the pipeline stays offline
and the comparison with our from-scratch transformers is fair. A checkpoint loads into
the same network written out without timm (:mod:`depthcore.models.resnet_t`, for the
ResNets it lists; :func:`~depthcore.models.pixels.feature_backbone`). The decoder is a
feature pyramid fused top-down U-Net style (upsample, concatenate the skip, two 3x3
convs) up to the finest backbone level, then one upsampling to the input size and a
``tanh`` head (the target lives in [-1, 1]).

``REGRESSION_CONFIGS`` is keyed by the same names as ``MODEL_CONFIGS`` (``tiny``,
``d16``) so that ``train.model`` sizes the transformer and its baseline together, at
the same resolution.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthcore.config import frozen
from depthcore.errors import CheckpointError
from depthcore.models.checkpoint import checkpoint_kind, load_module, save_module
from depthcore.models.configs import ABLATION_BASES
from depthcore.models.pixels import feature_backbone

#: The ``depthcore_kind`` of a baseline checkpoint: what the predictor dispatches on.
REGRESSION_KIND = "regression"


@frozen
class RegressionConfig:
    """A regression model's shape, stored in its checkpoint and compared on load."""

    backbone: str = "resnet10t"  # any timm model that supports features_only
    image_size: int = 64  # square input, the transformer's resolution
    decoder_channels: tuple[int, ...] = (128, 64, 32, 32)  # coarse -> fine fusion widths
    norm_groups: int = 8  # GroupNorm groups in the decoder (batch-size independent)

    def __post_init__(self) -> None:
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")
        for width in self.decoder_channels:
            if width % self.norm_groups:
                raise ValueError(f"decoder width {width} is not divisible by norm_groups")


#: Named regression baselines, one per transformer size (same names, same image_size).
REGRESSION_CONFIGS: dict[str, RegressionConfig] = {
    # CPU baseline of the embedded default, 64 px like `tiny`. ResNet-10-T (6.2 M params,
    # ~90 CPU-ms/step at batch 8) generalised best on the default data at 500 steps: val
    # AbsRel (lsq, 40 frames) 0.250, against resnet18 0.258 and convnext_atto 0.269.
    "tiny": RegressionConfig(backbone="resnet10t", image_size=64),
    # GPU baseline next to d16 at 256 px.
    "d16": RegressionConfig(
        backbone="resnet50", image_size=256, decoder_channels=(256, 128, 64, 64)
    ),
}
# the official DepthART transformer is d16-sized: the same baseline stands next to it
REGRESSION_CONFIGS["d16-depthart"] = REGRESSION_CONFIGS["d16"]
# the study's image-route ablations keep their base model's size: a params file naming one
# still runs the regression stage beside it
REGRESSION_CONFIGS.update({name: REGRESSION_CONFIGS[base] for name, base in ABLATION_BASES.items()})


def _conv_block(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    """Two 3x3 conv + GroupNorm + GELU: the fusion unit of each decoder level."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(groups, c_out),
        nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(groups, c_out),
        nn.GELU(),
    )


class DepthRegressor(nn.Module):
    """RGB in [-1, 1] (B, 3, S, S) -> normalised depth (B, 1, S, S) in [-1, 1]."""

    def __init__(self, config: RegressionConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = feature_backbone(config.backbone)
        widths = list(self.encoder.feature_info.channels())
        if len(widths) < len(config.decoder_channels) + 1:
            raise ValueError(
                f"{config.backbone} has {len(widths)} feature levels; the decoder needs "
                f"{len(config.decoder_channels) + 1}"
            )
        self.fuse = nn.ModuleList()
        c_in = widths[-1]
        for k, c_out in enumerate(config.decoder_channels):
            skip = widths[-2 - k]
            self.fuse.append(_conv_block(c_in + skip, c_out, config.norm_groups))
            c_in = c_out
        self.head = nn.Conv2d(c_in, 1, 3, padding=1)

    def forward(self, rgb_B3SS: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(rgb_B3SS)
        x_BChw = feats[-1]
        for k, block in enumerate(self.fuse):
            skip_BChw = feats[-2 - k]
            x_BChw = F.interpolate(x_BChw, size=skip_BChw.shape[-2:], mode="bilinear")
            x_BChw = block(torch.cat([x_BChw, skip_BChw], dim=1))
        pred_B1hw = self.head(x_BChw)
        pred_B1SS = F.interpolate(pred_B1hw, size=rgb_B3SS.shape[-2:], mode="bilinear")
        return torch.tanh(pred_B1SS)


def resolve_regression_config(name: str, **overrides: Any) -> RegressionConfig:
    """``REGRESSION_CONFIGS[name]`` with fields replaced; unknown names list the choices."""
    if name not in REGRESSION_CONFIGS:
        raise KeyError(
            f"unknown regression model '{name}' (choices: {', '.join(sorted(REGRESSION_CONFIGS))})"
        )
    return dataclasses.replace(REGRESSION_CONFIGS[name], **overrides)


def create_regression(name: str, **overrides: Any) -> DepthRegressor:
    """A random-init regression baseline by name, e.g. ``create_regression("tiny")``."""
    return DepthRegressor(resolve_regression_config(name, **overrides))


# --- checkpoints ---------------------------------------------------------------------------


@dataclass
class LoadedRegression:
    net: DepthRegressor
    config: RegressionConfig
    meta: dict[str, Any]


def save_regression(
    path: str | Path, net: DepthRegressor, meta: Mapping[str, Any] | None = None
) -> None:
    """One safetensors file of kind ``regression``: weights, config, meta (space, image_size)."""
    save_module(path, REGRESSION_KIND, net, net.config, meta)


def load_regression(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    expected: RegressionConfig | None = None,
) -> LoadedRegression:
    """Rebuild a baseline from a :func:`save_regression` file, strictly (names the file)."""
    kind = checkpoint_kind(path)
    if kind != REGRESSION_KIND:
        raise CheckpointError(f"{path}: a '{kind}' checkpoint, not a regression baseline")
    net, cfg, meta = load_module(
        path, RegressionConfig, DepthRegressor, map_location=map_location, expected=expected,
        what="the regression tensors",
    )  # fmt: skip
    return LoadedRegression(net, cfg, meta)
