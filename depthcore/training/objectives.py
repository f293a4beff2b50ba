"""The training objectives by name (``OBJECTIVES``): DepthART and VAR teacher forcing.

Each objective is ``(vae, var, prefix_BLC, fD_BChw) -> LossOutput``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from depthcore.models.var import DepthVAR
from depthcore.models.vqvae import VQVAE
from depthcore.training.depthart import depthart_loss, depthart_targets
from depthcore.training.losses import LossOutput, scale_cross_entropy
from depthcore.training.teacher_forcing import teacher_forcing_loss

Objective = Callable[[VQVAE, DepthVAR, torch.Tensor, torch.Tensor], LossOutput]

OBJECTIVES: dict[str, Objective] = {
    "depthart": depthart_loss,
    "var_tf": teacher_forcing_loss,
}

__all__ = [
    "OBJECTIVES",
    "LossOutput",
    "Objective",
    "depthart_loss",
    "depthart_targets",
    "scale_cross_entropy",
    "teacher_forcing_loss",
]
