"""VAR's multi-scale residual vector quantiser.

A feature map f is explained scale by scale: at scale k the remaining residual is
area-resized to pn_k x pn_k, each cell snaps to its nearest code, the codes are
bicubic-upsampled back, refined by a shared conv phi, added to f_hat and
subtracted from the residual. Tokens of coarse scales therefore carry the global
layout and the last scale the detail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depthcore.models.configs import phi_index_map


class Phi(nn.Conv2d):
    """h -> (1 - r) * h + r * conv3x3(h): the residual refinement of upsampled codes."""

    def __init__(self, channels: int, quant_resi: float) -> None:
        super().__init__(channels, channels, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(quant_resi)

    def forward(self, h_BChw: torch.Tensor) -> torch.Tensor:
        return h_BChw.mul(1 - self.resi_ratio) + super().forward(h_BChw).mul_(self.resi_ratio)


class PhiPartiallyShared(nn.Module):
    """K phi convs shared across scales; ``phi_for(si)`` picks one per scale index."""

    def __init__(self, qresi_ls: nn.ModuleList, num_scales: int) -> None:
        super().__init__()
        self.qresi_ls = qresi_ls
        self.scale_to_phi = phi_index_map(num_scales, len(qresi_ls))

    def phi_for(self, si: int) -> Phi:
        return self.qresi_ls[self.scale_to_phi[si]]


class VectorQuantizer2(nn.Module):
    """Codebook + shared phis + the scale-by-scale residual decomposition."""

    def __init__(
        self,
        vocab_size: int,
        Cvae: int,
        v_patch_nums: tuple[int, ...],
        share_quant_resi: int = 4,
        quant_resi: float = 0.5,
        beta: float = 0.25,
    ) -> None:
        super().__init__()
        self.vocab_size, self.Cvae, self.v_patch_nums = vocab_size, Cvae, tuple(v_patch_nums)
        self.beta = beta
        phis = nn.ModuleList(Phi(Cvae, quant_resi) for _ in range(share_quant_resi))
        self.quant_resi = PhiPartiallyShared(phis, len(self.v_patch_nums))
        # Kept (persistent) so official checkpoints load strictly; code-usage statistics.
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.v_patch_nums), vocab_size))
        self.embedding = nn.Embedding(vocab_size, Cvae)
        nn.init.uniform_(self.embedding.weight, -1 / vocab_size, 1 / vocab_size)

    # --- small shared pieces -------------------------------------------------------------

    def nearest_code(self, z_BChw: torch.Tensor) -> torch.Tensor:
        """Index (B, h*w) of the L2-nearest codebook entry of every cell of z."""
        B, C, h, w = z_BChw.shape
        z_NC = z_BChw.permute(0, 2, 3, 1).reshape(-1, C)
        codes_VC = self.embedding.weight.detach()
        d_NV = z_NC.square().sum(1, keepdim=True) + codes_VC.square().sum(1)
        d_NV = torch.addmm(d_NV, z_NC, codes_VC.T, alpha=-2, beta=1)
        return d_NV.argmin(dim=1).view(B, h * w)

    def embed_map(self, idx_Bl: torch.Tensor, pn: int) -> torch.Tensor:
        """Codebook vectors of tokens laid out as a (B, Cvae, pn, pn) map."""
        B = idx_Bl.shape[0]
        return self.embedding(idx_Bl).transpose(1, 2).reshape(B, self.Cvae, pn, pn)

    def upsample_phi(self, si: int, h_BChw: torch.Tensor) -> torch.Tensor:
        """phi_si(bicubic-resize(h, H)): the contribution of scale ``si`` to f_hat."""
        H = self.v_patch_nums[-1]
        if si != len(self.v_patch_nums) - 1:
            h_BChw = F.interpolate(h_BChw, size=(H, H), mode="bicubic")
        return self.quant_resi.phi_for(si)(h_BChw)

    def residual_at_scale(self, si: int, f_rest_BChw: torch.Tensor) -> torch.Tensor:
        """The residual seen at scale ``si``: area-resized except at the last (full) scale."""
        pn = self.v_patch_nums[si]
        if si == len(self.v_patch_nums) - 1:
            return f_rest_BChw
        return F.interpolate(f_rest_BChw, size=(pn, pn), mode="area")

    # --- decompositions ------------------------------------------------------------------

    def _check_map(self, f_BChw: torch.Tensor) -> None:
        H = self.v_patch_nums[-1]
        if f_BChw.ndim != 4 or tuple(f_BChw.shape[1:]) != (self.Cvae, H, H):
            raise ValueError(
                f"feature map must be (B, {self.Cvae}, {H}, {H}), got {tuple(f_BChw.shape)}"
            )

    @torch.no_grad()
    def f_to_idxBl_or_fhat(self, f_BChw: torch.Tensor, to_fhat: bool) -> list[torch.Tensor]:
        """Tokens (B, pn_k^2) per scale, or the cumulative f_hat (B, C, H, W) after each."""
        self._check_map(f_BChw)
        f_rest = f_BChw.detach().float().clone()
        f_hat = torch.zeros_like(f_rest)
        out: list[torch.Tensor] = []
        for si, pn in enumerate(self.v_patch_nums):
            idx_Bl = self.nearest_code(self.residual_at_scale(si, f_rest))
            h_BChw = self.upsample_phi(si, self.embed_map(idx_Bl, pn))
            f_hat.add_(h_BChw)
            f_rest.sub_(h_BChw)
            out.append(f_hat.clone() if to_fhat else idx_Bl)
        return out

    def f_to_idxBl(self, f_BChw: torch.Tensor) -> list[torch.Tensor]:
        """Token indices (B, pn_k^2) of every scale."""
        return self.f_to_idxBl_or_fhat(f_BChw, to_fhat=False)

    def f_to_fhats(self, f_BChw: torch.Tensor) -> list[torch.Tensor]:
        """Cumulative reconstructions f_hat (B, C, H, W) after every scale."""
        return self.f_to_idxBl_or_fhat(f_BChw, to_fhat=True)

    def idxBl_to_fhat(self, idx_Bl_list: list[torch.Tensor]) -> torch.Tensor:
        """Sum of every scale's phi(upsample(embed(tokens))): f_hat (B, C, H, W)."""
        f_hat = 0.0
        for si, idx_Bl in enumerate(idx_Bl_list):
            f_hat = f_hat + self.upsample_phi(si, self.embed_map(idx_Bl, self.v_patch_nums[si]))
        return f_hat

    def idxBl_to_var_input(self, idx_Bl_list: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing inputs (B, L - pn_1^2, Cvae): area-resized f_hat of scales 1..K-1."""
        B = idx_Bl_list[0].shape[0]
        H = self.v_patch_nums[-1]
        f_hat = torch.zeros(B, self.Cvae, H, H, device=idx_Bl_list[0].device)
        next_scales: list[torch.Tensor] = []
        for si in range(len(self.v_patch_nums) - 1):
            pn = self.v_patch_nums[si]
            f_hat = f_hat + self.upsample_phi(si, self.embed_map(idx_Bl_list[si], pn))
            pn_next = self.v_patch_nums[si + 1]
            next_BChw = F.interpolate(f_hat, size=(pn_next, pn_next), mode="area")
            next_scales.append(next_BChw.flatten(2).transpose(1, 2))
        return torch.cat(next_scales, dim=1)

    def get_next_autoregressive_input(
        self, si: int, SN: int, f_hat: torch.Tensor, h_BChw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale ``si``'s codes to f_hat (in place, as VAR) and return the next input map."""
        f_hat.add_(self.upsample_phi(si, h_BChw))
        if si == SN - 1:
            return f_hat, f_hat
        pn_next = self.v_patch_nums[si + 1]
        return f_hat, F.interpolate(f_hat, size=(pn_next, pn_next), mode="area")

    def forward(self, f_BChw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Straight-through quantisation for tokenizer training: (f_hat, commitment loss)."""
        self._check_map(f_BChw)
        f_no_grad = f_BChw.detach()
        f_rest = f_no_grad.clone()
        f_hat = torch.zeros_like(f_rest)
        vq_loss = f_BChw.new_zeros(())
        SN = len(self.v_patch_nums)
        for si, pn in enumerate(self.v_patch_nums):
            with torch.no_grad():
                idx_Bl = self.nearest_code(self.residual_at_scale(si, f_rest))
            # grads reach the codebook and phis through h; the encoder through the beta term
            h_BChw = self.upsample_phi(si, self.embed_map(idx_Bl, pn))
            f_hat = f_hat + h_BChw
            f_rest = f_rest - h_BChw.detach()
            if self.training:
                hit_V = torch.bincount(idx_Bl.flatten(), minlength=self.vocab_size).float()
                self.ema_vocab_hit_SV[si].mul_(0.99).add_(hit_V, alpha=0.01)
            vq_loss = vq_loss + F.mse_loss(f_hat.detach(), f_BChw) * self.beta
            vq_loss = vq_loss + F.mse_loss(f_hat, f_no_grad)
        f_hat_st = (f_hat.detach() - f_no_grad) + f_BChw
        return f_hat_st, vq_loss / SN
