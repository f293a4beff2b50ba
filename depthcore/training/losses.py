"""The loss record both objectives return, and the per-scale cross-entropy they share."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossOutput:
    """``loss``: scalar with grad; ``per_scale_loss``: (K,) detached mean CE of each scale."""

    loss: torch.Tensor
    logits_BLV: torch.Tensor
    target_BL: torch.Tensor
    per_scale_loss: torch.Tensor


def scale_cross_entropy(
    logits_BLV: torch.Tensor, target_BL: torch.Tensor, begin_ends: list[tuple[int, int]]
) -> LossOutput:
    """Mean cross-entropy over all tokens (every token weighted equally, as in VAR)."""
    B, L, V = logits_BLV.shape
    if tuple(target_BL.shape) != (B, L):
        raise ValueError(f"targets {tuple(target_BL.shape)} do not match logits {(B, L, V)}")
    ce_BL = F.cross_entropy(logits_BLV.reshape(-1, V), target_BL.reshape(-1), reduction="none")
    ce_BL = ce_BL.view(B, L)
    per_scale = torch.stack([ce_BL[:, s:e].mean() for s, e in begin_ends]).detach()
    return LossOutput(ce_BL.mean(), logits_BLV, target_BL, per_scale)
