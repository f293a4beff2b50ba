"""The image condition: everything the RGB image gives DepthVAR's transformer, in one object.

The official DepthART model reaches the image only through attention: the image's own
multi-scale VQ tokens run as a prefix through the shared word/level/position embeddings.
Our options (:class:`~depthcore.models.configs.VARConfig`) add to that:

- ``prefix_embed``: ``type`` adds a learned image-token embedding to the prefix, ``own``
  also gives the prefix its own input projection;
- ``prefix_local``: every depth token adds a projection of the image token of its cell;
- ``pixel_encoder``: every depth token adds a timm CNN's features of the frame at its
  cell (:mod:`depthcore.models.pixels`; the passes then take the frame ``rgb_B3HW``).

:class:`ImageCondition` owns these parts and is built from the config; an option that is
off is absent (no parameters), so the default is the official layout and the official
``var_d16.pth`` loads strictly. Its output for one batch of images is an
:class:`ImageContext`, which the transformer's passes take as one value (the local path
for the depth tokens still to come rides in it, not in the KV cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from depthcore.models.configs import VARConfig
from depthcore.models.pixels import PixelEncoder

#: The submodule name of the condition inside DepthVAR (state_dict keys ``condition.*``).
CONDITION = "condition"

#: state_dict names before the condition was one module -> names now (checkpoints written
#: before that change load through :func:`remap_legacy_keys`).
LEGACY_KEYS = {
    "prefix_type_emb": f"{CONDITION}.type_emb",
    "prefix_word_embed.": f"{CONDITION}.word_embed.",
    "prefix_local.": f"{CONDITION}.local.",
    "pixel_encoder.": f"{CONDITION}.pixels.",
}


def remap_legacy_keys(sd: Mapping[str, Any]) -> dict[str, Any]:
    """A DepthVAR state_dict with the pre-``condition`` names renamed (others unchanged)."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = key
        for old, now in LEGACY_KEYS.items():
            if key == old or (old.endswith(".") and key.startswith(old)):
                new = now + key[len(old) :]
                break
        out[new] = value
    return out


@dataclass
class ImageContext:
    """What a batch of images gives the passes: the prefix tokens (B, L, C), embedded and
    positioned, and the local path (B, L, C) added to the depth tokens, or None."""

    tokens_BLC: torch.Tensor
    local_BLC: torch.Tensor | None

    def add_local(self, x_BlC: torch.Tensor, start: int) -> torch.Tensor:
        """Depth tokens at positions ``start..`` plus the image's local contribution there."""
        if self.local_BLC is None:
            return x_BlC
        return x_BlC + self.local_BLC[:, start : start + x_BlC.shape[1]]

    def detached(self) -> ImageContext:
        """The same values without their graph (for a no-grad rollout)."""
        local = None if self.local_BLC is None else self.local_BLC.detach()
        return ImageContext(self.tokens_BLC.detach(), local)

    def repeat_batch(self, repeats: int) -> ImageContext:
        """Every row ``repeats`` times (b -> b * repeats + n), as the KV cache's rows."""
        local = None if self.local_BLC is None else self.local_BLC.repeat_interleave(repeats, 0)
        return ImageContext(self.tokens_BLC.repeat_interleave(repeats, 0), local)


class ImageCondition(nn.Module):
    """The image's parts of DepthVAR (see the module docstring), built from a VARConfig."""

    def __init__(
        self,
        cfg: VARConfig,
        Cvae: int,
        width: int,
        patch_nums: tuple[int, ...],
        image_size: int | None,
    ) -> None:
        super().__init__()
        self.L, self.Cvae = sum(pn * pn for pn in patch_nums), Cvae
        typed = cfg.prefix_embed in ("type", "own")
        self.type_emb = nn.Parameter(torch.empty(1, 1, width)) if typed else None
        self.word_embed = nn.Linear(Cvae, width) if cfg.prefix_embed == "own" else None
        self.local = nn.Linear(Cvae, width) if cfg.prefix_local else None
        self.blank_prefix = cfg.blank_prefix
        self.pixels: PixelEncoder | None = None
        if cfg.pixel_encoder:
            if image_size is None:
                raise ValueError("a pixel encoder needs the model's image_size")
            self.pixels = PixelEncoder(
                cfg.pixel_encoder, width, patch_nums, image_size, cfg.pixel_levels
            )

    @property
    def reads_pixels(self) -> bool:
        """Whether the passes need the RGB frame besides the prefix (``cfg.pixel_encoder``)."""
        return self.pixels is not None

    @torch.no_grad()
    def reset_output(self) -> None:
        """Close the pixel path (it opens during training, see PixelEncoder)."""
        if self.pixels is not None:
            self.pixels.reset_output()

    def forward(
        self,
        prefix_BLCv: torch.Tensor,
        rgb_B3HW: torch.Tensor | None,
        shared_embed: nn.Module,
        add_pos: Callable[[torch.Tensor, int], torch.Tensor],
    ) -> ImageContext:
        """The context of image tokens (B, L, Cvae) and, for a pixel path, their frames.

        ``shared_embed`` / ``add_pos``: the transformer's word embedding and its
        level/position embedding, which the official layout shares with the depth tokens.
        """
        if prefix_BLCv.ndim != 3 or tuple(prefix_BLCv.shape[1:]) != (self.L, self.Cvae):
            raise ValueError(
                f"image prefix must be (B, {self.L}, {self.Cvae}), got {tuple(prefix_BLCv.shape)}"
            )
        if self.blank_prefix:  # the route ablation (VARConfig.blank_prefix): pixels only
            prefix_BLCv = torch.zeros_like(prefix_BLCv)
        embed = shared_embed if self.word_embed is None else self.word_embed
        tokens_BLC = add_pos(embed(prefix_BLCv.float()), 0)
        if self.type_emb is not None:
            tokens_BLC = tokens_BLC + self.type_emb
        return ImageContext(tokens_BLC, self.local_features(prefix_BLCv, rgb_B3HW))

    def local_features(
        self, prefix_BLCv: torch.Tensor, rgb_B3HW: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The image's contribution (B, L, C) to the depth tokens at the same positions,
        or None when the model reaches the image by attention only.

        The ``prefix_local`` projection runs in fp32 whatever the autocast or the weights'
        dtype: a matmul of width Cvae (16 for ``tiny``) gains nothing from bf16, which would
        only round the image's values; the pixel features are returned in fp32 too. (This
        was the ``tiny: keep fp32`` special case: a property of the path, not of a model.)
        """
        local_BLC: torch.Tensor | None = None
        if self.local is not None:
            with torch.autocast(prefix_BLCv.device.type, enabled=False):
                w, b = self.local.weight.float(), self.local.bias.float()
                local_BLC = F.linear(prefix_BLCv.float(), w, b)
        if self.pixels is not None:
            if rgb_B3HW is None:
                raise ValueError("this model reads pixels (pixel_encoder): pass rgb_B3HW")
            if rgb_B3HW.shape[0] != prefix_BLCv.shape[0]:
                raise ValueError(
                    f"{rgb_B3HW.shape[0]} RGB frames for {prefix_BLCv.shape[0]} prefixes"
                )
            pix_BLC = self.pixels(rgb_B3HW).float()
            local_BLC = pix_BLC if local_BLC is None else local_BLC + pix_BLC
        return local_BLC
