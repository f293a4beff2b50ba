"""Autoregressive next-scale depth generation with DepthVAR (KV-cached or not).

The rollout is shared with the DepthART objective, which needs exactly the same
greedy, KV-cached pass to find the model's own tokens.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from depthcore.config import frozen
from depthcore.models.blocks import KVCache
from depthcore.models.condition import ImageContext
from depthcore.models.prefix import fhats_to_prefix
from depthcore.models.scale_loop import next_scale_loop
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE

#: The decoding names params.yaml uses (``evaluate.decoding``, ``scales.decoding``).
DECODINGS = ("greedy", "sample", "expected")


@frozen
class SamplingConfig:
    """How each scale's tokens are chosen.

    ``greedy``: argmax (DepthART's training rollout). ``expected``: the exact mean
    code embedding under the top-k/top-p filtered distribution, the limit of the
    official averaging as ``num_samples`` grows: deterministic, and where the model
    is unsure between codes it feeds their probability-weighted mean instead of one
    guess, so uncertain fine scales add little instead of a wrong residual (measured
    in docs/learning.md). Otherwise the official DepthART sampling: ``num_samples``
    tokens per position drawn after top-k and top-p (nucleus) filtering, their code
    embeddings averaged. ``seed`` seeds the generator when the caller passes none.
    """

    greedy: bool = False
    top_k: int = 900
    top_p: float = 0.90
    num_samples: int = 5
    seed: int = 0
    expected: bool = False

    def __post_init__(self) -> None:
        if self.top_k < 0 or not 0.0 < self.top_p <= 1.0 or self.num_samples < 1:
            raise ValueError(f"invalid sampling settings: {self}")
        if self.greedy and self.expected:
            raise ValueError("greedy and expected decoding exclude each other")

    @property
    def decoding(self) -> str:
        """The name in :data:`DECODINGS` (what evaluation records)."""
        return "greedy" if self.greedy else "expected" if self.expected else "sample"

    @property
    def stochastic(self) -> bool:
        """Whether the choice draws random numbers (needs a generator to be reproducible)."""
        return not (self.greedy or self.expected)


GREEDY = SamplingConfig(greedy=True, num_samples=1)
EXPECTED = SamplingConfig(expected=True, num_samples=1)


def sampling_for(decoding: str, seed: int = 0) -> SamplingConfig:
    """The :class:`SamplingConfig` a params.yaml decoding name stands for."""
    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r}; choose from {', '.join(DECODINGS)}")
    named = {"greedy": GREEDY, "expected": EXPECTED, "sample": SamplingConfig()}[decoding]
    return dataclasses.replace(named, seed=seed)


@dataclass
class Rollout:
    """What a rollout chose and built.

    ``idx_Bl``: tokens (argmax or first sample) per scale; ``h_K``: the code
    embedding maps (B, Cvae, pn, pn) it fed forward; ``next_K``: the input each scale
    built for the next one (B, pn_next^2, Cvae); the final f_hat and optional
    per-scale f_hats.
    """

    idx_Bl: list[torch.Tensor]
    f_hat_BChw: torch.Tensor
    fhats_K: list[torch.Tensor] | None
    h_K: list[torch.Tensor]
    next_K: list[torch.Tensor]

    @property
    def x_BlCv(self) -> torch.Tensor:
        """The transformer input these choices make (scales 2..K; for greedy tokens the
        same as ``idxBl_to_var_input``). Built on demand: generation never needs it."""
        return torch.cat(self.next_K[:-1], dim=1)


@dataclass
class Generation:
    """Prediction (B, 1, H, W) in the normalised space; per-scale maps (K, B, 1, H, W)."""

    pred_B1HW: torch.Tensor
    scales_K_B1HW: torch.Tensor | None


def filter_top_k_top_p(logits_NV: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits with everything outside the top-k and outside the top-p mass set to -inf.

    The most likely token always survives, so a row is never empty. One partial sort
    (``topk``) serves both filters: the nucleus is a prefix of the k sorted values, so
    the survivors are the logits >= a per-row threshold (6x cheaper than sorting all V
    at d16, measured in bench/profile_generate.py). Ties at the threshold all survive.
    """
    V = logits_NV.shape[-1]
    k = top_k if 0 < top_k < V else V
    if k == V and top_p >= 1.0:
        return logits_NV.clone()
    top_Nk = logits_NV.topk(k, dim=-1).values  # sorted, descending
    threshold_N1 = top_Nk[..., -1:]
    if top_p < 1.0:
        probs_Nk = top_Nk.softmax(-1)
        mass_before_Nk = probs_Nk.cumsum(-1) - probs_Nk
        n_keep_N1 = (mass_before_Nk < top_p).sum(-1, keepdim=True)  # >= 1: the first is 0
        threshold_N1 = top_Nk.gather(-1, n_keep_N1 - 1)
    return logits_NV.masked_fill(logits_NV < threshold_N1, -torch.inf)


def choose_tokens(
    vae: VQVAE,
    logits_BlV: torch.Tensor,
    sampling: SamplingConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(idx_Bl, h_BlCv): chosen tokens and the code embedding fed forward.

    ``h_BlCv`` is the chosen code's embedding (greedy), the mean over the samples
    (sampling) or the probability-weighted mean (expected; ``idx_Bl`` is then the argmax).
    """
    embedding = vae.quantize.embedding
    if sampling.greedy:
        idx_Bl = logits_BlV.argmax(dim=-1)
        return idx_Bl, embedding(idx_Bl)
    B, l, V = logits_BlV.shape
    logits_NV = logits_BlV.reshape(-1, V).float()
    probs_NV = filter_top_k_top_p(logits_NV, sampling.top_k, sampling.top_p).softmax(-1)
    if sampling.expected:
        h_NCv = probs_NV.to(embedding.weight.dtype) @ embedding.weight
        return logits_BlV.argmax(dim=-1), h_NCv.view(B, l, -1)
    idx_NS = torch.multinomial(
        probs_NV, sampling.num_samples, replacement=True, generator=generator
    )
    h_BlCv = embedding(idx_NS).mean(dim=1).view(B, l, -1)
    return idx_NS[:, 0].view(B, l), h_BlCv


def autocast_for(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (e.g. bf16, fast on CPUs with AVX512-BF16/AMX) or a no-op for None."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def model_dtype(var: DepthVAR) -> torch.dtype | None:
    """The low precision ``var`` was prepared for (see :func:`prepare_for_inference`), or None."""
    dtype = var.head.weight.dtype
    return None if dtype == torch.float32 else dtype


def prepare_for_inference(vae: VQVAE, var: DepthVAR, dtype: torch.dtype | None = None) -> None:
    """Lay the models out for fast generation (in place; both are frozen afterwards).

    The VQ-VAE's convolutions go channels-last (oneDNN's fast layout on CPU: ~3x per
    256-px conv, measured). With ``dtype`` (bf16) the transformer's weights are stored
    in that precision once: under plain autocast every cached scale would re-cast its
    ~300M weights, which costs more than the small scales' matmuls. Such a transformer
    then runs only under autocast: :func:`generate` and :func:`rollout` see its dtype
    and enter it. The quantiser's code choices and f_hat stay fp32. The AdaLN modulations
    of the constant null-class condition are computed once here (a third of every block's
    weights no longer read per scale; used only in eval mode with these weights).
    """
    vae.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    var.eval().requires_grad_(False)
    if dtype is not None and dtype != torch.float32:
        var.to(dtype)
    with autocast_for(var.head.weight.device, model_dtype(var)):
        var.freeze_condition()  # the null-class AdaLN vectors, once instead of every scale


@torch.inference_mode()
def encode_image(
    vae: VQVAE, rgb_B3HW: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Image prefix (B, L, Cvae) as :func:`image_prefix`, the encoder under ``dtype`` autocast."""
    with autocast_for(rgb_B3HW.device, dtype):
        f_BChw = vae.encode_features(rgb_B3HW.contiguous(memory_format=torch.channels_last))
    fhats = vae.quantize.f_to_fhats(f_BChw.float().contiguous())
    return fhats_to_prefix(fhats, vae.v_patch_nums)


def _first_scale(
    var: DepthVAR,
    prefix_BLCv: torch.Tensor,
    cache: KVCache | None,
    repeats: int,
    context: ImageContext | None,
    rgb_B3HW: torch.Tensor | None,
) -> tuple[torch.Tensor, ImageContext | None]:
    """Logits of scale 1 for every sample and the image context the cached steps add;
    the prefix runs once per image, not per sample (without a cache the rows come
    already repeated and every scale reruns the whole pass, see :func:`rollout`)."""
    if cache is None:
        return var(prefix_BLCv, None, rgb_B3HW)[:, : var.first_l], None
    if context is not None:  # the cache holds the prefix already (DepthVAR.fill_prefix)
        return var.depth_after_prefix(None, cache, context), context
    context = var.image_context(prefix_BLCv, rgb_B3HW)
    logits_BlV = var.start_cached(context, cache)
    if repeats > 1:
        cache.repeat_batch(repeats)
        context = context.repeat_batch(repeats)
        logits_BlV = logits_BlV.repeat_interleave(repeats, dim=0)
    return logits_BlV, context


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
    repeats: int = 1,
    prefix_cache: KVCache | None = None,
    context: ImageContext | None = None,
    rgb_B3HW: torch.Tensor | None = None,
) -> Rollout:
    """Generate all K scales, feeding each scale's choice back as the next input.

    ``repeats=N`` makes N rollouts per image (rows ``b * N + n``, as
    ``prefix.repeat_interleave(N)``) while the prefix pass runs once per image and its
    keys/values are copied. ``use_cache=False`` recomputes the whole masked sequence at
    every scale (the reference the cache is tested against). ``prefix_cache``: a cache
    already holding the prefix's keys/values (:meth:`DepthVAR.fill_prefix`), extended
    in place, so the prefix pass is not run again, with the ``context`` it was filled
    from (:meth:`DepthVAR.image_context`). ``rgb_B3HW``: the frames (in
    [-1, 1], model resolution) for a model with a pixel path. A transformer prepared
    in bf16 runs under bf16 autocast; the quantiser's f_hat updates stay fp32.
    """
    B, SN = prefix_BLCv.shape[0] * repeats, len(var.patch_nums)
    H = vae.v_patch_nums[-1]
    f_hat = prefix_BLCv.new_zeros(B, vae.Cvae, H, H, dtype=torch.float32)
    if prefix_cache is not None and (not use_cache or repeats != 1):
        raise ValueError("prefix_cache needs use_cache=True and repeats=1")
    if (prefix_cache is None) != (context is None):
        raise ValueError("prefix_cache and context go together (DepthVAR.fill_prefix)")
    cache = prefix_cache if prefix_cache is not None else var.new_cache() if use_cache else None
    if cache is None and repeats > 1:  # the reference path reruns every row at every scale
        prefix_BLCv = prefix_BLCv.repeat_interleave(repeats, dim=0)
        if rgb_B3HW is not None:
            rgb_B3HW = rgb_B3HW.repeat_interleave(repeats, dim=0)
        repeats = 1
    autocast = autocast_for(prefix_BLCv.device, model_dtype(var))
    inputs: list[torch.Tensor] = []  # scales 2..k's inputs so far (the uncached path reruns them)

    def step(si: int, next_BlCv: torch.Tensor | None) -> torch.Tensor:
        nonlocal context
        with autocast:
            if si == 0:
                logits_BlV, context = _first_scale(
                    var, prefix_BLCv, cache, repeats, context, rgb_B3HW
                )
                return logits_BlV
            inputs.append(next_BlCv)
            if cache is not None:
                return var.step_cached(si, next_BlCv, cache, context)
            start, end = var.begin_ends[si]
            return var(prefix_BLCv, torch.cat(inputs, dim=1), rgb_B3HW)[:, start:end]

    def choose(si: int, logits_BlV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx_Bl, h_BlCv = choose_tokens(vae, logits_BlV.float(), sampling, generator)
        pn = var.patch_nums[si]
        return idx_Bl, h_BlCv.transpose(1, 2).reshape(B, vae.Cvae, pn, pn)

    def advance(
        si: int, f_hat: torch.Tensor, h_BChw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f_hat, next_BChw = vae.get_next_autoregressive_input(si, SN, f_hat, h_BChw)
        return f_hat, next_BChw.flatten(2).transpose(1, 2)

    snapshot = torch.Tensor.clone if keep_fhats else None
    loop = next_scale_loop(SN, f_hat, step, choose, advance, snapshot)
    return Rollout(loop.idx_K, loop.f_hat, loop.fhats_K, loop.h_K, loop.next_K)


def decode_depth(
    vae: VQVAE, f_hat_BChw: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Decoded prediction (B, 1, H, W) fp32: the mean of the 3 decoded channels."""
    with autocast_for(f_hat_BChw.device, dtype):
        img_B3HW = vae.fhat_to_img(f_hat_BChw.contiguous(memory_format=torch.channels_last))
    return img_B3HW.float().mean(dim=1, keepdim=True).contiguous()


@torch.inference_mode()
def generate(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLC: torch.Tensor,
    *,
    sampling: SamplingConfig,
    use_cache: bool = True,
    return_scales: bool = False,
    generator: torch.Generator | None = None,
    repeats: int = 1,
    rgb_B3HW: torch.Tensor | None = None,
) -> Generation:
    """Depth prediction (normalised space) for image prefixes from ``image_prefix``.

    ``repeats=N`` gives N rollouts per image (B * N rows, see :func:`rollout`);
    ``rgb_B3HW``: the frames, for a model with a pixel path. The
    decoder runs in the transformer's prepared precision (:func:`prepare_for_inference`).
    """
    if generator is None and sampling.stochastic:
        generator = torch.Generator(device=prefix_BLC.device).manual_seed(sampling.seed)
    result = rollout(
        vae,
        var,
        prefix_BLC,
        sampling,
        use_cache=use_cache,
        keep_fhats=return_scales,
        generator=generator,
        repeats=repeats,
        rgb_B3HW=rgb_B3HW,
    )
    dtype = model_dtype(var)
    pred_B1HW = decode_depth(vae, result.f_hat_BChw, dtype)
    scales = None
    if result.fhats_K is not None:
        scales = torch.stack([decode_depth(vae, f, dtype) for f in result.fhats_K])
    return Generation(pred_B1HW, scales)
