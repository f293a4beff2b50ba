"""The frozen tokenizer: import the official VQ-VAE, or train the tiny one on our data.

Without network or pretrained weights the embedded pipeline needs its own
multi-scale residual VQ-VAE. It is trained once, on the training split's RGB
and normalised depth (replicated to 3 channels), with VAR's recipe: L1 + L2
reconstruction plus the quantiser's codebook/commitment loss through the
straight-through estimator, then frozen for both objectives.

Its depth reconstruction AbsRel, the ceiling any token model on top of it can
reach, is scored by :mod:`depthcore.evaluation.ceiling` (stage ``tokenizer_eval``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from depthcore.config import frozen, param, to_dict
from depthcore.data.frames import iter_frames
from depthcore.data.shards import ShardDataset
from depthcore.device import resolve_device
from depthcore.errors import DataError
from depthcore.io import write_text_atomic
from depthcore.models import MODEL_CONFIGS, VQVAE, resolve_config
from depthcore.models.checkpoint import load_official_vae, save_vae
from depthcore.spaces import rgb_to_model, target_to_depth3

log = logging.getLogger(__name__)


@frozen
class TokenizerConfig:
    """``tokenizer`` section of params.yaml (also read by the tokenizer_eval stage, whose own
    keys are its section, :class:`depthcore.evaluation.ceiling.TokenizerEvalConfig`)."""

    checkpoint: str = ""  # official VQ-VAE .pth (e.g. vae_ch160v4096z32.pth); "" = train
    model: str = param(
        "tiny", choices=MODEL_CONFIGS
    )  # MODEL_CONFIGS name whose VQ-VAE layout is used
    data_dir: str = "data/processed"  # preprocess output (HDF5 shards per split)
    out_dir: str = "models/tokenizer"  # writes vae.safetensors + tokenizer_metrics.json
    steps: int = param(300, gt=0)
    batch_size: int = param(16, gt=0)  # frames per step (each gives one RGB and one depth image)
    lr: float = param(1e-3, gt=0)
    weight_decay: float = param(0.0, ge=0)
    l1_weight: float = param(1.0, ge=0)
    l2_weight: float = param(1.0, ge=0)
    vq_weight: float = param(1.0, ge=0)
    grad_clip: float = param(1.0, ge=0)  # max grad norm; 0 disables
    max_frames: int = param(0, ge=0)  # training frames held in memory; 0 = all
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = param(0, ge=0)  # torch intra-op threads; 0 = torch default


@dataclass(frozen=True)
class TokenizerFit:
    """What training returned: the loss curve and the wall time."""

    losses: list[float]
    seconds: float

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * self.seconds / max(1, len(self.losses))


def load_training_images(dataset: Any, image_size: int, max_frames: int = 0) -> torch.Tensor:
    """All training frames as model inputs: (2N, 3, S, S) float, RGB then depth3."""
    rgb, depth3 = [], []
    for batch in iter_frames(dataset, image_size, batch_size=64, limit=max_frames):
        rgb.append(rgb_to_model(batch.rgb))
        depth3.append(target_to_depth3(batch.target))
    if not rgb:
        raise DataError("tokenizer: the training split has no frames")
    return torch.cat(rgb + depth3)


def train_vqvae(
    vae: torch.nn.Module,
    images_N3SS: torch.Tensor,
    cfg: TokenizerConfig,
    device: str = "cpu",
) -> TokenizerFit:
    """Train ``vae`` in place for ``cfg.steps`` steps on random batches of ``images_N3SS``."""
    gen = torch.Generator().manual_seed(cfg.seed)
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = images_N3SS.shape[0]
    batch = min(n, 2 * cfg.batch_size)
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        idx_B = torch.randperm(n, generator=gen)[:batch]
        x_B3SS = images_N3SS[idx_B].to(device)
        rec_B3SS, vq_loss = vae(x_B3SS)
        loss = (
            cfg.l1_weight * F.l1_loss(rec_B3SS, x_B3SS)
            + cfg.l2_weight * F.mse_loss(rec_B3SS, x_B3SS)
            + cfg.vq_weight * vq_loss
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"tokenizer loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(float(loss.item()))
        if step % 50 == 0 or step == cfg.steps - 1:
            log.info("tokenizer step %d/%d loss %.4f", step + 1, cfg.steps, losses[-1])
    vae.eval()
    return TokenizerFit(losses=losses, seconds=time.perf_counter() - t0)


def run_tokenizer(cfg: TokenizerConfig) -> dict[str, Any]:
    """The tokenizer stage: import or train, then save the frozen weights.

    Its reconstruction ceiling is scored by the ``tokenizer_eval`` stage
    (:mod:`depthcore.evaluation.ceiling`), so an edit of the metrics never retrains it.
    """
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    model_cfg = resolve_config(cfg.model)
    train_set = ShardDataset(cfg.data_dir, "train")
    space = str(train_set.space)
    metrics: dict[str, Any] = {"source": "trained", "space": space, "model": cfg.model}
    if cfg.checkpoint:
        vae = load_official_vae(cfg.checkpoint, model_cfg.vae)
        metrics["source"] = f"official:{Path(cfg.checkpoint).name}"
    else:
        torch.manual_seed(cfg.seed)
        vae = VQVAE.from_config(model_cfg.vae)
        images = load_training_images(train_set, model_cfg.image_size, cfg.max_frames)
        fit = train_vqvae(vae, images, cfg, device)
        metrics.update(
            steps=cfg.steps,
            train_images=int(images.shape[0]),
            train_seconds=round(fit.seconds, 3),
            ms_per_step=round(fit.ms_per_step, 2),
            loss_first=fit.losses[0],
            loss_final=float(np.mean(fit.losses[-10:])),
        )
    out_dir = Path(cfg.out_dir)
    save_vae(out_dir / "vae.safetensors", vae.cpu(), meta={"space": space, **metrics})
    path = out_dir / "tokenizer_train.json"
    write_text_atomic(path, json.dumps({**metrics, "config": to_dict(cfg)}, indent=2) + "\n")
    log.info("tokenizer (%s) saved to %s", metrics["source"], out_dir / "vae.safetensors")
    return metrics
