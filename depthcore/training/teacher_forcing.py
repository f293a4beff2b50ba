"""VAR teacher forcing (the baseline): targets and inputs from the VQ-VAE's own tokens."""

from __future__ import annotations

import torch

from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE
from depthcore.training.losses import LossOutput, scale_cross_entropy


def teacher_forcing_loss(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLC: torch.Tensor,
    fD_BChw: torch.Tensor,
    rgb_B3HW: torch.Tensor | None = None,
) -> LossOutput:
    """One parallel masked pass; scale k sees the ground-truth tokens of scales < k.

    ``rgb_B3HW``: the frames, for a model with a pixel path (``var.reads_pixels``).
    """
    with torch.no_grad():
        gt_idx_Bl = vae.f_to_idxBl(fD_BChw)
        x_BlCv = vae.idxBl_to_var_input(gt_idx_Bl)
    logits_BLV = var(prefix_BLC, x_BlCv, rgb_B3HW)
    return scale_cross_entropy(logits_BLV, torch.cat(gt_idx_Bl, dim=1), var.begin_ends)
