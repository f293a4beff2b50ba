"""DepthART's dynamic targets: the residual quantiser's codes given the tokens actually fed.

A property of the frozen VQ-VAE, not of any objective: training (the DepthART loss) and
evaluation (the exposure gap) both ask "which code should scale k predict, after the
scales before it were what the model chose?", so the answer lives beside the models.
"""

from __future__ import annotations

import torch

from depthcore.models.vqvae import VQVAE


@torch.no_grad()
def depthart_targets(
    vae: VQVAE, fD_BChw: torch.Tensor, pred_K: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Dynamic targets t_k (B, pn_k^2) for predictions of every scale.

    ``pred_K``: per scale, the predicted tokens (B, pn^2) or the embedding maps
    (B, Cvae, pn, pn) fed forward. t_k quantises the residual of the depth features
    after the *predicted* scales < k; when the predictions are the VQ-VAE's own
    tokens this is exactly its decomposition.
    """
    quant = vae.quantize
    f_rest = fD_BChw.detach().float().clone()
    targets: list[torch.Tensor] = []
    for si, pn in enumerate(vae.v_patch_nums):
        targets.append(quant.nearest_code(quant.residual_at_scale(si, f_rest)))
        pred = pred_K[si]
        h_BChw = quant.embed_map(pred, pn) if pred.dim() == 2 else pred.float()
        f_rest = f_rest - quant.upsample_phi(si, h_BChw)
    return targets
