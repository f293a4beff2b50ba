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

import dataclasses

import torch
import torch.nn.functional as F

from depthcore.models.generate import rollout, sampling_for
from depthcore.models.targets import depthart_targets
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE
from depthcore.training.losses import LossOutput, scale_cross_entropy


def depthart_loss(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLC: torch.Tensor,
    fD_BChw: torch.Tensor,
    rgb_B3HW: torch.Tensor | None = None,
    rollout_decoding: str = "greedy",
    rec_loss: bool = False,
) -> LossOutput:
    """Cross-entropy of the parallel pass on the model's own inputs against dynamic targets.

    The rollout runs in the modules' current mode (use drop rates of 0, the default,
    for the rollout and the parallel pass to see identical inputs). The image prefix
    runs once, with grad: the rollout starts from a detached copy of its keys/values
    and the loss pass attends to the originals, which gives the loss and gradients of
    ``var(prefix, x)`` without a second prefix pass (tested). The pixel path of a
    model that has one (``rgb_B3HW``) also runs once: its output rides in the image context.
    ``rec_loss``: the official ``rec_loss`` last scale (:func:`with_rec_loss`).
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
    out = scale_cross_entropy(logits_BLV, torch.cat(targets, dim=1), var.begin_ends)
    return with_rec_loss(vae, out, own.h_K, fD_BChw, var.begin_ends) if rec_loss else out


#: The official weight of the feature term (``f_dif = mean((f_hat - f)^2) * 10``).
REC_LOSS_WEIGHT = 10.0


def with_rec_loss(
    vae: VQVAE,
    out: LossOutput,
    h_K: list[torch.Tensor],
    fD_BChw: torch.Tensor,
    begin_ends: list[tuple[int, int]],
) -> LossOutput:
    """The official DepthART ``rec_loss``: no cross-entropy on the last scale; instead its
    logits pick a Gumbel-softmax (tau 1, soft) mixture of codes that completes the
    rollout's f_hat, scored by ``10 * mean((f_hat - f_D)^2)`` against the depth features.

    Every other token keeps its CE with equal weight (the official ``VARLoss(L=424)``:
    1/424 each for d16's first nine scales). The gradient of the feature term reaches
    the last scale's logits only (earlier scales fed their argmax codes). The Gumbel
    noise draws from torch's global generator. docs/paper.md ("Architecture and loss")
    lists what the release lacks and what is inferred here.
    """
    quant = vae.quantize
    last = len(begin_ends) - 1
    start, end = begin_ends[last]
    pn = quant.v_patch_nums[last]
    with torch.no_grad():  # f_hat after the rollout's first K-1 scales (argmax codes)
        f_hat_BChw = torch.zeros_like(fD_BChw, dtype=torch.float32)
        for si, h_BChw in enumerate(h_K[:last]):
            f_hat_BChw = f_hat_BChw + quant.upsample_phi(si, h_BChw.float())
    soft_BlV = F.gumbel_softmax(out.logits_BLV[:, start:end].float(), tau=1.0, hard=False)
    h_BlCv = soft_BlV @ quant.embedding.weight.detach().float()
    h_BChw = h_BlCv.transpose(1, 2).reshape(h_BlCv.shape[0], quant.Cvae, pn, pn)
    f_hat_BChw = f_hat_BChw + quant.upsample_phi(last, h_BChw)
    f_dif = (f_hat_BChw - fD_BChw.detach().float()).pow(2).mean() * REC_LOSS_WEIGHT
    scored_L = torch.ones(out.ce_BL.shape[1], dtype=torch.bool, device=out.ce_BL.device)
    scored_L[start:end] = False
    loss = out.ce_BL[:, scored_L].mean() + f_dif
    return dataclasses.replace(out, loss=loss, scored_L=scored_L, extra_loss=f_dif)
