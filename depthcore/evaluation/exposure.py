"""Exposure bias, measured: each scale with teacher-forced inputs vs with the model's own.

The DepthART paper's argument: a teacher-forced model only ever sees the ground-truth
tokens of the coarser scales, never its own mistakes, so at inference (where scale k
follows the model's own scales < k) it is off the distribution it learned. This module
puts a number on that per scale, for any trained transformer and decoding:

- *teacher-forced* inputs: scales < k are the VQ-VAE's own decomposition of the frame's
  depth features (what ``var_tf`` trains on);
- *own* inputs: scales < k are the model's rollout under the decoding (greedy, sample or
  expected: :func:`depthcore.models.generate.rollout`, what inference feeds).

Given the inputs, one parallel pass gives the logits of every scale, and per scale:

- the loss: cross-entropy against the tokens that best explain what the inputs left
  unexplained (:func:`depthcore.models.targets.depthart_targets`); with teacher-forced
  inputs these are exactly the ground-truth tokens (VAR's loss), with the own inputs they
  are DepthART's dynamic targets, so each mode is scored against its right answer;
- the prediction after scale k: the inputs' f_hat of scales < k plus the model's choice
  at scale k (decoded and scored by :mod:`depthcore.evaluation.scales`).

The exposure gap is own minus teacher-forced. At scale 1 both modes see only the image
prefix, so a deterministic decoding's gap there is 0 (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from depthcore.models.generate import SamplingConfig, choose_tokens, decode_depth, rollout
from depthcore.models.targets import depthart_targets
from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE

#: The two input modes, in the order the outputs list them.
MODES = ("teacher_forced", "own")


def teacher_forced_inputs(vae: VQVAE, fD_BChw: torch.Tensor) -> list[torch.Tensor]:
    """The ground-truth code embedding maps (B, Cvae, pn, pn) of every scale."""
    quant = vae.quantize
    idx_K = vae.f_to_idxBl(fD_BChw)
    return [quant.embed_map(idx_Bl, pn) for idx_Bl, pn in zip(idx_K, vae.v_patch_nums, strict=True)]


@torch.no_grad()
def measure_inputs(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLC: torch.Tensor,
    fD_BChw: torch.Tensor,
    h_K: list[torch.Tensor],
    sampling: SamplingConfig,
    generator: torch.Generator | None = None,
    rgb_B3HW: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-scale loss (K,), prediction after each scale (K, B, H, W)) with inputs ``h_K``.

    ``h_K``: per scale, the embedding map fed forward (its last entry is not an input);
    scale k's prediction is the f_hat of ``h_K[:k]`` plus the model's own choice at k
    (under ``sampling``) from the logits of the one parallel pass.
    """
    quant, SN = vae.quantize, len(vae.v_patch_nums)
    f_hat = fD_BChw.new_zeros(fD_BChw.shape, dtype=torch.float32)
    before_K, inputs = [], []
    for si, h_BChw in enumerate(h_K):
        before_K.append(f_hat.clone())
        f_hat, next_BChw = quant.get_next_autoregressive_input(si, SN, f_hat, h_BChw.float())
        inputs.append(next_BChw.flatten(2).transpose(1, 2))
    logits_BLV = var(prefix_BLC, torch.cat(inputs[:-1], dim=1), rgb_B3HW).float()
    target_BL = torch.cat(depthart_targets(vae, fD_BChw, h_K), dim=1)
    B, L, V = logits_BLV.shape
    ce_BL = F.cross_entropy(logits_BLV.reshape(-1, V), target_BL.reshape(-1), reduction="none")
    loss_K = torch.stack([ce_BL.view(B, L)[:, s:e].mean() for s, e in var.begin_ends])
    after_K = []
    for si, ((start, end), pn) in enumerate(zip(var.begin_ends, vae.v_patch_nums, strict=True)):
        _, h_BlCv = choose_tokens(vae, logits_BLV[:, start:end], sampling, generator)
        h_BChw = h_BlCv.transpose(1, 2).reshape(h_BlCv.shape[0], vae.Cvae, pn, pn)
        f_after, _ = quant.get_next_autoregressive_input(si, SN, before_K[si], h_BChw.float())
        after_K.append(decode_depth(vae, f_after)[:, 0])
    return loss_K, torch.stack(after_K)


@torch.no_grad()
def exposure_batch(
    vae: VQVAE,
    var: DepthVAR,
    prefix_BLC: torch.Tensor,
    fD_BChw: torch.Tensor,
    sampling: SamplingConfig,
    generator: torch.Generator | None = None,
    rgb_B3HW: torch.Tensor | None = None,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{mode: (loss_K, pred_KBHW)}`` of one batch under teacher-forced and own inputs."""
    own = rollout(vae, var, prefix_BLC, sampling, generator=generator, rgb_B3HW=rgb_B3HW)
    inputs = {"teacher_forced": teacher_forced_inputs(vae, fD_BChw), "own": own.h_K}
    return {
        mode: measure_inputs(vae, var, prefix_BLC, fD_BChw, h_K, sampling, generator, rgb_B3HW)
        for mode, h_K in inputs.items()
    }


@dataclass(frozen=True)
class ExposureGap:
    """Per scale, the validation loss and AbsRel of both input modes, for one decoding."""

    decoding: str
    patch_nums: list[int]
    loss: dict[str, list[float]]  # mode -> per-scale mean loss
    abs_rel: dict[str, list[float]]  # mode -> per-scale mean AbsRel

    @property
    def loss_gap(self) -> list[float]:
        """Own minus teacher-forced loss per scale (> 0: worse on its own inputs)."""
        return [o - t for o, t in zip(self.loss["own"], self.loss["teacher_forced"], strict=True)]

    @property
    def abs_rel_gap(self) -> list[float]:
        """Own minus teacher-forced AbsRel per scale."""
        own, tf = self.abs_rel["own"], self.abs_rel["teacher_forced"]
        return [o - t for o, t in zip(own, tf, strict=True)]

    def to_json(self) -> dict[str, Any]:
        return {
            "patch_nums": self.patch_nums,
            **{f"loss_{mode}": self.loss[mode] for mode in MODES},
            **{f"abs_rel_{mode}": self.abs_rel[mode] for mode in MODES},
            "loss_gap": self.loss_gap,
            "abs_rel_gap": self.abs_rel_gap,
        }

    def csv_rows(self) -> list[str]:
        """One row per scale (``exposure_<decoding>.csv``, for ``dvc plots``)."""
        rows = []
        for k, pn in enumerate(self.patch_nums):
            values = [self.loss[m][k] for m in MODES] + [self.loss_gap[k]]
            values += [self.abs_rel[m][k] for m in MODES] + [self.abs_rel_gap[k]]
            rows.append(f"{k},{pn}," + ",".join(f"{v:.6f}" for v in values))
        return rows


#: The header of :meth:`ExposureGap.csv_rows`.
CSV_HEADER = (
    "scale,patch_num,loss_teacher_forced,loss_own,loss_gap,"
    "abs_rel_teacher_forced,abs_rel_own,abs_rel_gap"
)
