"""DepthART's image conditioning: the RGB image's own multi-scale tokens as a prefix."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from depthcore.models.vqvae import VQVAE


@torch.no_grad()
def image_prefix(vae: VQVAE, rgb_B3HW: torch.Tensor) -> torch.Tensor:
    """Image tokens (B, L, Cvae) of an RGB batch in [-1, 1].

    As in the official DepthART code: the frozen VQ-VAE decomposes the image; the
    cumulative f_hat after each scale k is bicubic-resized to pn_k x pn_k and the maps
    are flattened scale by scale, so the prefix lines up token for token (and level
    embedding for level embedding) with the depth sequence.
    """
    return fhats_to_prefix(vae.quantize.f_to_fhats(vae.encode_features(rgb_B3HW)), vae.v_patch_nums)


def fhats_to_prefix(fhats: list[torch.Tensor], patch_nums: tuple[int, ...]) -> torch.Tensor:
    """Resize each cumulative f_hat (B, C, H, W) to its scale's pn and concatenate (B, L, C)."""
    tokens: list[torch.Tensor] = []
    for f_hat, pn in zip(fhats, patch_nums, strict=True):
        if f_hat.shape[-1] != pn:
            f_hat = F.interpolate(f_hat, size=(pn, pn), mode="bicubic")
        tokens.append(f_hat.flatten(2).transpose(1, 2))
    return torch.cat(tokens, dim=1)
