"""The ``train`` section (:class:`TrainConfig`), shared by the trainer and the pretrain stage.

Only what the trainings read: the scales stage has its own section
(:class:`depthcore.evaluation.scales.ScalesConfig`) and where runs are logged is the
``tracking`` section (:class:`depthcore.config.TrackingConfig`). Each field's ``effect``
(:data:`depthcore.config.EFFECTS`) says whether it is a DVC param of the trainings and
whether it is in their checkpoint fingerprint.
"""

from __future__ import annotations

from typing import Literal

from depthcore.config import frozen, param
from depthcore.models import MODEL_CONFIGS

#: Config keys that must agree between a checkpoint and the run resuming from it.
RESUME_KEYS = (
    "model", "batch_size", "lr", "betas", "weight_decay", "schedule", "warmup_steps",
    "step_size", "gamma", "min_lr", "grad_clip", "seed", "loss_weighting",
    "tf_warmup_steps", "rollout", "embed_loss_weight", "rec_loss",
)  # fmt: skip


@frozen
class TrainConfig:
    """``train`` section of params.yaml (the objective comes from the command line)."""

    model: str = param("tiny", choices=MODEL_CONFIGS)  # MODEL_CONFIGS name
    tokenizer: str = "models/tokenizer/vae.safetensors"  # frozen VQ-VAE (save_vae file)
    features_dir: str = "features"  # <features_dir>/<split>.h5 from the features stage
    out_dir: str = param("models", effect="outputs")  # writes <out_dir>/<objective>/...
    train_split: str = "train"
    val_split: str = param("val", effect="outputs")  # the validation loss's frames
    steps: int = param(300, gt=0)
    # train@regression's steps (0 = ``steps``): its step costs ~0.4x a transformer step on
    # CPU, so a larger count can still spend less time than each transformer does
    regression_steps: int = param(0, ge=0)
    batch_size: int = param(16, gt=0)  # per process
    lr: float = param(1e-3, gt=0)
    betas: tuple[float, float] = param((0.9, 0.999), ge=0, lt=1)
    weight_decay: float = param(0.01, ge=0)  # on matrices only (not biases, norms, gains)
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    warmup_steps: int = param(0, ge=0)
    step_size: int = param(
        5000, gt=0
    )  # step schedule: decay every step_size steps (official: 5000)
    gamma: float = param(0.8, gt=0, le=1)  # step schedule factor (official: 0.8)
    min_lr: float = param(0.0, ge=0)  # cosine floor
    grad_clip: float = param(1.0, ge=0)  # max global grad norm; 0 disables
    loss_weighting: Literal["token", "scale"] = "token"  # token: VAR's; scale: each scale equal
    tf_warmup_steps: int = param(0, ge=0)  # first steps of a non-var_tf objective, teacher-forced
    # DepthART's own-prediction rollout: greedy (the paper's argmax tokens) or expected
    # (the mean code embeddings the default evaluation decodes with; depthart.py)
    rollout: Literal["greedy", "expected"] = "greedy"
    # + this x the mean code embedding's squared error (losses.expected_embedding_error)
    embed_loss_weight: float = param(0.0, ge=0)
    # DepthART's last scale as the official rec_loss: no cross-entropy there, a Gumbel-softmax
    # code mixture completes f_hat and 10 x its MSE to the depth features is the loss
    # instead (training/depthart.py, docs/paper.md)
    rec_loss: bool = False
    seed: int = 0
    # steps between checkpoints (0 = only at the end) and how many are kept: a resumed run
    # ends with the same weights whatever they are
    ckpt_every: int = param(100, ge=0, effect="none")
    keep_ckpts: int = param(2, gt=0, effect="none")
    # the validation loss (train_metrics.json, the run log): steps between (0 = only at the
    # end), frames (0 = all) and batch; the scales stage has its own (scales.frames, ...)
    val_every: int = param(0, ge=0, effect="outputs")
    val_frames: int = param(16, ge=0, effect="outputs")
    val_batch_size: int = param(8, gt=0, effect="outputs")
    log_every: int = param(10, gt=0, effect="none")  # steps between logged losses
    init_var: str = ""  # official var_d16.pth to start from ("" = random init)
    # the pretrain stage's var.safetensors to start from (after init_var); not regression's
    init_pretrain: str = ""
    # continue from the newest checkpoint in <out>/<objective>/ckpt (same weights either way)
    resume: bool = param(True, effect="none")
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = param(0, ge=0)  # torch intra-op threads; 0 = torch default
    # DataLoader workers (the batch of a step is a function of seed and step alone)
    num_workers: int = param(0, ge=0, effect="none")
    # bf16: autocast forward, fp32 master weights; auto: bf16 where the device runs it natively
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    compile: bool = False  # torch.compile the transformer's parallel (gradient) pass
    grad_checkpointing: bool = False  # recompute block activations in backward (saves memory)
