"""Model configurations: one frozen dataclass per network, and the named registry.

The dataclasses are the single source of truth for a model's shape: they are
saved inside every checkpoint (as JSON) and compared on load, so a checkpoint
can never be silently loaded into a differently-shaped model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from depthcore.config import frozen

# Scale -> phi index of the official 10-scale tokenizer. The official code picks the phi
# nearest to si/(SN-1) among linspace ticks; two of those ten picks are float ties, so the
# published table is hard-coded here instead of recomputed.
OFFICIAL_PHI_INDEX_10 = (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)


@frozen
class VQVAEConfig:
    """Multi-scale residual VQ-VAE (VAR tokenizer layout).

    The decoder has ``num_res_blocks + 1`` blocks per level, as in VAR. Attention
    (single head) sits at the lowest resolution and in the middle when enabled.
    """

    vocab_size: int = 4096
    z_channels: int = 32
    ch: int = 160
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    norm_groups: int = 32
    using_sa: bool = True
    using_mid_sa: bool = True
    dropout: float = 0.0
    beta: float = 0.25
    quant_resi: float = 0.5
    share_quant_resi: int = 4
    v_patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)

    def __post_init__(self) -> None:
        for width in {self.ch * m for m in self.ch_mult}:
            if width % self.norm_groups:
                raise ValueError(f"channel width {width} is not divisible by norm_groups")
        if self.share_quant_resi < 1:
            raise ValueError("share_quant_resi must be >= 1 (number of shared phi convs)")
        if list(self.v_patch_nums) != sorted(set(self.v_patch_nums)):
            raise ValueError(f"v_patch_nums must increase strictly: {self.v_patch_nums}")

    @property
    def downsample(self) -> int:
        """Spatial reduction of the encoder (2 per level but the last)."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def image_size(self) -> int:
        """Side of the square input: the last scale's latent side times the downsampling."""
        return self.v_patch_nums[-1] * self.downsample


PREFIX_EMBEDS = ("shared", "type", "own")


@frozen
class VARConfig:
    """GPT-2-style AdaLN transformer over VQ tokens (VAR layout).

    VAR's builder ties width and heads to depth (``embed_dim = 64 * depth``,
    ``num_heads = depth``); small CPU models set them freely.
    """

    depth: int = 16
    embed_dim: int = 1024
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    norm_eps: float = 1e-6
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    # VAR's attention: q/k L2-normalised with a learned per-head scale (official VAR
    # `attn_l2_norm`, DepthART `cos_attn: True`). False: plain attention scaled by
    # 1 / (attn_tau * sqrt(head_dim)) (DepthART's `cos_attn: False`, `tau`), without the
    # `scale_mul_1H11` parameters. attn_tau is unused while attn_l2_norm is on.
    attn_l2_norm: bool = True
    attn_tau: float = 4.0
    # The official DepthART mask: image-prefix tokens also attend to the SOS token (the
    # official masked pass opens the SOS column to them; its cached pass runs the prefix
    # and SOS together unmasked). False: image tokens see only image tokens (ours).
    prefix_sees_sos: bool = False
    # How image-prefix tokens are told apart from depth tokens. "shared": the official
    # layout (same word/level/position embeddings for both); "type": plus a learned
    # image-token embedding; "own": plus that and the prefix's own input projection.
    # The extras are additional parameters, so an official var_d16 state_dict still loads.
    # Measured no help from scratch (docs/learning.md, section 3); kept for experiments.
    prefix_embed: str = "shared"
    # Residual-branch gains at init: VAR starts every block ~off (gamma ~ 0: ada_lin's
    # gamma rows scaled by 1e-5, bias 0); init_residual_gain sets the gamma bias instead
    # (1.0: plain pre-LN blocks). Measured slower from scratch; kept for experiments.
    init_residual_gain: float = 0.0
    # A direct local path from the image: every depth token also adds a projection of
    # the image token at its own scale and position (an extra Linear, absent from the
    # official model, which reaches the image only through attention). From scratch on
    # CPU budgets attention has not found the aligned prefix token before the steps run
    # out (docs/learning.md); this path gives every depth query its pixel's colour tokens.
    prefix_local: bool = False
    # A pixel path (depthcore.models.pixels): a timm backbone name (random init) whose
    # features of the RGB frame each depth token adds at its own scale and cell; "" =
    # none (the official model). The prefix is the quantised RGB at one token per
    # 8 x 8 pixels; the regression baseline that reads pixels beat it (docs/learning.md).
    pixel_encoder: str = ""
    # How many backbone levels the pixel path reads, from the token grid's stride up
    # (tiny: 2 = strides 8 and 16; a third, ResNet-10-T's stride-32 stage, doubled the
    # encoder's cost and 4x its parameters, docs/learning.md section 8).
    pixel_levels: int = 3
    # The route ablation trained in (issue 24): the image-token prefix is zeroed in every
    # pass, training and inference alike, so the model reaches the image only through the
    # pixel path. (The scales stage blanks routes of a trained model; this trains without.)
    blank_prefix: bool = False

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by {self.num_heads}")
        if self.attn_tau <= 0:
            raise ValueError(f"attn_tau must be > 0, got {self.attn_tau}")
        if self.pixel_levels < 1:
            raise ValueError(f"pixel_levels must be >= 1, got {self.pixel_levels}")
        if self.prefix_embed not in PREFIX_EMBEDS:
            raise ValueError(f"prefix_embed {self.prefix_embed!r} not in {PREFIX_EMBEDS}")


@frozen
class ModelConfig:
    """A tokenizer + transformer pair and the square input size they were built for."""

    vae: VQVAEConfig = dataclasses.field(default_factory=VQVAEConfig)
    var: VARConfig = dataclasses.field(default_factory=VARConfig)
    image_size: int = 256

    def __post_init__(self) -> None:
        if self.image_size != self.vae.image_size:
            raise ValueError(
                f"image_size {self.image_size} / downsample {self.vae.downsample} must equal "
                f"the last patch_num {self.vae.v_patch_nums[-1]}"
            )


def phi_index_map(num_scales: int, num_phi: int) -> tuple[int, ...]:
    """Which shared phi conv each scale uses.

    10 scales with 4 phis: the official table. Otherwise the official rule: the tick
    nearest to ``si / (SN - 1)`` among ``linspace(1/(3K), 1 - 1/(3K), K)`` for K = 4, or
    ``linspace(1/(2K), 1 - 1/(2K), K)`` for other K (first tick wins a tie).
    """
    if num_scales == 10 and num_phi == 4:
        return OFFICIAL_PHI_INDEX_10
    if num_scales == 1:
        return (0,)
    k = num_phi
    margin = 1 / 3 / k if k == 4 else 1 / 2 / k
    ticks = np.linspace(margin, 1 - margin, k)
    return tuple(int(np.argmin(np.abs(ticks - si / (num_scales - 1)))) for si in range(num_scales))


_D16 = ModelConfig(
    vae=VQVAEConfig(),
    var=VARConfig(depth=16, embed_dim=1024, num_heads=16, num_classes=1000),
    image_size=256,
)

# CPU model for the embedded default pipeline: 64 px, 8x down to an 8x8 latent, L = 130.
_TINY = ModelConfig(
    vae=VQVAEConfig(
        vocab_size=512,
        z_channels=16,
        ch=16,
        ch_mult=(1, 2, 2, 4),
        num_res_blocks=1,
        norm_groups=8,
        using_sa=False,
        using_mid_sa=True,
        share_quant_resi=4,
        v_patch_nums=(1, 2, 3, 4, 6, 8),
    ),
    # 128 wide: twice the steps per CPU second of 256, which the from-scratch
    # transformer needs more than width; the local image path and the pixel path
    # (ResNet-10-T, as the regression baseline) make it read the image (docs/learning.md)
    var=VARConfig(
        depth=4,
        embed_dim=128,
        num_heads=4,
        num_classes=1,
        prefix_local=True,
        pixel_encoder="resnet10t",
        pixel_levels=2,
    ),
    image_size=64,
)


def _ablations(base: ModelConfig) -> dict[str, ModelConfig]:
    """The study's image-route ablations of ``tiny`` (same tokenizer, so one feature cache
    serves all): the pixel path off, the local prefix projection off, and the token prefix
    blanked with the pixel path kept (bench/learning/study.py, docs/learning.md)."""
    variants = {
        "nopixel": {"pixel_encoder": ""},
        "nolocal": {"prefix_local": False},
        "frameonly": {"blank_prefix": True},
    }
    return {
        f"tiny-{name}": dataclasses.replace(base, var=dataclasses.replace(base.var, **changes))
        for name, changes in variants.items()
    }


_TINY_ABLATIONS = _ablations(_TINY)
#: each ablation variant's base model: its baselines and tokenizer are the base's
ABLATION_BASES: dict[str, str] = dict.fromkeys(_TINY_ABLATIONS, "tiny")

MODEL_CONFIGS: dict[str, ModelConfig] = {
    "tiny": _TINY,
    # The paper's model: the official VAR tokenizer and var_d16 sizes at 256 px.
    "d16": _D16,
    **_TINY_ABLATIONS,
    # The official DepthART model (bulatko/DepthART config/launch/eval/depthART.yaml):
    # d16 with BlockConfig {cos_attn: False, tau: 4}, drop_path_rate 0.0667,
    # shared_aln False (ours has no shared AdaLN) and the mask in which image tokens see
    # the SOS. Initialised from var_d16.pth its scale_mul_1H11 is unused (docs/paper.md).
    "d16-depthart": dataclasses.replace(
        _D16,
        var=dataclasses.replace(
            _D16.var,
            drop_path_rate=0.06666666666666667,
            attn_l2_norm=False,
            attn_tau=4.0,
            prefix_sees_sos=True,
        ),
    ),
}


def resolve_config(name: str, **overrides: Any) -> ModelConfig:
    """``MODEL_CONFIGS[name]`` with ``vae={...}``, ``var={...}``, ``image_size=...`` replaced.

    Unknown names and unknown override keys fail with the allowed choices listed.
    """
    if name not in MODEL_CONFIGS:
        raise KeyError(f"unknown model '{name}' (choices: {', '.join(sorted(MODEL_CONFIGS))})")
    base = MODEL_CONFIGS[name]
    unknown = sorted(set(overrides) - {"vae", "var", "image_size"})
    if unknown:
        raise KeyError(f"unknown override(s) {unknown} for model '{name}' (vae, var, image_size)")
    vae = dataclasses.replace(base.vae, **overrides.get("vae", {}))
    var = dataclasses.replace(base.var, **overrides.get("var", {}))
    return ModelConfig(vae=vae, var=var, image_size=overrides.get("image_size", base.image_size))
