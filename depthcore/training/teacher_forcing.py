"""VAR teacher forcing (the baseline): targets and inputs from the VQ-VAE's own tokens."""

from __future__ import annotations

import torch

from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE
from depthcore.training.losses import LossOutput, scale_cross_entropy


def teacher_forcing_loss(
    vae: VQVAE, var: DepthVAR, prefix_BLC: torch.Tensor, fD_BChw: torch.Tensor
) -> LossOutput:
    """One parallel masked pass; scale k sees the ground-truth tokens of scales < k."""
    with torch.no_grad():
        gt_idx_Bl = vae.f_to_idxBl(fD_BChw)
        x_BlCv = vae.idxBl_to_var_input(gt_idx_Bl)
    logits_BLV = var(prefix_BLC, x_BlCv)
    return scale_cross_entropy(logits_BLV, torch.cat(gt_idx_Bl, dim=1), var.begin_ends)
