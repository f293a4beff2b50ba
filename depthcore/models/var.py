"""DepthVAR: VAR's next-scale transformer conditioned on image tokens placed as a prefix.

One self-attention sequence holds L image tokens (the RGB image's own multi-scale
VQ decomposition) followed by L depth tokens (SOS + teacher-forced/own inputs).
Image tokens attend to all image tokens; depth tokens attend to all image tokens
and block-causally (scale <= own scale) to depth tokens. The AdaLN condition and
the SOS token are the class embedding of the null class, as in the official
DepthART code. Names and shapes of parameters and buffers are those of the
official ``var_d16.pth``, so it initialises this model with ``strict=True``.
Optional extras (:data:`EXTRA_KEYS`, absent from that checkpoint) add local paths
from the image to each depth token: ``prefix_local`` (the image token of the same
cell) and ``pixel_encoder`` (a CNN over the frame itself, which every pass then takes
as ``rgb_B3HW``; :mod:`depthcore.models.pixels`).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from depthcore.models.blocks import AdaLNBeforeHead, AdaLNSelfAttn, KVCache
from depthcore.models.configs import VARConfig
from depthcore.models.pixels import PixelEncoder

#: Top-level names of the optional parameters the official checkpoint does not have.
EXTRA_KEYS = ("prefix_type_emb", "prefix_word_embed", "prefix_local", "pixel_encoder")


class DepthVAR(nn.Module):
    """Next-scale prediction of depth tokens given an image-token prefix."""

    def __init__(
        self,
        vocab_size: int,
        Cvae: int,
        patch_nums: tuple[int, ...],
        cfg: VARConfig,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        self.config = cfg
        self.V, self.Cvae, self.C = vocab_size, Cvae, cfg.embed_dim
        self.depth, self.num_heads, self.num_classes = cfg.depth, cfg.num_heads, cfg.num_classes
        self.patch_nums = tuple(patch_nums)
        self.L = sum(pn * pn for pn in self.patch_nums)
        self.first_l = self.patch_nums[0] ** 2
        ends = list(itertools.accumulate(pn * pn for pn in self.patch_nums))
        self.begin_ends = [(e - pn * pn, e) for e, pn in zip(ends, self.patch_nums, strict=True)]
        init_std = math.sqrt(1 / self.C / 3)

        self.word_embed = nn.Linear(Cvae, self.C)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, self.C)
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, self.C))
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, self.C))
        self.lvl_embed = nn.Embedding(len(self.patch_nums), self.C)
        # optional extras (absent from the official checkpoint): see VARConfig.prefix_embed
        if cfg.prefix_embed in ("type", "own"):
            self.prefix_type_emb = nn.Parameter(torch.empty(1, 1, self.C))
        if cfg.prefix_embed == "own":
            self.prefix_word_embed = nn.Linear(Cvae, self.C)
        if cfg.prefix_local:
            self.prefix_local = nn.Linear(Cvae, self.C)
        if cfg.pixel_encoder:
            if image_size is None:
                raise ValueError("a pixel encoder needs the model's image_size")
            self.pixel_encoder = PixelEncoder(
                cfg.pixel_encoder, self.C, self.patch_nums, image_size, cfg.pixel_levels
            )
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            AdaLNSelfAttn(
                self.C,
                self.C,
                cfg.num_heads,
                cfg.mlp_ratio,
                cfg.norm_eps,
                cfg.drop_rate,
                cfg.attn_drop_rate,
                dpr[i],
                cfg.attn_l2_norm,
            )
            for i in range(cfg.depth)
        )
        lvl_L = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(self.patch_nums)])
        self.register_buffer("lvl_1L", lvl_L.view(1, self.L).contiguous())
        # depth-only block-causal mask (query scale >= key scale); the prefix is added per call
        allowed_LL = lvl_L.view(self.L, 1) >= lvl_L.view(1, self.L)
        mask_LL = torch.zeros(self.L, self.L).masked_fill_(~allowed_LL, -torch.inf)
        self.register_buffer("attn_bias_for_masking", mask_LL.view(1, 1, self.L, self.L))
        self.head_nm = AdaLNBeforeHead(self.C, self.C, cfg.norm_eps)
        self.head = nn.Linear(self.C, self.V)
        self.init_weights(init_std, residual_gain=cfg.init_residual_gain)
        # activation checkpointing of the blocks in training passes (a runtime switch, see
        # depthcore.training.precision); not part of the config or the state_dict
        self.grad_checkpointing = False

    @classmethod
    def from_config(
        cls,
        cfg: VARConfig,
        vocab_size: int,
        Cvae: int,
        patch_nums: tuple[int, ...],
        image_size: int | None = None,
    ) -> DepthVAR:
        """Build for a tokenizer with ``vocab_size`` codes of width ``Cvae`` (and frames of
        ``image_size`` pixels, needed only by a pixel encoder)."""
        return cls(vocab_size, Cvae, patch_nums, cfg, image_size)

    @property
    def reads_pixels(self) -> bool:
        """Whether the passes need the RGB frame besides the prefix (``cfg.pixel_encoder``)."""
        return hasattr(self, "pixel_encoder")

    @torch.no_grad()
    def init_weights(
        self,
        init_std: float,
        adaln: float = 0.5,
        adaln_gamma: float = 1e-5,
        residual_gain: float = 0.0,
    ) -> None:
        """VAR's initialisation: small heads, near-zero residual gains, depth-scaled projections.

        ``residual_gain`` > 0 opens the residual branches from the start (gamma bias).
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=init_std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=init_std)
        for p in (self.pos_start, self.pos_1LC, *self.extra_parameters()):
            if p.ndim == 3:
                nn.init.trunc_normal_(p, std=init_std)
        self.head.weight.mul_(0.02)
        self.head_nm.ada_lin[-1].weight.mul_(adaln)
        C = self.C
        for block in self.blocks:
            block.attn.proj.weight.div_(math.sqrt(2 * self.depth))
            block.ffn.fc2.weight.div_(math.sqrt(2 * self.depth))
            lin = block.ada_lin[-1]
            lin.weight[2 * C :].mul_(adaln)
            lin.weight[: 2 * C].mul_(adaln_gamma)
            lin.bias[: 2 * C].fill_(residual_gain)
        if self.reads_pixels:  # the pixel path opens during training (PixelEncoder)
            self.pixel_encoder.reset_output()

    def extra_parameters(self) -> list[nn.Parameter]:
        """Parameters not in the official layout (empty for ``prefix_embed='shared'``)."""
        return [p for k, p in self.named_parameters() if k.split(".")[0] in EXTRA_KEYS]

    # --- embeddings ----------------------------------------------------------------------

    def null_cond(self, B: int, device: torch.device) -> torch.Tensor:
        """AdaLN condition (B, C): the null-class embedding."""
        label_B = torch.full((B,), self.num_classes, dtype=torch.long, device=device)
        return self.class_emb(label_B)

    def _add_pos(self, x_BlC: torch.Tensor, start: int) -> torch.Tensor:
        end = start + x_BlC.shape[1]
        return x_BlC + self.lvl_embed(self.lvl_1L[:, start:end]) + self.pos_1LC[:, start:end]

    def embed_prefix(self, prefix_BLCv: torch.Tensor) -> torch.Tensor:
        """Image tokens (B, L, Cvae) -> (B, L, C) with the shared level/position embeddings."""
        if prefix_BLCv.ndim != 3 or tuple(prefix_BLCv.shape[1:]) != (self.L, self.Cvae):
            raise ValueError(
                f"image prefix must be (B, {self.L}, {self.Cvae}), got {tuple(prefix_BLCv.shape)}"
            )
        embed = getattr(self, "prefix_word_embed", self.word_embed)
        x_BLC = self._add_pos(embed(prefix_BLCv.float()), 0)
        type_11C = getattr(self, "prefix_type_emb", None)
        return x_BLC if type_11C is None else x_BLC + type_11C

    def local_path(
        self, prefix_BLCv: torch.Tensor, rgb_B3HW: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The image's contribution (B, L, C) to the depth tokens at the same positions
        (``VARConfig.prefix_local`` and the pixel path), or None when the model reaches
        the image by attention only."""
        local_BLC: torch.Tensor | None = None
        layer = getattr(self, "prefix_local", None)
        if layer is not None:
            with torch.autocast(prefix_BLCv.device.type, enabled=False):  # tiny: keep fp32
                local_BLC = F.linear(prefix_BLCv.float(), layer.weight.float(), layer.bias.float())
        if self.reads_pixels:
            if rgb_B3HW is None:
                raise ValueError("this model reads pixels (pixel_encoder): pass rgb_B3HW")
            if rgb_B3HW.shape[0] != prefix_BLCv.shape[0]:
                raise ValueError(
                    f"{rgb_B3HW.shape[0]} RGB frames for {prefix_BLCv.shape[0]} prefixes"
                )
            pix_BLC = self.pixel_encoder(rgb_B3HW).float()
            local_BLC = pix_BLC if local_BLC is None else local_BLC + pix_BLC
        return local_BLC

    def embed_depth(
        self,
        cond_BD: torch.Tensor,
        x_BlCv: torch.Tensor | None,
        local_BLC: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SOS + depth inputs (B, l, Cvae) -> (B, first_l + l, C), plus the local image path."""
        B = cond_BD.shape[0]
        sos_BlC = cond_BD.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start
        if x_BlCv is not None and x_BlCv.shape[1] > 0:
            sos_BlC = torch.cat((sos_BlC, self.word_embed(x_BlCv.float())), dim=1)
        x_BlC = self._add_pos(sos_BlC, 0)
        if local_BLC is not None:
            x_BlC = x_BlC + local_BLC[:, : x_BlC.shape[1]]
        return x_BlC

    def prefix_attn_bias(self, n_depth: int) -> torch.Tensor:
        """(1, 1, L + n, L + n) additive mask for L image tokens then n depth tokens."""
        L = self.L
        depth_nn = self.attn_bias_for_masking[0, 0, :n_depth, :n_depth]
        top = torch.cat((depth_nn.new_zeros(L, L), depth_nn.new_full((L, n_depth), -torch.inf)), 1)
        bottom = torch.cat((depth_nn.new_zeros(n_depth, L), depth_nn), 1)
        return torch.cat((top, bottom), 0).view(1, 1, L + n_depth, L + n_depth)

    def _run(
        self,
        x_BLC: torch.Tensor,
        cond_BD: torch.Tensor,
        attn_bias: torch.Tensor | None,
        cache: KVCache | None,
        n_out: int,
    ) -> torch.Tensor:
        recompute = self.grad_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if recompute and cache is None:  # keep only block inputs; recompute in backward
                x_BLC = checkpoint(block, x_BLC, cond_BD, attn_bias, use_reentrant=False)
            else:
                layer = None if cache is None else cache.layers[i]
                x_BLC = block(x_BLC, cond_BD, attn_bias, layer)
        h_BlC = x_BLC[:, -n_out:]
        return self.head(self.head_nm(h_BlC.float(), cond_BD)).float()

    # --- passes --------------------------------------------------------------------------

    def forward(
        self,
        prefix_BLCv: torch.Tensor | None,
        x_BlCv: torch.Tensor | None,
        rgb_B3HW: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One parallel masked pass; logits (B, first_l + l, V) for every depth position.

        ``x_BlCv`` holds the inputs of scales 2..k (all L - first_l for training; fewer
        for the uncached inference path), e.g. ``vae.idxBl_to_var_input(tokens)``.
        Without a prefix this is exactly the official VAR teacher-forced pass for the
        null class, which is what the parity fixtures check. ``rgb_B3HW``: the frame
        (in [-1, 1], model resolution) for a model with a pixel path.
        """
        if prefix_BLCv is None and x_BlCv is None:
            raise ValueError("forward needs an image prefix or depth inputs")
        ref = prefix_BLCv if prefix_BLCv is not None else x_BlCv
        cond_BD = self.null_cond(ref.shape[0], ref.device)
        local_BLC = None if prefix_BLCv is None else self.local_path(prefix_BLCv, rgb_B3HW)
        depth_BlC = self.embed_depth(cond_BD, x_BlCv, local_BLC)
        n = depth_BlC.shape[1]
        if n > self.L:
            raise ValueError(f"{n} depth tokens given, the model holds at most {self.L}")
        if prefix_BLCv is None:
            attn_bias = self.attn_bias_for_masking[:, :, :n, :n]
            return self._run(depth_BlC, cond_BD, attn_bias, None, n)
        x_BLC = torch.cat((self.embed_prefix(prefix_BLCv), depth_BlC), dim=1)
        return self._run(x_BLC, cond_BD, self.prefix_attn_bias(n), None, n)

    def start_cached(
        self, prefix_BLCv: torch.Tensor, cache: KVCache, rgb_B3HW: torch.Tensor | None = None
    ) -> torch.Tensor:
        """First inference step: feed [image prefix, SOS]; logits (B, first_l, V)."""
        B = prefix_BLCv.shape[0]
        cond_BD = self.null_cond(B, prefix_BLCv.device)
        cache.local_BLC = self.local_path(prefix_BLCv, rgb_B3HW)
        depth_BlC = self.embed_depth(cond_BD, None, cache.local_BLC)
        x_BLC = torch.cat((self.embed_prefix(prefix_BLCv), depth_BlC), 1)
        attn_bias = self.prefix_attn_bias(self.first_l)
        return self._run(x_BLC, cond_BD, attn_bias, cache, self.first_l)

    def step_cached(self, si: int, next_BlCv: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Feed scale ``si``'s inputs (B, pn_si^2, Cvae) (si >= 1); logits (B, pn_si^2, V).

        Every new query may see everything cached (all earlier scales and the prefix)
        and its own scale, so no mask is needed.
        """
        start, end = self.begin_ends[si]
        if next_BlCv.shape[1] != end - start:
            raise ValueError(f"scale {si} needs {end - start} tokens, got {next_BlCv.shape[1]}")
        cond_BD = self.null_cond(next_BlCv.shape[0], next_BlCv.device)
        x_BlC = self._add_pos(self.word_embed(next_BlCv.float()), start)
        if cache.local_BLC is not None:
            x_BlC = x_BlC + cache.local_BLC[:, start:end]
        return self._run(x_BlC, cond_BD, None, cache, end - start)

    def fill_prefix(
        self, prefix_BLCv: torch.Tensor, cache: KVCache, rgb_B3HW: torch.Tensor | None = None
    ) -> None:
        """Run the image prefix alone, leaving its keys/values in an empty ``cache``.

        Image tokens attend only to image tokens, so these are exactly the prefix's
        keys/values in the masked pass. With grad enabled they carry the graph: a
        DepthART step computes the prefix once for its rollout (a detached copy) and its
        loss pass (:meth:`depth_after_prefix`).
        """
        if cache.length:
            raise ValueError(f"fill_prefix needs an empty cache, this one holds {cache.length}")
        cond_BD = self.null_cond(prefix_BLCv.shape[0], prefix_BLCv.device)
        cache.local_BLC = self.local_path(prefix_BLCv, rgb_B3HW)
        x_BLC = self.embed_prefix(prefix_BLCv)
        for block, layer in zip(self.blocks, cache.layers, strict=True):
            x_BLC = block(x_BLC, cond_BD, None, layer)

    def depth_after_prefix(self, x_BlCv: torch.Tensor | None, cache: KVCache) -> torch.Tensor:
        """Masked pass of SOS + depth inputs over a cache holding the prefix; (B, n, V).

        Equals ``forward(prefix, x_BlCv)`` (the depth tokens see every prefix token and
        block-causally each other). ``x_BlCv=None`` gives scale 1 (a rollout's start).
        """
        L0 = cache.length
        if L0 != self.L:
            raise ValueError(f"the cache must hold the {self.L} prefix tokens, it holds {L0}")
        B = cache.layers[0].k_BHlc.shape[0]
        cond_BD = self.null_cond(B, cache.layers[0].k_BHlc.device)
        depth_BlC = self.embed_depth(cond_BD, x_BlCv, cache.local_BLC)
        n = depth_BlC.shape[1]
        depth_nn = self.attn_bias_for_masking[0, 0, :n, :n]
        attn_bias = torch.cat((depth_nn.new_zeros(n, L0), depth_nn), 1).view(1, 1, n, L0 + n)
        return self._run(depth_BlC, cond_BD, attn_bias, cache, n)

    def new_cache(self) -> KVCache:
        """An empty KV cache for :meth:`start_cached` / :meth:`step_cached`."""
        return KVCache(self.depth)
