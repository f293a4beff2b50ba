"""Transformer blocks of VAR: AdaLN self-attention (VAR's L2-normalised q/k, or DepthART's
plain scaled dot product with temperature ``tau``), and the head.

Parameter names mirror the official ``var_d16.pth`` (``attn.mat_qkv``, ``q_bias``,
``zero_k_bias``, ``ffn.fc1``, ``ada_lin.1`` ...). The KV cache is an explicit object
passed in by the caller rather than state hidden in the modules, so a cached and an
uncached pass can run side by side on the same model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LayerKV:
    """Keys and values (B, H, l, c) seen so far by one attention layer."""

    def __init__(self) -> None:
        self.k_BHlc: torch.Tensor | None = None
        self.v_BHlc: torch.Tensor | None = None

    def extend(self, k_BHlc: torch.Tensor, v_BHlc: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.k_BHlc is None:
            self.k_BHlc, self.v_BHlc = k_BHlc, v_BHlc
        else:
            self.k_BHlc = torch.cat((self.k_BHlc, k_BHlc), dim=2)
            self.v_BHlc = torch.cat((self.v_BHlc, v_BHlc), dim=2)
        return self.k_BHlc, self.v_BHlc


class KVCache:
    """One :class:`LayerKV` per transformer block."""

    def __init__(self, depth: int) -> None:
        self.layers = [LayerKV() for _ in range(depth)]

    def detached(self) -> KVCache:
        """A cache over the same keys/values without their graph (for a no-grad rollout)."""
        out = KVCache(len(self.layers))
        for mine, theirs in zip(out.layers, self.layers, strict=True):
            if theirs.k_BHlc is not None:
                mine.k_BHlc, mine.v_BHlc = theirs.k_BHlc.detach(), theirs.v_BHlc.detach()
        return out

    def repeat_batch(self, repeats: int) -> None:
        """Repeat every cached row ``repeats`` times (b -> b * repeats + n), e.g. per sample."""
        for layer in self.layers:
            if layer.k_BHlc is not None:
                layer.k_BHlc = layer.k_BHlc.repeat_interleave(repeats, dim=0)
                layer.v_BHlc = layer.v_BHlc.repeat_interleave(repeats, dim=0)

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` cached positions of every layer (no-op when shorter)."""
        for layer in self.layers:
            if layer.k_BHlc is not None and layer.k_BHlc.shape[2] > length:
                layer.k_BHlc = layer.k_BHlc[:, :, :length]
                layer.v_BHlc = layer.v_BHlc[:, :, :length]

    @property
    def length(self) -> int:
        k = self.layers[0].k_BHlc
        return 0 if k is None else k.shape[2]


class SelfAttention(nn.Module):
    """Multi-head attention.

    ``l2_norm`` (VAR, official ``attn_l2_norm`` / DepthART ``cos_attn: True``): q and k
    L2-normalised and q scaled by a learned per-head factor (``scale_mul_1H11``).
    Otherwise (DepthART's ``cos_attn: False``) plain attention scaled by
    1 / (``tau`` * sqrt(head_dim)), as DepthART's ``SelfAttention``; VAR's value 0.25 is tau 4.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        attn_drop: float,
        proj_drop: float,
        l2_norm: bool,
        tau: float = 4.0,
    ) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.attn_l2_norm = l2_norm
        if l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), 4.0).log())
            self.max_scale_mul = math.log(100)
        else:
            self.scale = 1 / math.sqrt(self.head_dim) / tau
        self.mat_qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(embed_dim))
        self.v_bias = nn.Parameter(torch.zeros(embed_dim))
        self.register_buffer("zero_k_bias", torch.zeros(embed_dim))
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()
        self.attn_drop = attn_drop

    def forward(
        self,
        x_BLC: torch.Tensor,
        attn_bias: torch.Tensor | None,
        cache: LayerKV | None = None,
    ) -> torch.Tensor:
        B, L, C = x_BLC.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x_BLC, self.mat_qkv.weight, bias).view(B, L, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, c)
        if self.attn_l2_norm:
            scale_mul = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()
            q = F.normalize(q, dim=-1).mul(scale_mul)
            k = F.normalize(k, dim=-1)
        if cache is not None:
            k, v = cache.extend(k, v)
        out_BHLc = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_bias,
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale,
        )
        return self.proj_drop(self.proj(out_BHLc.transpose(1, 2).reshape(B, L, C)))


class FFN(nn.Module):
    """fc1 -> tanh-GELU -> fc2."""

    def __init__(self, embed_dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, embed_dim)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability p."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x_BLC: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x_BLC
        keep_B11 = x_BLC.new_empty(x_BLC.shape[0], 1, 1).bernoulli_(1 - self.p)
        return x_BLC * keep_B11 / (1 - self.p)


class FrozenModulation:
    """A conditioned LayerNorm's modulation computed once for a fixed condition.

    DepthVAR's AdaLN condition is always the null class, so at inference every call of
    ``ada_lin`` returns the same vectors: a third of each block's weights (``ada_lin`` is
    6C x C of the block's 18C x C) re-read at every cached scale for nothing. The stored
    value is used only in eval mode and only while ``ada_lin``'s weights are the ones it
    was computed from (same storage, no in-place update since), so training or loading
    new weights never meets a stale copy.
    """

    def __init__(self, ada_lin: nn.Sequential, cond_1D: torch.Tensor, C: int) -> None:
        self._lin: nn.Linear = ada_lin[1]
        with torch.no_grad():
            self.value = ada_lin(cond_1D).view(1, 1, -1, C)
        self._key = self._state()

    def _state(self) -> tuple[int, ...]:
        # inference-mode tensors keep no version counter (and cannot change outside it)
        return tuple(
            v for t in (self._lin.weight, self._lin.bias)
            for v in (t.data_ptr(), -1 if t.is_inference() else t._version)
        )  # fmt: skip

    def valid_for(self, ada_lin: nn.Sequential) -> bool:
        """Whether the stored value is ``ada_lin``'s output: same layer, unchanged weights."""
        return ada_lin[1] is self._lin and self._state() == self._key


class _Modulated(nn.Module):
    """What the two AdaLN modules share: ``ada_lin`` maps the condition to ``k`` vectors
    of width ``C``, or :class:`FrozenModulation` holds them for the one condition."""

    C: int
    ada_lin: nn.Sequential
    frozen: FrozenModulation | None

    def freeze_condition(self, cond_1D: torch.Tensor) -> None:
        """Compute the modulation for the one condition every call will pass (see
        :class:`FrozenModulation`); call under the autocast inference will run in."""
        self.frozen = FrozenModulation(self.ada_lin, cond_1D, self.C)

    def modulation(self, cond_BD: torch.Tensor) -> torch.Tensor:
        """(B or 1, 1, k, C): the frozen vectors when valid, else ``ada_lin(cond_BD)``."""
        if self.frozen is not None and not self.training and self.frozen.valid_for(self.ada_lin):
            return self.frozen.value
        return self.ada_lin(cond_BD).view(cond_BD.shape[0], 1, -1, self.C)


class AdaLNSelfAttn(_Modulated):
    """Pre-norm block whose LayerNorm scale/shift and residual gains come from a condition."""

    def __init__(
        self,
        embed_dim: int,
        cond_dim: int,
        num_heads: int,
        mlp_ratio: float,
        norm_eps: float,
        drop: float,
        attn_drop: float,
        drop_path: float,
        attn_l2_norm: bool,
        attn_tau: float = 4.0,
    ) -> None:
        super().__init__()
        self.C = embed_dim
        self.drop_path = DropPath(drop_path)
        self.attn = SelfAttention(embed_dim, num_heads, attn_drop, drop, attn_l2_norm, attn_tau)
        self.ffn = FFN(embed_dim, round(embed_dim * mlp_ratio), drop)
        self.ln_wo_grad = nn.LayerNorm(embed_dim, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(cond_dim, 6 * embed_dim))
        self.frozen = None

    def forward(
        self,
        x_BLC: torch.Tensor,
        cond_BD: torch.Tensor,
        attn_bias: torch.Tensor | None,
        cache: LayerKV | None = None,
    ) -> torch.Tensor:
        ada_B16C = self.modulation(cond_BD)
        gamma1, gamma2, scale1, scale2, shift1, shift2 = ada_B16C.unbind(2)
        h = self.ln_wo_grad(x_BLC).mul(scale1.add(1)).add_(shift1)
        x_BLC = x_BLC + self.drop_path(self.attn(h, attn_bias, cache).mul_(gamma1))
        h = self.ln_wo_grad(x_BLC).mul(scale2.add(1)).add_(shift2)
        return x_BLC + self.drop_path(self.ffn(h).mul(gamma2))


class AdaLNBeforeHead(_Modulated):
    """Conditioned LayerNorm applied before the vocabulary head."""

    def __init__(self, embed_dim: int, cond_dim: int, norm_eps: float) -> None:
        super().__init__()
        self.C = embed_dim
        self.ln_wo_grad = nn.LayerNorm(embed_dim, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(cond_dim, 2 * embed_dim))
        self.frozen = None

    def forward(self, x_BLC: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        scale, shift = self.modulation(cond_BD).unbind(2)
        return self.ln_wo_grad(x_BLC).mul(scale.add(1)).add_(shift)
