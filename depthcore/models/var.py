"""DepthVAR: VAR's next-scale transformer conditioned on image tokens placed as a prefix.

One self-attention sequence holds L image tokens (the RGB image's own multi-scale
VQ decomposition) followed by L depth tokens (SOS + teacher-forced/own inputs).
Image tokens attend to all image tokens; depth tokens attend to all image tokens
and block-causally (scale <= own scale) to depth tokens. The AdaLN condition and
the SOS token are the class embedding of the null class, as in the official
DepthART code. Names and shapes of parameters and buffers are those of the
official ``var_d16.pth``, so it initialises this model with ``strict=True``.
What the image gives the transformer (the prefix tokens and our optional local
paths) is one submodule, :class:`~depthcore.models.condition.ImageCondition`, whose
output for a batch, an :class:`~depthcore.models.condition.ImageContext`, every pass
takes as one value; its options are absent from the official checkpoint (state_dict
keys ``condition.*``). ``VARConfig.prefix_sees_sos`` gives the official DepthART mask,
in which image tokens also attend to the SOS token.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from depthcore.models.blocks import AdaLNBeforeHead, AdaLNSelfAttn, KVCache
from depthcore.models.condition import ImageCondition, ImageContext
from depthcore.models.configs import VARConfig


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
        # what the image gives the transformer (built here: its initialisation draws from
        # the RNG between the embeddings' and the blocks', as the trained defaults did)
        self.condition = ImageCondition(cfg, Cvae, self.C, self.patch_nums, image_size)
        # SOS tokens the image tokens attend to: none (ours) or all (the official mask)
        self.prefix_sees = self.first_l if cfg.prefix_sees_sos else 0
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
                cfg.attn_tau,
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
        return self.condition.reads_pixels

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
        for p in (self.pos_start, self.pos_1LC, *self.condition.parameters()):
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
        self.condition.reset_output()  # the pixel path opens during training (PixelEncoder)

    # --- embeddings ----------------------------------------------------------------------

    def null_cond(self, B: int, device: torch.device) -> torch.Tensor:
        """AdaLN condition (B, C): the null-class embedding."""
        label_B = torch.full((B,), self.num_classes, dtype=torch.long, device=device)
        return self.class_emb(label_B)

    def _add_pos(self, x_BlC: torch.Tensor, start: int) -> torch.Tensor:
        end = start + x_BlC.shape[1]
        return x_BlC + self.lvl_embed(self.lvl_1L[:, start:end]) + self.pos_1LC[:, start:end]

    def image_context(
        self, prefix_BLCv: torch.Tensor, rgb_B3HW: torch.Tensor | None = None
    ) -> ImageContext:
        """What image tokens (B, L, Cvae) (and, for a pixel path, their frames ``rgb_B3HW``
        in [-1, 1] at model resolution) give the passes; see :class:`ImageCondition`."""
        return self.condition(prefix_BLCv, rgb_B3HW, self.word_embed, self._add_pos)

    def embed_sos(self, cond_BD: torch.Tensor) -> torch.Tensor:
        """The SOS tokens (B, first_l, C) before positions: the condition plus ``pos_start``."""
        return cond_BD.unsqueeze(1).expand(cond_BD.shape[0], self.first_l, -1) + self.pos_start

    def embed_depth(
        self,
        cond_BD: torch.Tensor,
        x_BlCv: torch.Tensor | None,
        context: ImageContext | None = None,
    ) -> torch.Tensor:
        """SOS + depth inputs (B, l, Cvae) -> (B, first_l + l, C), plus the image's local
        path (``context``; None: the prefix-free VAR pass)."""
        sos_BlC = self.embed_sos(cond_BD)
        if x_BlCv is not None and x_BlCv.shape[1] > 0:
            sos_BlC = torch.cat((sos_BlC, self.word_embed(x_BlCv.float())), dim=1)
        x_BlC = self._add_pos(sos_BlC, 0)
        return x_BlC if context is None else context.add_local(x_BlC, 0)

    def prefix_attn_bias(self, n_depth: int) -> torch.Tensor:
        """(1, 1, L + n, L + n) additive mask for L image tokens then n depth tokens.

        Image tokens see the image tokens and the first :attr:`prefix_sees` depth tokens
        (the SOS under the official mask, none under ours); depth tokens see every image
        token and, block-causally, the depth tokens.
        """
        L = self.L
        depth_nn = self.attn_bias_for_masking[0, 0, :n_depth, :n_depth]
        top_depth = depth_nn.new_full((L, n_depth), -torch.inf)
        top_depth[:, : self.prefix_sees] = 0.0
        top = torch.cat((depth_nn.new_zeros(L, L), top_depth), 1)
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
        if prefix_BLCv is None:
            depth_BlC = self.embed_depth(cond_BD, x_BlCv)
            n = self._check_length(depth_BlC)
            attn_bias = self.attn_bias_for_masking[:, :, :n, :n]
            return self._run(depth_BlC, cond_BD, attn_bias, None, n)
        context = self.image_context(prefix_BLCv, rgb_B3HW)
        depth_BlC = self.embed_depth(cond_BD, x_BlCv, context)
        n = self._check_length(depth_BlC)
        x_BLC = torch.cat((context.tokens_BLC, depth_BlC), dim=1)
        return self._run(x_BLC, cond_BD, self.prefix_attn_bias(n), None, n)

    def _check_length(self, depth_BlC: torch.Tensor) -> int:
        n = depth_BlC.shape[1]
        if n > self.L:
            raise ValueError(f"{n} depth tokens given, the model holds at most {self.L}")
        return n

    def start_cached(self, context: ImageContext, cache: KVCache) -> torch.Tensor:
        """First inference step: feed [image prefix, SOS]; logits (B, first_l, V)."""
        B = context.tokens_BLC.shape[0]
        cond_BD = self.null_cond(B, context.tokens_BLC.device)
        depth_BlC = self.embed_depth(cond_BD, None, context)
        x_BLC = torch.cat((context.tokens_BLC, depth_BlC), 1)
        attn_bias = self.prefix_attn_bias(self.first_l)
        return self._run(x_BLC, cond_BD, attn_bias, cache, self.first_l)

    def step_cached(
        self, si: int, next_BlCv: torch.Tensor, cache: KVCache, context: ImageContext
    ) -> torch.Tensor:
        """Feed scale ``si``'s inputs (B, pn_si^2, Cvae) (si >= 1); logits (B, pn_si^2, V).

        Every new query may see everything cached (all earlier scales and the prefix)
        and its own scale, so no mask is needed.
        """
        start, end = self.begin_ends[si]
        if next_BlCv.shape[1] != end - start:
            raise ValueError(f"scale {si} needs {end - start} tokens, got {next_BlCv.shape[1]}")
        cond_BD = self.null_cond(next_BlCv.shape[0], next_BlCv.device)
        x_BlC = context.add_local(self._add_pos(self.word_embed(next_BlCv.float()), start), start)
        return self._run(x_BlC, cond_BD, None, cache, end - start)

    def fill_prefix(self, context: ImageContext, cache: KVCache) -> None:
        """Run the image prefix, leaving its keys/values in an empty ``cache``.

        Image tokens attend to image tokens and the :attr:`prefix_sees` SOS tokens (the
        SOS depends on no input), so this pass over the prefix and those SOS tokens
        gives exactly the prefix's keys/values in the masked pass; the SOS's own are
        dropped (:meth:`depth_after_prefix` recomputes them). With grad enabled they
        carry the graph: a DepthART step computes the prefix once for its rollout (a
        detached copy) and its loss pass.
        """
        if cache.length:
            raise ValueError(f"fill_prefix needs an empty cache, this one holds {cache.length}")
        tokens_BLC = context.tokens_BLC
        cond_BD = self.null_cond(tokens_BLC.shape[0], tokens_BLC.device)
        sos_BlC = self._add_pos(self.embed_sos(cond_BD), 0)[:, : self.prefix_sees]
        x_BLC = torch.cat((tokens_BLC, context.add_local(sos_BlC, 0)), 1)
        for block, layer in zip(self.blocks, cache.layers, strict=True):
            x_BLC = block(x_BLC, cond_BD, None, layer)
        cache.truncate(self.L)

    def depth_after_prefix(
        self, x_BlCv: torch.Tensor | None, cache: KVCache, context: ImageContext
    ) -> torch.Tensor:
        """Masked pass of SOS + depth inputs over a cache holding the prefix; (B, n, V).

        Equals ``forward(prefix, x_BlCv)`` (the depth tokens see every prefix token and
        block-causally each other). ``x_BlCv=None`` gives scale 1 (a rollout's start).
        ``context``: the prefix's :meth:`image_context` (its local path).
        """
        L0 = cache.length
        if L0 != self.L:
            raise ValueError(f"the cache must hold the {self.L} prefix tokens, it holds {L0}")
        B = cache.layers[0].k_BHlc.shape[0]
        cond_BD = self.null_cond(B, cache.layers[0].k_BHlc.device)
        depth_BlC = self.embed_depth(cond_BD, x_BlCv, context)
        n = depth_BlC.shape[1]
        depth_nn = self.attn_bias_for_masking[0, 0, :n, :n]
        attn_bias = torch.cat((depth_nn.new_zeros(n, L0), depth_nn), 1).view(1, 1, n, L0 + n)
        return self._run(depth_BlC, cond_BD, attn_bias, cache, n)

    def freeze_condition(self) -> None:
        """Precompute every AdaLN modulation for the null-class condition all passes use
        (:class:`~depthcore.models.blocks.FrozenModulation`); for inference only."""
        cond_1D = self.null_cond(1, self.lvl_1L.device)
        for module in (*self.blocks, self.head_nm):
            module.freeze_condition(cond_1D)

    def new_cache(self) -> KVCache:
        """An empty KV cache for :meth:`start_cached` / :meth:`step_cached`."""
        return KVCache(self.depth)
