"""Autoregressive next-scale depth generation with DepthVAR (KV-cached or not).

The rollout is shared with the DepthART objective, which needs exactly the same
greedy, KV-cached pass to find the model's own tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from depthcore.config import frozen
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE


@frozen
class SamplingConfig:
    """How each scale's tokens are chosen.

    ``greedy``: argmax (VAR-TF baseline, DepthART's training rollout). Otherwise the
    official DepthART sampling: ``num_samples`` tokens per position drawn after top-k and
    top-p (nucleus) filtering, their code embeddings averaged. ``seed`` seeds the
    generator when the caller passes none.
    """

    greedy: bool = False
    top_k: int = 900
    top_p: float = 0.90
    num_samples: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.top_k < 0 or not 0.0 < self.top_p <= 1.0 or self.num_samples < 1:
            raise ValueError(f"invalid sampling settings: {self}")


GREEDY = SamplingConfig(greedy=True, num_samples=1)


@dataclass
class Rollout:
    """Tokens (argmax or first sample) per scale, the final f_hat and optional per-scale f_hats."""

    idx_Bl: list[torch.Tensor]
    f_hat_BChw: torch.Tensor
    fhats_K: list[torch.Tensor] | None


@dataclass
class Generation:
    """Prediction (B, 1, H, W) in the normalised space; per-scale maps (K, B, 1, H, W)."""

    pred_B1HW: torch.Tensor
    scales_K_B1HW: torch.Tensor | None


def filter_top_k_top_p(logits_NV: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits with everything outside the top-k and outside the top-p mass set to -inf.

    The most likely token always survives, so a row is never empty.
    """
    V = logits_NV.shape[-1]
    out = logits_NV.clone()
    if 0 < top_k < V:
        kth_N1 = logits_NV.topk(top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth_N1, -torch.inf)
    if top_p < 1.0:
        sorted_NV, order_NV = out.sort(dim=-1, descending=True)
        sorted_probs_NV = sorted_NV.softmax(-1)
        mass_before_NV = sorted_probs_NV.cumsum(-1) - sorted_probs_NV
        drop_sorted_NV = mass_before_NV >= top_p
        drop_sorted_NV[..., 0] = False
        drop_NV = torch.zeros_like(drop_sorted_NV).scatter_(-1, order_NV, drop_sorted_NV)
        out = out.masked_fill(drop_NV, -torch.inf)
    return out


def choose_tokens(
    vae: VQVAE,
    logits_BlV: torch.Tensor,
    sampling: SamplingConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(idx_Bl, h_BlCv): chosen tokens and the code embedding fed forward (mean of samples)."""
    embedding = vae.quantize.embedding
    if sampling.greedy:
        idx_Bl = logits_BlV.argmax(dim=-1)
        return idx_Bl, embedding(idx_Bl)
    B, l, V = logits_BlV.shape
    logits_NV = logits_BlV.reshape(-1, V).float()
    probs_NV = filter_top_k_top_p(logits_NV, sampling.top_k, sampling.top_p).softmax(-1)
    idx_NS = torch.multinomial(
        probs_NV, sampling.num_samples, replacement=True, generator=generator
    )
    h_BlCv = embedding(idx_NS).mean(dim=1).view(B, l, -1)
    return idx_NS[:, 0].view(B, l), h_BlCv


@torch.no_grad()
def rollout(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLCv: torch.Tensor,
    sampling: SamplingConfig = GREEDY,
    *,
    use_cache: bool = True,
    keep_fhats: bool = False,
    generator: torch.Generator | None = None,
) -> Rollout:
    """Generate all K scales, feeding each scale's choice back as the next input.

    ``use_cache=False`` recomputes the whole masked sequence at every scale (the
    reference the cache is tested against, and the slow path the benchmark reports).
    """
    B, SN = prefix_BLCv.shape[0], len(var.patch_nums)
    H = vae.v_patch_nums[-1]
    f_hat = prefix_BLCv.new_zeros(B, vae.Cvae, H, H, dtype=torch.float32)
    cache = var.new_cache() if use_cache else None
    inputs: list[torch.Tensor] = []
    idx_all: list[torch.Tensor] = []
    fhats: list[torch.Tensor] | None = [] if keep_fhats else None
    next_BlCv: torch.Tensor | None = None
    for si, pn in enumerate(var.patch_nums):
        if cache is not None:
            if si == 0:
                logits_BlV = var.start_cached(prefix_BLCv, cache)
            else:
                logits_BlV = var.step_cached(si, next_BlCv, cache)
        else:
            x_BlCv = torch.cat(inputs, dim=1) if inputs else None
            start, end = var.begin_ends[si]
            logits_BlV = var(prefix_BLCv, x_BlCv)[:, start:end]
        idx_Bl, h_BlCv = choose_tokens(vae, logits_BlV, sampling, generator)
        idx_all.append(idx_Bl)
        h_BChw = h_BlCv.transpose(1, 2).reshape(B, vae.Cvae, pn, pn)
        f_hat, next_BChw = vae.get_next_autoregressive_input(si, SN, f_hat, h_BChw)
        if fhats is not None:
            fhats.append(f_hat.clone())
        next_BlCv = next_BChw.flatten(2).transpose(1, 2)
        inputs.append(next_BlCv)
    return Rollout(idx_all, f_hat, fhats)


def decode_depth(vae: VQVAE, f_hat_BChw: torch.Tensor) -> torch.Tensor:
    """Decoded prediction (B, 1, H, W): the mean of the 3 decoded channels."""
    return vae.fhat_to_img(f_hat_BChw).mean(dim=1, keepdim=True)


@torch.no_grad()
def generate(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLC: torch.Tensor,
    *,
    sampling: SamplingConfig,
    use_cache: bool = True,
    return_scales: bool = False,
    generator: torch.Generator | None = None,
) -> Generation:
    """Depth prediction (normalised space) for image prefixes from ``image_prefix``."""
    if generator is None and not sampling.greedy:
        generator = torch.Generator(device=prefix_BLC.device).manual_seed(sampling.seed)
    result = rollout(
        vae,
        var,
        prefix_BLC,
        sampling,
        use_cache=use_cache,
        keep_fhats=return_scales,
        generator=generator,
    )
    pred_B1HW = decode_depth(vae, result.f_hat_BChw)
    scales = None
    if result.fhats_K is not None:
        scales = torch.stack([decode_depth(vae, f) for f in result.fhats_K])
    return Generation(pred_B1HW, scales)
