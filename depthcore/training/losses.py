"""The loss record both transformer objectives return, the per-scale cross-entropy they share,
and the regression baseline's masked L1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossOutput:
    """``loss``: scalar with grad (every scored token weighted equally); ``ce_BL``:
    per-token CE with grad (for other weightings, :func:`training_loss`);
    ``per_scale_loss``: (K,) detached mean CE of each scale (all scales, for the logs).

    ``scored_L``: which positions' CE the loss holds (bool (L,); None: all) and
    ``extra_loss``: a further term with grad in ``loss`` (None: none), e.g. DepthART's
    ``rec_loss``, whose last scale has a feature loss instead of cross-entropy.
    """

    loss: torch.Tensor
    logits_BLV: torch.Tensor
    target_BL: torch.Tensor
    per_scale_loss: torch.Tensor
    ce_BL: torch.Tensor
    scored_L: torch.Tensor | None = None
    extra_loss: torch.Tensor | None = None


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
    return LossOutput(ce_BL.mean(), logits_BLV, target_BL, per_scale, ce_BL)


def scale_balanced_loss(ce_BL: torch.Tensor, begin_ends: list[tuple[int, int]]) -> torch.Tensor:
    """Mean over scales of each scale's mean CE: every scale weighted equally.

    With equal token weights the 1 + 4 + 9 tokens that fix the coarse layout carry
    ~10% of the loss of a 130-token sequence, and the fine, nearly unpredictable
    residual codes dominate the gradient; balancing gives the layout its share.
    """
    return torch.stack([ce_BL[:, s:e].mean() for s, e in begin_ends]).mean()


def expected_embedding_error(
    logits_BLV: torch.Tensor, target_BL: torch.Tensor, codes_VC: torch.Tensor
) -> torch.Tensor:
    """Per-token squared distance between the predicted mean code embedding and the target's.

    Cross-entropy scores a near miss (a code close to the target in feature space)
    like a far one; this term scores what expected decoding feeds forward, the
    probability-weighted mean code, against the target code. Divided by the mean
    squared code norm, so its weight does not depend on the codebook's scale. The
    codebook is frozen: gradients reach the logits only.
    """
    codes_VC = codes_VC.detach().float()
    mean_BLC = logits_BLV.float().softmax(-1) @ codes_VC
    err_BL = (mean_BLC - codes_VC[target_BL]).pow(2).sum(-1)
    return err_BL / codes_VC.pow(2).sum(-1).mean().clamp_min(1e-12)


def training_loss(
    out: LossOutput,
    begin_ends: list[tuple[int, int]],
    weighting: str,
    codes_VC: torch.Tensor | None = None,
    embed_weight: float = 0.0,
) -> torch.Tensor:
    """The scalar to minimise: CE weighted per token (VAR's) or per scale, plus
    ``embed_weight`` x :func:`expected_embedding_error` under the same weighting, over
    the scored positions (``out.scored_L``), plus ``out.extra_loss``."""
    if weighting not in ("token", "scale"):
        raise ValueError(f"loss weighting must be 'token' or 'scale', got {weighting!r}")
    scored_L = out.scored_L
    if scored_L is not None:  # scales are scored wholly or not at all
        begin_ends = [(s, e) for s, e in begin_ends if bool(scored_L[s:e].all())]

    def reduce(per_token_BL: torch.Tensor) -> torch.Tensor:
        if weighting == "scale":
            return scale_balanced_loss(per_token_BL, begin_ends)
        return per_token_BL.mean() if scored_L is None else per_token_BL[:, scored_L].mean()

    if weighting == "token":
        loss = out.loss  # (its scored CE plus its extra term)
    else:
        loss = reduce(out.ce_BL)
        if out.extra_loss is not None:
            loss = loss + out.extra_loss
    if embed_weight > 0:
        if codes_VC is None:
            raise ValueError("embed_weight > 0 needs the codebook (codes_VC)")
        loss = loss + embed_weight * reduce(
            expected_embedding_error(out.logits_BLV, out.target_BL, codes_VC)
        )
    return loss


def masked_l1(
    pred_BSS: torch.Tensor, target_BSS: torch.Tensor, mask_BSS: torch.Tensor
) -> torch.Tensor:
    """Mean |pred - target| over the real depth pixels (infilled holes do not teach)."""
    if pred_BSS.shape != target_BSS.shape or target_BSS.shape != mask_BSS.shape:
        raise ValueError(
            f"shapes differ: pred {tuple(pred_BSS.shape)}, target {tuple(target_BSS.shape)}, "
            f"mask {tuple(mask_BSS.shape)}"
        )
    weight_BSS = mask_BSS.to(pred_BSS.dtype)
    return ((pred_BSS - target_BSS).abs() * weight_BSS).sum() / weight_BSS.sum().clamp_min(1.0)
