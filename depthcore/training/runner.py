"""Building a trainer and running one training end to end (the train and pretrain stages).

Apart from the training loop (:mod:`depthcore.training.trainer`): this is where the
process meets the outside (distributed init, threads, the run logger, the model's
initial weights and the feature caches), so the loop itself stays testable on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from depthcore.config import TrackingConfig, to_dict
from depthcore.data.features import FeatureDataset
from depthcore.io import file_sha256
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_official_var, load_pretrained_var, load_vae
from depthcore.run_inputs import log_training_inputs
from depthcore.run_logger import NullLogger, RunLogger, open_run_logger
from depthcore.training.distributed import DistInfo, init_distributed, shutdown_distributed
from depthcore.training.train_config import TrainConfig
from depthcore.training.trainer import Trainer

#: Builds the trainer of one objective: (cfg, objective, out_dir, logger, dist) -> Trainer.
TrainerFactory = Callable[[TrainConfig, str, Path, RunLogger, DistInfo], Trainer]


def build_trainer(
    cfg: TrainConfig,
    objective: str,
    out_dir: Path,
    logger: RunLogger,
    info: DistInfo,
    trainer_cls: type[Trainer] = Trainer,
) -> Trainer:
    """The transformer's trainer: DepthVAR over the frozen tokenizer, on the feature cache.

    Starts from ``init_var`` (official weights), then from ``init_pretrain`` (the pretrain
    stage's weights) when given; ``trainer_cls`` picks the objective family (pretraining).
    """
    model_cfg = resolve_config(cfg.model)
    torch.manual_seed(cfg.seed)
    _, var = build_model(model_cfg)
    if cfg.init_var:
        var = load_official_var(cfg.init_var, model_cfg.var, model_cfg.vae)
    sha = file_sha256(cfg.tokenizer)
    if cfg.init_pretrain:
        load_pretrained_var(cfg.init_pretrain, var, model_cfg, tokenizer_sha256=sha)
    vae = load_vae(cfg.tokenizer, expected=model_cfg.vae).vae
    features = Path(cfg.features_dir)
    fields = trainer_cls.fields_for(var)
    train_set = FeatureDataset(features / f"{cfg.train_split}.h5", fields=fields)
    val_set = FeatureDataset(features / f"{cfg.val_split}.h5", fields=fields)
    space = str(train_set.attrs.get("space"))
    for ds in (train_set, val_set):
        ds.check_compatible(vae, model_cfg.image_size, space, tokenizer_sha256=sha)
    return trainer_cls(
        vae, var, model_cfg, cfg, objective, train_set, val_set, out_dir, logger, info
    )


def run_training(
    cfg: TrainConfig,
    objective: str,
    build: TrainerFactory = build_trainer,
    out_dir: Path | None = None,
    stage: str = "train",
    tracking: TrackingConfig | None = None,
) -> dict[str, Any]:
    """The train stage: logger, the trainer ``build`` makes, fit, outputs (any world size).

    Writes under ``out_dir`` (default ``<cfg.out_dir>/<objective>``); ``stage`` names the
    MLflow run (``<stage>-<objective>``) and its stage tag (the pretrain stage reuses this).
    ``tracking`` is where the run is logged (the params' ``tracking`` section; None: not
    logged, for library callers).
    """
    tracking = tracking or TrackingConfig(backend="none")
    info = init_distributed(cfg.device)
    logger: RunLogger = NullLogger()
    try:
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        out_dir = Path(cfg.out_dir) / objective if out_dir is None else Path(out_dir)
        if info.is_main:
            logger = open_run_logger(
                tracking.backend, out_dir=out_dir, tracking_uri=tracking.uri,
                experiment=tracking.experiment, run_name=f"{stage}-{objective}",
                # continue the run only when there is a checkpoint to continue from: a
                # fingerprint change empties ckpt/ (launch.claim_checkpoints) and starts afresh
                resume=cfg.resume and any((out_dir / "ckpt").glob("step_*/state.pt")),
                stage=stage, objective=objective,
            )  # fmt: skip
        trainer = build(cfg, objective, out_dir, logger, info)
        logger.log_params(
            {"objective": objective, "world_size": info.world_size, "space": trainer.space,
             "train_frames": len(trainer.train_set), "precision_used": trainer.precision,
             **to_dict(trainer.cfg)}
        )  # fmt: skip
        # the DVC hashes of what it reads, as the run's MLflow datasets
        log_training_inputs(
            logger, (cfg.features_dir, cfg.tokenizer, cfg.init_pretrain, cfg.init_var)
        )
        metrics = trainer.finish(trainer.fit())
        logger.close("FINISHED")
        return metrics
    except BaseException:
        logger.close("FAILED")
        raise
    finally:
        shutdown_distributed()
