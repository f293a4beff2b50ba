"""One trainer for both objectives: same data, steps, optimiser and seed; only the loss differs.

Training reads the frozen-feature cache (:mod:`depthcore.data.features`), so the
VQ-VAE encoder never runs in the loop. The batch of every step is a pure
function of (seed, step, rank), the LR a pure function of the step, and the
checkpoint holds the weights, optimiser moments and RNG state: an interrupted
run resumed from its last checkpoint ends with the same weights as an
uninterrupted one. Under ``torchrun`` each rank takes its own slice of the
global batch and gradients are averaged (see :mod:`depthcore.training.distributed`).
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from depthcore.config import to_dict
from depthcore.data.domain import trained_on
from depthcore.data.features import FeatureDataset
from depthcore.errors import CheckpointError, DataError
from depthcore.io import atomic_path, write_text_atomic
from depthcore.models.ablation import prefix_variants
from depthcore.models.checkpoint import (
    load_model,
    save_model,
)
from depthcore.models.var import DepthVAR
from depthcore.run_logger import NullLogger, RunLogger, scale_metric_name
from depthcore.spaces import INPUT_FIT, rgb_to_model
from depthcore.training.batches import step_loader
from depthcore.training.distributed import (
    DistInfo,
    average_gradients,
    barrier,
    broadcast_parameters,
    globalise_batch_norms,
    max_divergence,
    mean_over_ranks,
    synced_state,
)
from depthcore.training.objectives import WARMUP_LOSS, Objective, objectives_of, token_loss
from depthcore.training.precision import (
    autocast_for,
    enable_tf32,
    prepare_transformer,
    resolve_precision,
)
from depthcore.training.schedule import lr_at
from depthcore.training.train_config import RESUME_KEYS, TrainConfig

log = logging.getLogger(__name__)

#: (prefix_BLC, features_BChw, rgb_B3HW or None): what an objective takes from a batch.
LossInputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def _param_groups(var: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices (linear/embedding weights) only, as VAR and GPT-2 do."""
    decay, no_decay = [], []
    for p in var.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    """Trains ``var`` on top of the frozen ``vae`` with objective ``objective``.

    Another model trains through the same loop, checkpoints and resume by overriding
    the model-specific hooks: :attr:`objectives`, :meth:`batch_loss`,
    :meth:`save_model` and :meth:`load_weights` (see
    :class:`depthcore.training.regression.RegressionTrainer`, which has no ``vae``).
    """

    #: The registry entries this trainer trains, by name (depthcore.training.objectives).
    objectives: Mapping[str, Objective] = objectives_of("transformer")
    #: The feature-cache fields :meth:`loss_inputs` reads (train and validation sets);
    #: a transformer with a pixel path also reads the frames (:meth:`fields_for`).
    fields: tuple[str, ...] = ("fD", "prefix")
    #: The names :meth:`finish` writes under ``out_dir``.
    model_file, metrics_file = "model.safetensors", "train_metrics.json"

    def __init__(
        self,
        vae: torch.nn.Module | None,
        var: torch.nn.Module,
        model_cfg: Any,
        cfg: TrainConfig,
        objective: str,
        train_set: FeatureDataset,
        val_set: FeatureDataset | None,
        out_dir: str | Path,
        logger: RunLogger | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        if objective not in self.objectives:
            raise ValueError(
                f"unknown objective {objective!r} (choose from {sorted(self.objectives)})"
            )
        self.cfg, self.objective, self.model_cfg = cfg, objective, model_cfg
        self.loss_fn: Callable[..., Any] = self.objectives[objective].bound(cfg)
        self.dist = dist_info or DistInfo()
        self.device = torch.device(self.dist.device)
        self.vae = None if vae is None else vae.to(self.device).eval().requires_grad_(False)
        self.var = var.to(self.device).train()
        if self.dist.distributed:  # e.g. the pixel path's BatchNorm: global-batch statistics
            globalise_batch_norms(self.var)
        enable_tf32(self.device)
        prepare_transformer(self.var, compile=cfg.compile, checkpointing=cfg.grad_checkpointing)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.autocast = autocast_for(self.precision, self.device)
        broadcast_parameters(synced_state(self.var), self.dist)
        self.train_set, self.val_set = train_set, val_set
        self.space = str(train_set.attrs.get("space", ""))
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "ckpt"
        self.logger = logger if (logger is not None and self.dist.is_main) else NullLogger()
        self.opt = torch.optim.AdamW(
            _param_groups(self.var, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas
        )
        self.step = 0
        self.loss_ema: float | None = None

    # -- one step -------------------------------------------------------------------------
    def lr(self, step: int) -> float:
        c = self.cfg
        return lr_at(
            step, base_lr=c.lr, kind=c.schedule, total_steps=c.steps,
            warmup_steps=c.warmup_steps, step_size=c.step_size, gamma=c.gamma, min_lr=c.min_lr,
        )  # fmt: skip

    @classmethod
    def fields_for(cls, var: DepthVAR) -> tuple[str, ...]:
        """The cache fields to load for ``var``: the frames only when it reads pixels
        (at 256 px they would be the largest field of every batch)."""
        if var.reads_pixels and "rgb" not in cls.fields:
            return (*cls.fields, "rgb")
        return cls.fields

    def loss_inputs(self, batch: dict[str, torch.Tensor]) -> LossInputs:
        """(prefix_BLC, f_BChw, rgb_B3HW) of a batch: the image prefix, the features to
        tokenise and the frames in [-1, 1] (None unless the model has a pixel path)."""
        prefix_BLC = batch["prefix_LC"].to(self.device, non_blocking=True)
        fD_BChw = batch["fD_Chw"].to(self.device, non_blocking=True)
        return prefix_BLC, fD_BChw, self.frames(batch)

    def frames(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The batch's frames as model input, for a transformer with a pixel path."""
        if not self.var.reads_pixels:
            return None
        return rgb_to_model(batch["rgb_3SS"].to(self.device, non_blocking=True))

    def batch_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss on one batch (with grad) and the scalars it logs besides."""
        prefix_BLC, fD_BChw, rgb_B3HW = self.loss_inputs(batch)
        loss_fn = WARMUP_LOSS if self.step < self.cfg.tf_warmup_steps else self.loss_fn
        out = loss_fn(self.vae, self.var, prefix_BLC, fD_BChw, rgb_B3HW=rgb_B3HW)
        loss = token_loss(out, self.vae, self.var, self.cfg)
        with torch.no_grad():
            acc = (out.logits_BLV.argmax(-1) == out.target_BL).float().mean().item()
        scalars = {"acc": acc}
        for pn, v in zip(self.var.patch_nums, out.per_scale_loss.tolist(), strict=True):
            scalars[scale_metric_name("loss", pn)] = v  # named as the figures label scales
        return loss, scalars

    def val_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Validation losses of one batch by metric name; ``val_loss`` is the objective's.

        The transformer adds the real/zeroed/other-image prefix ablation
        (``val_loss_<variant>_prefix``): a model that ignores the image scores the same.
        """
        prefix_BLC, fD_BChw, rgb_B3HW = self.loss_inputs(batch)
        losses = {
            f"val_loss_{name}_prefix": float(
                self.loss_fn(self.vae, self.var, v_BLC, fD_BChw, rgb_B3HW=v_rgb).loss
            )
            for name, (v_BLC, v_rgb) in prefix_variants(prefix_BLC, rgb_B3HW).items()
        }
        return {"val_loss": losses["val_loss_real_prefix"], **losses}

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Forward, backward, all-reduce, clip, AdamW step; returns the logged scalars."""
        lr = self.lr(self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        with self.autocast():
            loss, extra = self.batch_loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.objective} loss is {loss.item()} at {self.step}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.var.parameters() if p.requires_grad]
        average_gradients(params, self.dist)
        grad_norm = 0.0
        if self.cfg.grad_clip > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        self.opt.step()
        self.step += 1
        return {"loss": float(loss.item()), "lr": lr, "grad_norm": grad_norm, **extra}

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights (those go to model.safetensors), weights_only-loadable."""
        return {
            "step": self.step,
            "objective": self.objective,
            "optimizer": self.opt.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state()
            if self.device.type == "cuda"
            else torch.empty(0),
            "loss_ema": -1.0 if self.loss_ema is None else self.loss_ema,
            "config": json.dumps(self._resume_config()),
        }

    def _resume_config(self) -> dict[str, Any]:
        """The :data:`RESUME_KEYS` part of the config, recorded in and checked against state."""
        cfg = to_dict(self.cfg)
        return {k: cfg[k] for k in RESUME_KEYS}

    def load_state_dict(self, state: dict[str, Any], where: str = "checkpoint") -> None:
        """Restore optimiser, step and RNG; refuse a checkpoint of another run's config."""
        saved = json.loads(state["config"])
        mine = self._resume_config()
        diff = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
        if diff or state["objective"] != self.objective:
            raise CheckpointError(
                f"{where}: written by a run with another config/objective; differing (saved, "
                f"now): {diff or {'objective': (state['objective'], self.objective)}}"
            )
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and state["rng_cuda"].numel():
            torch.cuda.set_rng_state(state["rng_cuda"])
        self.step = int(state["step"])
        self.loss_ema = None if state["loss_ema"] < 0 else float(state["loss_ema"])

    def meta(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "space": self.space,
            "image_size": int(self.model_cfg.image_size),
            "input_fit": INPUT_FIT,
            "steps": self.step,
            "trained_on": trained_on(self.train_set.keys),  # its sources, for predict's note
        }

    def save_model(self, path: Path) -> None:
        """Weights + model config + meta as one safetensors file (atomic)."""
        save_model(path, self.vae, self.var, self.model_cfg, self.meta())

    def save_checkpoint(self) -> Path:
        """``ckpt/step_NNNNNNN/{model.safetensors,state.pt}``, written atomically; prunes old."""
        final = self.ckpt_dir / f"step_{self.step:07d}"
        if self.dist.is_main:
            with atomic_path(final) as tmp:
                tmp.mkdir(parents=True)
                self.save_model(tmp / "model.safetensors")
                torch.save(self.state_dict(), tmp / "state.pt")
            for old in self.checkpoints()[: -max(1, self.cfg.keep_ckpts)]:
                shutil.rmtree(old)
        barrier(self.dist)
        return final

    def checkpoints(self) -> list[Path]:
        if not self.ckpt_dir.is_dir():
            return []
        done = [p for p in self.ckpt_dir.glob("step_*") if (p / "state.pt").is_file()]
        return sorted(done, key=lambda p: int(p.name.split("_")[1]))

    def resume(self) -> bool:
        """Load the newest checkpoint if there is one; returns whether it did."""
        ckpts = self.checkpoints()
        if not ckpts:
            return False
        path = ckpts[-1]
        self.load_weights(path / "model.safetensors")
        try:
            state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as exc:
            raise CheckpointError(f"{path / 'state.pt'}: unreadable trainer state: {exc}") from exc
        self.load_state_dict(state, where=str(path / "state.pt"))
        log.info("resumed %s from %s (step %d)", self.objective, path, self.step)
        return True

    def load_weights(self, path: Path) -> None:
        """Load the trained weights of a :meth:`save_model` file into the model (on resume)."""
        loaded = load_model(path, map_location=str(self.device), expected=self.model_cfg)
        self.var.load_state_dict(loaded.var.state_dict())

    # -- the loop -------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean objective loss on the validation frames (rank 0; others get None).

        The loss is the training signal on unseen frames: it tells over- from
        under-fitting without importing any metric (the per-scale AbsRel curve is
        the ``scales`` stage's, so that editing a metric never retrains a model).
        """
        if self.val_set is None or not self.dist.is_main:
            return None
        n = (
            len(self.val_set)
            if self.cfg.val_frames <= 0
            else min(len(self.val_set), self.cfg.val_frames)
        )
        if n == 0:
            raise DataError(f"{self.val_set.path}: no validation frames")
        self.var.eval()
        totals: dict[str, float] = {}
        try:
            for start in range(0, n, self.cfg.val_batch_size):
                batch = self.val_set.get_batch(
                    list(range(start, min(n, start + self.cfg.val_batch_size)))
                )
                size = len(next(iter(batch.values())))
                for name, value in self.val_losses(batch).items():
                    totals[name] = totals.get(name, 0.0) + value * size
        finally:
            self.var.train()
        metrics = {name: total / n for name, total in totals.items()}
        self.logger.log_metrics(metrics, self.step)
        return metrics["val_loss"]

    def fit(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train to ``cfg.steps`` (or stop early at ``stop_at``, e.g. for a time-boxed job)."""
        cfg, end = self.cfg, self.cfg.steps if stop_at is None else min(stop_at, self.cfg.steps)
        if cfg.resume:
            self.resume()
        if self.step == 0:
            torch.manual_seed(cfg.seed + self.dist.rank)
        loader = step_loader(
            self.train_set, batch_size=cfg.batch_size, seed=cfg.seed, start_step=self.step,
            end_step=end, rank=self.dist.rank, world_size=self.dist.world_size,
            num_workers=cfg.num_workers,
        )  # fmt: skip
        bar = tqdm(total=end, initial=self.step, disable=not self.dist.is_main, desc=self.objective)
        t_train, steps_run, last = 0.0, 0, {}
        for batch in loader:
            t0 = time.perf_counter()
            last = self.train_step(batch)
            t_train += time.perf_counter() - t0
            steps_run += 1
            last["loss"] = mean_over_ranks(last["loss"], self.dist)
            ema = self.loss_ema
            self.loss_ema = last["loss"] if ema is None else 0.95 * ema + 0.05 * last["loss"]
            bar.update(1)
            bar.set_postfix(loss=f"{self.loss_ema:.4f}", lr=f"{last['lr']:.2e}")
            if cfg.log_every > 0 and (self.step % cfg.log_every == 0 or self.step == end):
                self.logger.log_metrics(last, self.step)
            if cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0 and self.step < end:
                self.save_checkpoint()
            if cfg.val_every > 0 and self.step % cfg.val_every == 0 and self.step < cfg.steps:
                self.validate()
        bar.close()
        if self.step >= cfg.steps or stop_at is not None:
            self.save_checkpoint()
        ms = 1000.0 * t_train / steps_run if steps_run else float("nan")
        return {"step": self.step, "last": last, "ms_per_step": ms, "loss_ema": self.loss_ema}

    def finish(self, fit_result: dict[str, Any]) -> dict[str, Any]:
        """Final validation loss and the declared outputs: model and metrics JSON."""
        divergence = max_divergence(synced_state(self.var), self.dist)
        if divergence > 0:
            raise RuntimeError(f"DDP ranks ended with different weights (max |diff| {divergence})")
        val_loss = self.validate()
        if not self.dist.is_main:
            return {}
        self.save_model(self.out_dir / self.model_file)
        metrics = {
            "objective": self.objective,
            "space": self.space,
            "steps": self.step,
            "world_size": self.dist.world_size,
            "ranks_max_weight_diff": divergence,
            "loss_final": fit_result["last"].get("loss"),
            "loss_ema": self.loss_ema,
            "ms_per_step": fit_result["ms_per_step"],
            "precision": self.precision,  # what train.precision (e.g. auto) resolved to here
            "val_loss": val_loss,
        }
        write_text_atomic(self.out_dir / self.metrics_file, json.dumps(metrics, indent=2) + "\n")
        return metrics
