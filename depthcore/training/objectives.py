"""The one registry of the comparison's objectives (:data:`REGISTRY`): name -> (loss, trainer
kind, scales kind).

Everything that names an objective reads it here: the train stage's ``--objective``
choices and its trainer (:data:`depthcore.training.launch.TRAINERS`), the trainer's loss
(:class:`~depthcore.training.trainer.Trainer` looks the name up, it never tests one), the
scales stage's choices and how it reads each model, and the objectives the register stage
accepts. A new objective is one entry here (plus its loss function).

A transformer objective's loss is ``(vae, var, prefix_BLC, fD_BChw, rgb_B3HW=None) ->
LossOutput`` (the frames only for a model with a pixel path); ``options`` adds the keywords
it takes from the ``train`` section (DepthART's rollout decoding). The regression
baseline's is :func:`~depthcore.training.losses.masked_l1` on its one-pass prediction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from depthcore.training.depthart import depthart_loss, depthart_targets
from depthcore.training.losses import (
    LossOutput,
    masked_l1,
    scale_cross_entropy,
    training_loss,
)
from depthcore.training.teacher_forcing import teacher_forcing_loss
from depthcore.training.train_config import TrainConfig

#: A transformer objective's loss function (see the module docstring).
LossFn = Callable[..., LossOutput]
#: How a trainer kind is built (:data:`depthcore.training.launch.TRAINERS` maps each).
TrainerKind = Literal["transformer", "regression"]
#: How the scales stage reads a model: ``generate``: next-scale generation, the
#: prediction after every scale and the prefix ablation; ``one_pass``: one prediction.
ScalesKind = Literal["generate", "one_pass"]

#: The loss of a transformer objective's first ``train.tf_warmup_steps`` steps.
WARMUP_LOSS: LossFn = teacher_forcing_loss


def _no_options(cfg: TrainConfig) -> dict[str, Any]:
    return {}


def _rollout_options(cfg: TrainConfig) -> dict[str, Any]:
    """DepthART's rollout (greedy, the paper's argmax, is the loss's own default) and its
    last-scale loss (``rec_loss``: the official VARLoss's, off by default)."""
    options: dict[str, Any] = {} if cfg.rollout == "greedy" else {"rollout_decoding": cfg.rollout}
    if cfg.rec_loss:
        options["rec_loss"] = True
    return options


@dataclass(frozen=True)
class Objective:
    """One objective: its loss, the trainer that runs it and how its model is scored per scale."""

    loss: Callable[..., Any]
    trainer: TrainerKind
    scales: ScalesKind
    #: The keywords the loss takes from the ``train`` section.
    options: Callable[[TrainConfig], dict[str, Any]] = field(default=_no_options)

    def bound(self, cfg: TrainConfig) -> Callable[..., Any]:
        """The loss with its ``train``-section options applied."""
        options = self.options(cfg)
        return functools.partial(self.loss, **options) if options else self.loss


#: Every ``--objective`` of the train and scales stages (and ``register.objectives``).
REGISTRY: dict[str, Objective] = {
    "depthart": Objective(depthart_loss, "transformer", "generate", _rollout_options),
    "var_tf": Objective(teacher_forcing_loss, "transformer", "generate"),
    "regression": Objective(masked_l1, "regression", "one_pass"),
}

#: The transformer objectives' losses by name (a view of :data:`REGISTRY`).
OBJECTIVES: dict[str, LossFn] = {
    name: o.loss for name, o in REGISTRY.items() if o.trainer == "transformer"
}


def objectives_of(kind: TrainerKind) -> Mapping[str, Objective]:
    """The registered objectives that the trainer kind ``kind`` trains."""
    return {name: o for name, o in REGISTRY.items() if o.trainer == kind}


def objective(name: str) -> Objective:
    """The registry entry of ``name``; an unknown name fails listing the known ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown objective {name!r} (choose from {sorted(REGISTRY)})")
    return REGISTRY[name]


def token_loss(
    out: LossOutput, vae: torch.nn.Module, var: torch.nn.Module, cfg: TrainConfig
) -> torch.Tensor:
    """The scalar a transformer objective minimises: its cross-entropy under
    ``cfg.loss_weighting`` plus ``cfg.embed_loss_weight`` x the mean-embedding error against
    the tokenizer's codebook (kept here, so the trainer needs no VQ-VAE internals)."""
    codes_VC = vae.quantize.embedding.weight
    return training_loss(out, var.begin_ends, cfg.loss_weighting, codes_VC, cfg.embed_loss_weight)


__all__ = [
    "OBJECTIVES",
    "REGISTRY",
    "WARMUP_LOSS",
    "LossFn",
    "LossOutput",
    "Objective",
    "ScalesKind",
    "TrainerKind",
    "depthart_loss",
    "depthart_targets",
    "masked_l1",
    "objective",
    "objectives_of",
    "scale_cross_entropy",
    "teacher_forcing_loss",
    "token_loss",
]
