"""The pieces of a DepthART model as traceable modules, one per exported ONNX graph.

Each wraps public methods of the models (``VQVAE.encode_features``, ``DepthVAR.
start_cached`` / ``step_cached`` / ``new_cache``, ``choose_tokens``, ``VQVAE.
get_next_autoregressive_input``, ``decode_depth``) so the graphs compute exactly what
the torch predictor computes. The KV cache, an object in torch, becomes explicit
tensors: ``k_NBHlc`` / ``v_NBHlc`` stack the N blocks' keys and values; a step takes
the cache so far and returns it extended by its scale. Every graph is fp32.
"""

from __future__ import annotations

import torch
from torch import nn

from depthcore.models.blocks import KVCache
from depthcore.models.condition import ImageContext
from depthcore.models.generate import SamplingConfig, choose_tokens, decode_depth
from depthcore.models.prefix import fhats_to_prefix
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE


def _stacked(cache: KVCache) -> tuple[torch.Tensor, torch.Tensor]:
    """The cache's keys and values as two (N, B, H, l, c) tensors."""
    k = torch.stack([layer.k_BHlc for layer in cache.layers])
    v = torch.stack([layer.v_BHlc for layer in cache.layers])
    return k, v


class Encoder(nn.Module):
    """RGB in [-1, 1] (B, 3, S, S) -> image tokens, the prefix (B, L, Cvae) (as
    :func:`depthcore.models.generate.encode_image`)."""

    def __init__(self, vae: VQVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, rgb_B3SS: torch.Tensor) -> torch.Tensor:
        fhats = self.vae.quantize.f_to_fhats(self.vae.encode_features(rgb_B3SS))
        return fhats_to_prefix(fhats, self.vae.v_patch_nums)


class Start(nn.Module):
    """Scale 1: the prefix (and the frame, for a pixel path) -> (logits (B, first_l, V),
    k, v over prefix + SOS, and the local image path (B, L, C) when the model has one)."""

    def __init__(self, var: DepthVAR) -> None:
        super().__init__()
        self.var = var

    def forward(
        self, prefix_BLCv: torch.Tensor, rgb_B3SS: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        cache = self.var.new_cache()
        context = self.var.image_context(prefix_BLCv, rgb_B3SS)
        logits_BlV = self.var.start_cached(context, cache)
        k, v = _stacked(cache)
        if context.local_BLC is None:
            return logits_BlV, k, v
        return logits_BlV, k, v, context.local_BLC


class Step(nn.Module):
    """Scale ``si`` >= 1: its input (B, pn^2, Cvae) and the cache so far -> (logits
    (B, pn^2, V), the cache extended by this scale). One graph per scale: every shape
    but the batch is static."""

    def __init__(self, var: DepthVAR, si: int) -> None:
        super().__init__()
        self.var, self.si = var, si

    def forward(
        self,
        next_BlCv: torch.Tensor,
        k_NBHlc: torch.Tensor,
        v_NBHlc: torch.Tensor,
        local_BLC: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cache = self.var.new_cache()
        for i, layer in enumerate(cache.layers):
            layer.k_BHlc, layer.v_BHlc = k_NBHlc[i], v_NBHlc[i]
        # the cached steps read only the image's local path; its prefix tokens are in k/v
        context = ImageContext(next_BlCv[:, :0], local_BLC)
        logits_BlV = self.var.step_cached(self.si, next_BlCv, cache, context)
        k, v = _stacked(cache)
        return logits_BlV, k, v


class Choose(nn.Module):
    """Logits (B, l, V) -> (tokens (B, l) int64, code embeddings fed forward (B, l, Cvae)),
    greedy or expected decoding (deterministic; sampling draws numbers and is not exported)."""

    def __init__(self, vae: VQVAE, sampling: SamplingConfig) -> None:
        super().__init__()
        if sampling.stochastic:
            raise ValueError("only deterministic decodings (greedy, expected) export")
        self.vae, self.sampling = vae, sampling

    def forward(self, logits_BlV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return choose_tokens(self.vae, logits_BlV, self.sampling, None)


class Advance(nn.Module):
    """Scale ``si``'s code embeddings (B, pn^2, Cvae) added to f_hat (B, Cvae, h, w) ->
    (new f_hat, the next scale's input (B, pn_next^2, Cvae); at the last scale f_hat's
    flattening)."""

    def __init__(self, vae: VQVAE, si: int) -> None:
        super().__init__()
        self.vae, self.si = vae, si

    def forward(
        self, f_hat_BChw: torch.Tensor, h_BlCv: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pn = self.vae.v_patch_nums[self.si]
        B = h_BlCv.shape[0]
        h_BChw = h_BlCv.transpose(1, 2).reshape(B, self.vae.Cvae, pn, pn)
        SN = len(self.vae.v_patch_nums)
        f_hat, next_BChw = self.vae.get_next_autoregressive_input(
            self.si, SN, f_hat_BChw.clone(), h_BChw
        )
        return f_hat, next_BChw.flatten(2).transpose(1, 2)


class Decoder(nn.Module):
    """f_hat (B, Cvae, h, w) -> the prediction (B, 1, S, S) in the model's normalised space."""

    def __init__(self, vae: VQVAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, f_hat_BChw: torch.Tensor) -> torch.Tensor:
        return decode_depth(self.vae, f_hat_BChw)


class Regression(nn.Module):
    """The regression baseline in one graph: RGB in [-1, 1] (B, 3, S, S) -> (B, S, S)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, rgb_B3SS: torch.Tensor) -> torch.Tensor:
        return self.net(rgb_B3SS)[:, 0]
