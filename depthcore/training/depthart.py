"""DepthART: train on the model's own predictions with dynamically re-quantised targets.

Teacher forcing shows scale k the ground-truth tokens of scales < k, which the model
never sees at inference. DepthART shows it its own argmax tokens z_1..z_{k-1} and asks
for the tokens that best explain what those predictions left unexplained:
t_k = nearest-code(area-resize(f_D - f_hat_pred_{<k}, pn_k)).
``rollout="expected"`` (ours, ``train.rollout``) rolls out with the decoding the
evaluation uses by default: each scale feeds its probability-weighted mean code
embedding, and the residual targets are taken against what those embeddings
reconstruct, so training sees exactly the inputs inference will.

Efficient form: one no-grad KV-cached greedy rollout yields every z_k (and so every
t_k, a cheap quantiser loop), then ONE parallel masked pass with gradients over inputs
built from z gives all logits. With the same inputs the parallel pass reproduces the
rollout's logits, so its argmax is z again: the sequential and parallel forms agree.
"""

from __future__ import annotations

import torch

from depthcore.models.generate import rollout, sampling_for
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE
from depthcore.training.losses import LossOutput, scale_cross_entropy


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


def depthart_loss(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLC: torch.Tensor,
    fD_BChw: torch.Tensor,
    rgb_B3HW: torch.Tensor | None = None,
    rollout_decoding: str = "greedy",
) -> LossOutput:
    """Cross-entropy of the parallel pass on the model's own inputs against dynamic targets.

    The rollout runs in the modules' current mode (use drop rates of 0, the default,
    for the rollout and the parallel pass to see identical inputs). The image prefix
    runs once, with grad: the rollout starts from a detached copy of its keys/values
    and the loss pass attends to the originals, which gives the loss and gradients of
    ``var(prefix, x)`` without a second prefix pass (tested). The pixel path of a
    model that has one (``rgb_B3HW``) also runs once: its output rides in the image context.
    """
    if rollout_decoding not in ("greedy", "expected"):
        raise ValueError(f"rollout must be 'greedy' or 'expected', got {rollout_decoding!r}")
    sampling = sampling_for(rollout_decoding)
    context = var.image_context(prefix_BLC, rgb_B3HW)
    cache = var.new_cache()
    var.fill_prefix(context, cache)
    with torch.no_grad():
        own = rollout(
            vae, var, prefix_BLC, sampling,
            prefix_cache=cache.detached(), context=context.detached(),
        )  # fmt: skip
        targets = depthart_targets(vae, fD_BChw, own.h_K)
        x_BlCv = own.x_BlCv
    logits_BLV = var.depth_after_prefix(x_BlCv, cache, context)
    return scale_cross_entropy(logits_BLV, torch.cat(targets, dim=1), var.begin_ends)
