"""The shared start of both depth objectives: a pretraining stage, on RGB or depth tokens.

``target`` picks what the stage models (both teacher-forced next-scale cross-entropy):

- ``depth`` (the default, issue 24): VAR teacher forcing on the depth features, exactly
  what the ``var_tf`` objective trains. DepthART and VAR-TF then both start from these
  weights (``train.init_pretrain``) and each trains the same number of steps under the
  same schedule, so their head-to-head is two fine-tunings of one start, as in the paper
  (both from ImageNet VAR d16); docs/fairness.md says why.
- ``rgb``: the RGB frames' own multi-scale tokens (below).

Why RGB (docs/learning.md, issue 15): a from-scratch transformer spends its whole CPU budget
learning the depth codes' marginals before it reads the image prefix; the official
DepthART starts from VAR d16 pretrained on ImageNet. This stage gives ours a start of its
own: teacher-forced next-scale cross-entropy whose TARGETS are the RGB frame's own
multi-scale tokens (the frozen VQ-VAE's quantisation of the RGB features), shared by
both depth objectives through ``train.init_pretrain``.

``prefix`` picks what the transformer sees before the token sequence:

- ``zero``: the prefix is zeroed, i.e. plain unconditional VAR next-scale modelling of RGB;
- ``image``: the real image prefix. The prefix at scale k holds the cumulative RGB f_hat
  after scale k, so the targets of scale k can be read off the prefix at the matching
  scale and position: a copy task that trains exactly the prefix-to-sequence attention
  path that the depth objectives learn too slowly.

The RGB features are not in the feature cache (whose format stays as it is); they are
recomputed per batch from the cached ``rgb`` with the frozen encoder, the same call the
features stage makes to build the prefix, so prefix and targets agree token for token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch

from depthcore.config import TrackingConfig, frozen, param
from depthcore.models.vqvae import VQVAE
from depthcore.run_logger import RunLogger
from depthcore.spaces import rgb_to_model
from depthcore.training.distributed import DistInfo
from depthcore.training.launch import claim_checkpoints, run_fingerprint
from depthcore.training.objectives import REGISTRY, Objective
from depthcore.training.runner import build_trainer, run_training
from depthcore.training.teacher_forcing import teacher_forcing_loss
from depthcore.training.train_config import TrainConfig
from depthcore.training.trainer import LossInputs, Trainer

#: The pretraining objectives' names (both losses are teacher forcing, on RGB / depth tokens).
RGB_NEXT_SCALE = "rgb_next_scale"
DEPTH_TEACHER_FORCING = "depth_teacher_forcing"
PREFIX_MODES = ("zero", "image")
TARGETS = ("depth", "rgb")


@frozen
class PretrainConfig(TrainConfig):
    """``pretrain`` section of params.yaml: the train section's fields plus ``prefix``.

    ``out_dir`` is the stage's folder itself (``models/pretrain``), not a parent of one
    folder per objective.
    """

    out_dir: str = param("models/pretrain", effect="outputs")
    prefix: Literal["zero", "image"] = param("image", choices=PREFIX_MODES)
    # depth: teacher-forced depth warm-up (the var_tf loss); rgb: the RGB frames' tokens
    target: Literal["depth", "rgb"] = param("rgb", choices=TARGETS)
    # 0: write the initial weights (init_var's, or the seeded random init) untrained, for
    # profiles that start from pretrained weights of their own (d16: var_d16.pth)
    steps: int = param(300, ge=0)


@torch.no_grad()
def rgb_features(vae: VQVAE, rgb_B3SS: torch.Tensor) -> torch.Tensor:
    """The frozen encoder's continuous features (B, Cvae, h, w) of a uint8 RGB batch.

    ``vae.f_to_idxBl`` of these are the RGB frame's own multi-scale tokens; the cached
    prefix is the bicubic-resized cumulative f_hat of the same decomposition.
    """
    return vae.encode_features(rgb_to_model(rgb_B3SS))


class PretrainTrainer(Trainer):
    """The :class:`Trainer` loop, checkpoints and logging on RGB next-scale targets.

    Only the batch's inputs differ from depth training: the features to tokenise are the
    RGB frame's, and the prefix is the real one or zeros (``cfg.prefix``). The validation
    ablation (real / zeroed / other-image prefix) then tells whether the copy path works.
    """

    #: not a registered objective of the comparison: the pretrain stage's own
    objectives = {RGB_NEXT_SCALE: Objective(teacher_forcing_loss, "transformer", "generate")}
    fields = ("prefix", "rgb")
    model_file, metrics_file = "var.safetensors", "pretrain_metrics.json"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.cfg, PretrainConfig):
            raise TypeError(f"PretrainTrainer needs a PretrainConfig, got {type(self.cfg)}")
        self.prefix_mode = self.cfg.prefix

    def loss_inputs(self, batch: dict[str, torch.Tensor]) -> LossInputs:
        """(prefix_BLC, fRGB_BChw, rgb_B3HW): the prefix of ``cfg.prefix``, the RGB
        features and, for a model with a pixel path, the frames (grey under ``zero``)."""
        prefix_BLC = batch["prefix_LC"].to(self.device, non_blocking=True)
        rgb_B3HW = self.frames(batch)
        if self.prefix_mode == "zero":
            prefix_BLC = torch.zeros_like(prefix_BLC)
            rgb_B3HW = None if rgb_B3HW is None else torch.zeros_like(rgb_B3HW)
        return prefix_BLC, self.target_features(batch), rgb_B3HW

    def target_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The continuous features whose multi-scale tokens are the targets: the RGB's."""
        rgb_B3SS = batch["rgb_3SS"].to(self.device, non_blocking=True)
        return rgb_features(self.vae, rgb_B3SS).float()

    def meta(self) -> dict[str, Any]:
        """The depth trainer's meta plus the prefix mode and the tokenizer it pretrained on."""
        return {
            **super().meta(),
            "prefix": self.prefix_mode,
            "tokenizer_sha256": self.tokenizer_sha256,
        }

    @property
    def tokenizer_sha256(self) -> str:
        return str(self.train_set.attrs.get("tokenizer_sha256", ""))


class DepthWarmupTrainer(PretrainTrainer):
    """``target: depth``: the same stage on the depth features' tokens, i.e. the ``var_tf``
    objective's teacher forcing, run once as the shared start of both depth objectives."""

    objectives = {DEPTH_TEACHER_FORCING: REGISTRY["var_tf"]}  # the very objective var_tf trains
    fields = ("fD", "prefix")

    def target_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The cached depth features (as :meth:`Trainer.loss_inputs` reads them)."""
        return batch["fD_Chw"].to(self.device, non_blocking=True)


#: ``pretrain.target`` -> (objective name, trainer class).
PRETRAINERS: dict[str, tuple[str, type[PretrainTrainer]]] = {
    "rgb": (RGB_NEXT_SCALE, PretrainTrainer),
    "depth": (DEPTH_TEACHER_FORCING, DepthWarmupTrainer),
}


def build_pretrain_trainer(
    cfg: PretrainConfig, objective: str, out_dir: Path, logger: RunLogger, info: DistInfo
) -> Trainer:
    """The pretrain stage's :data:`~depthcore.training.runner.TrainerFactory` (by target)."""
    trainer_cls = PRETRAINERS[cfg.target][1]
    return build_trainer(cfg, objective, out_dir, logger, info, trainer_cls=trainer_cls)


def run_pretraining(cfg: PretrainConfig, tracking: TrackingConfig | None = None) -> dict[str, Any]:
    """The pretrain stage: claim (or clear) its checkpoints, train, write
    ``<out_dir>/var.safetensors`` and ``<out_dir>/pretrain_metrics.json`` (logged to
    ``tracking``; None: not logged)."""
    objective = PRETRAINERS[cfg.target][0]
    out_dir = Path(cfg.out_dir)
    if cfg.resume:
        claim_checkpoints(out_dir / "ckpt", run_fingerprint(cfg, objective))
    return run_training(
        cfg, objective, build_pretrain_trainer, out_dir, stage="pretrain", tracking=tracking
    )
