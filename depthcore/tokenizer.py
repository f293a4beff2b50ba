"""The frozen tokenizer: import the official VQ-VAE, or train the tiny one on our data.

Without network or pretrained weights the embedded pipeline needs its own
multi-scale residual VQ-VAE. It is trained once, on the training split's RGB
and normalised depth (replicated to 3 channels), with VAR's recipe: L1 + L2
reconstruction plus the quantiser's codebook/commitment loss through the
straight-through estimator, then frozen for both objectives.

Its depth reconstruction AbsRel (decode, undo each frame's normalisation,
compare with the frame's valid depth) is the ceiling any token model on top
of it can reach, so it is reported with the tokenizer.
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

from depthcore.alignment import depth_to_space, fit_scale_shift
from depthcore.config import frozen, to_dict
from depthcore.data.transforms import Normalisation, invert_normalisation
from depthcore.errors import DataError
from depthcore.features import frame_at_size, iter_frames, rgb_to_model, target_to_depth3
from depthcore.io import write_text_atomic
from depthcore.metrics import compute_metrics

log = logging.getLogger(__name__)

#: Depth reconstructions are clipped to [MIN_DEPTH, inf) before scoring (a target of
#: exactly -1 in scale_depth space is depth 0).
MIN_DEPTH = 1e-3


@frozen
class TokenizerConfig:
    """``tokenizer`` section of params.yaml."""

    checkpoint: str = ""  # official VQ-VAE .pth (e.g. vae_ch160v4096z32.pth); "" = train
    model: str = "tiny"  # MODEL_CONFIGS name whose VQ-VAE layout is used
    data_dir: str = "data/processed"  # preprocess output (HDF5 shards per split)
    out_dir: str = "models/tokenizer"  # writes vae.safetensors + tokenizer_metrics.json
    steps: int = 300
    batch_size: int = 16  # frames per step (each gives one RGB and one depth image)
    lr: float = 1e-3
    weight_decay: float = 0.0
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    vq_weight: float = 1.0
    grad_clip: float = 1.0  # max grad norm; 0 disables
    max_frames: int = 0  # training frames held in memory; 0 = all
    eval_split: str = "val"
    eval_frames: int = 32  # frames scored for the reconstruction AbsRel; 0 = all
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch intra-op threads; 0 = torch default


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


def frame_normalisation(item: dict[str, Any], space: str) -> Normalisation:
    """The affine map preprocessing used for this frame, recovered from its own arrays.

    ``target = a * g(depth) + b`` holds exactly on valid pixels the clip did not
    touch, so a least-squares fit there gives (a, b) whatever percentiles the
    preprocess stage was configured with.
    """
    target = np.asarray(item["target_HW"], dtype=np.float64)
    depth = np.asarray(item["depth_HW"], dtype=np.float64)
    mask = np.asarray(item["mask_HW"], dtype=bool) & (np.abs(target) < 1.0 - 1e-6)
    mask &= np.isfinite(depth) & (depth > 0)
    if mask.sum() < 2:
        raise DataError(f"frame {item.get('key')}: too few unclipped valid pixels to invert")
    a, b = fit_scale_shift(depth_to_space(depth[mask], space), target[mask])
    if space == "scale_depth":
        b = -1.0  # scale only by definition
    return Normalisation(space, a, b)


@torch.no_grad()
def reconstruction_metrics(
    vae: torch.nn.Module,
    dataset: Any,
    image_size: int,
    space: str,
    max_frames: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean depth metrics of decode(quantise(encode(depth3))) against the valid depth."""
    vae.to(device).eval()
    n = len(dataset) if max_frames <= 0 else min(len(dataset), max_frames)
    if n == 0:
        raise DataError("tokenizer: no frames to score the reconstruction on")
    per_frame: list[dict[str, float]] = []
    for i in range(n):
        item = dataset[i]
        norm = frame_normalisation(item, space)
        _, target_SS, depth_SS, mask_SS = frame_at_size(item, image_size)
        x_13SS = target_to_depth3(torch.from_numpy(target_SS)[None]).to(device)
        rec_13SS, _ = vae(x_13SS)
        rec_SS = rec_13SS.clamp(-1, 1).mean(dim=1)[0].cpu().numpy()
        pred_SS = np.maximum(invert_normalisation(rec_SS, norm), MIN_DEPTH)
        if mask_SS.any():
            per_frame.append(compute_metrics(pred_SS, depth_SS, mask_SS))
    if not per_frame:
        raise DataError("tokenizer: no scored frame has valid depth pixels")
    return {k: float(np.mean([m[k] for m in per_frame])) for k in per_frame[0]} | {
        "frames": float(len(per_frame))
    }


def write_tokenizer_metrics(
    out_dir: str | Path, metrics: dict[str, Any], cfg: TokenizerConfig
) -> Path:
    """``tokenizer_metrics.json`` (DVC metrics file) beside the weights."""
    path = Path(out_dir) / "tokenizer_metrics.json"
    write_text_atomic(path, json.dumps({**metrics, "config": to_dict(cfg)}, indent=2) + "\n")
    return path


def run_tokenizer(cfg: TokenizerConfig) -> dict[str, Any]:
    """The tokenizer stage: import or train, score the reconstruction, save weights + metrics."""
    from depthcore.checkpoint import load_official_vae, save_vae
    from depthcore.data.shards import ShardDataset
    from depthcore.models import VQVAE, resolve_config
    from depthcore.training.distributed import resolve_device

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
    recon = reconstruction_metrics(
        vae,
        ShardDataset(cfg.data_dir, cfg.eval_split),
        model_cfg.image_size,
        space,
        max_frames=cfg.eval_frames,
        device=device,
    )
    metrics.update({f"recon_{k}": v for k, v in recon.items()})
    out_dir = Path(cfg.out_dir)
    save_vae(out_dir / "vae.safetensors", vae.cpu(), meta={"space": space, **metrics})
    write_tokenizer_metrics(out_dir, metrics, cfg)
    log.info(
        "tokenizer (%s): reconstruction AbsRel %.4f on %d %s frames",
        metrics["source"],
        recon["abs_rel"],
        int(recon["frames"]),
        cfg.eval_split,
    )
    return metrics
