"""The frozen multi-scale residual VQ-VAE (VAR tokenizer), with VAR's public method names."""

from __future__ import annotations

import torch
from torch import nn

from depthcore.models.basic_vae import Decoder, Encoder
from depthcore.models.configs import VQVAEConfig
from depthcore.models.quant import VectorQuantizer2


class VQVAE(nn.Module):
    """Encoder -> quant_conv -> multi-scale quantiser -> post_quant_conv -> decoder.

    Its ``state_dict`` has exactly the official checkpoint's keys for the official sizes.
    """

    def __init__(
        self,
        vocab_size: int = 4096,
        z_channels: int = 32,
        ch: int = 160,
        share_quant_resi: int = 4,
        v_patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
        *,
        ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        norm_groups: int = 32,
        using_sa: bool = True,
        using_mid_sa: bool = True,
        dropout: float = 0.0,
        beta: float = 0.25,
        quant_resi: float = 0.5,
    ) -> None:
        super().__init__()
        self.config = VQVAEConfig(
            vocab_size=vocab_size,
            z_channels=z_channels,
            ch=ch,
            ch_mult=tuple(ch_mult),
            num_res_blocks=num_res_blocks,
            norm_groups=norm_groups,
            using_sa=using_sa,
            using_mid_sa=using_mid_sa,
            dropout=dropout,
            beta=beta,
            quant_resi=quant_resi,
            share_quant_resi=share_quant_resi,
            v_patch_nums=tuple(v_patch_nums),
        )
        self.vocab_size, self.Cvae = vocab_size, z_channels
        self.v_patch_nums = tuple(v_patch_nums)
        self.downsample = self.config.downsample
        arch = dict(
            ch=ch,
            ch_mult=tuple(ch_mult),
            num_res_blocks=num_res_blocks,
            z_channels=z_channels,
            groups=norm_groups,
            dropout=dropout,
            using_sa=using_sa,
            using_mid_sa=using_mid_sa,
        )
        self.encoder = Encoder(**arch)
        self.decoder = Decoder(**arch)
        self.quantize = VectorQuantizer2(
            vocab_size, z_channels, self.v_patch_nums, share_quant_resi, quant_resi, beta
        )
        self.quant_conv = nn.Conv2d(z_channels, z_channels, kernel_size=3, stride=1, padding=1)
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, kernel_size=3, stride=1, padding=1)

    @classmethod
    def from_config(cls, cfg: VQVAEConfig) -> VQVAE:
        """Build from a :class:`VQVAEConfig`."""
        return cls(
            cfg.vocab_size,
            cfg.z_channels,
            cfg.ch,
            cfg.share_quant_resi,
            cfg.v_patch_nums,
            ch_mult=cfg.ch_mult,
            num_res_blocks=cfg.num_res_blocks,
            norm_groups=cfg.norm_groups,
            using_sa=cfg.using_sa,
            using_mid_sa=cfg.using_mid_sa,
            dropout=cfg.dropout,
            beta=cfg.beta,
            quant_resi=cfg.quant_resi,
        )

    def forward(self, x_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenizer training pass: (reconstruction B3HW, vq loss)."""
        f_hat, vq_loss = self.quantize(self.encode_features(x_B3HW))
        return self.decoder(self.post_quant_conv(f_hat)), vq_loss

    def encode_features(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        """Continuous features f (B, Cvae, H/d, W/d) = quant_conv(encoder(x))."""
        H = self.config.image_size
        if x_B3HW.ndim != 4 or tuple(x_B3HW.shape[1:]) != (3, H, H):
            raise ValueError(f"input must be (B, 3, {H}, {H}), got {tuple(x_B3HW.shape)}")
        return self.quant_conv(self.encoder(x_B3HW))

    @torch.no_grad()
    def img_to_idxBl(self, x_B3HW: torch.Tensor) -> list[torch.Tensor]:
        """Token indices (B, pn_k^2) for every scale of an image in [-1, 1]."""
        return self.quantize.f_to_idxBl(self.encode_features(x_B3HW))

    def f_to_idxBl(self, f_BChw: torch.Tensor) -> list[torch.Tensor]:
        """Token indices of a continuous feature map (e.g. cached depth features)."""
        return self.quantize.f_to_idxBl(f_BChw)

    def idxBl_to_var_input(self, idx_Bl_list: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing inputs x_BlCv of scales 2..K (see ``VectorQuantizer2``)."""
        return self.quantize.idxBl_to_var_input(idx_Bl_list)

    def get_next_autoregressive_input(
        self, si: int, SN: int, f_hat: torch.Tensor, h_BChw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Accumulate scale ``si`` into f_hat and give the next scale's input map."""
        return self.quantize.get_next_autoregressive_input(si, SN, f_hat, h_BChw)

    def fhat_to_img(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Decode f_hat (B, Cvae, h, w) to an image (B, 3, H, W) clamped to [-1, 1]."""
        return self.decoder(self.post_quant_conv(f_hat)).clamp_(-1, 1)

    def idxBl_to_img(self, idx_Bl_list: list[torch.Tensor]) -> torch.Tensor:
        """Decode a full token pyramid to an image (B, 3, H, W)."""
        return self.fhat_to_img(self.quantize.idxBl_to_fhat(idx_Bl_list))
