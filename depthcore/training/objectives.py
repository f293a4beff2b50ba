"""The training objectives by name (``OBJECTIVES``): DepthART and VAR teacher forcing.

Each objective is ``(vae, var, prefix_BLC, fD_BChw, rgb_B3HW=None) -> LossOutput``
(the frames only for a model with a pixel path).
"""

from __future__ import annotations

from collections.abc import Callable

from depthcore.training.depthart import depthart_loss, depthart_targets
from depthcore.training.losses import LossOutput, scale_cross_entropy
from depthcore.training.teacher_forcing import teacher_forcing_loss

Objective = Callable[..., LossOutput]

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
