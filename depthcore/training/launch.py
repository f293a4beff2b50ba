"""Launching one training of the comparison: pick its trainer, guard its checkpoints, run.

``ckpt/`` is ``persist: true`` in dvc.yaml, so ``dvc repro`` after a crash or a kill
resumes from the last checkpoint instead of starting over. A persisted folder also
outlives a change of params or inputs, whose checkpoints must not be resumed:
``ckpt/run_fingerprint.json`` records what the checkpoints were trained from, and
checkpoints of another fingerprint are removed first (:func:`run_fingerprint` says what
is in it, and why only that).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from depthcore.config import TrackingConfig, fields_with_effect, to_dict
from depthcore.io import file_sha256, write_text_atomic
from depthcore.training.objectives import REGISTRY, objective
from depthcore.training.regression import build_regression_trainer
from depthcore.training.runner import TrainerFactory, build_trainer, run_training
from depthcore.training.train_config import TrainConfig

log = logging.getLogger(__name__)
FINGERPRINT = "run_fingerprint.json"

#: The factory of each trainer kind of the registry (depthcore.training.objectives).
FACTORIES: dict[str, TrainerFactory] = {
    "transformer": build_trainer,
    "regression": build_regression_trainer,
}
#: The trainer factory of each ``--objective`` (every registered objective).
TRAINERS: dict[str, TrainerFactory] = {
    name: FACTORIES[entry.trainer] for name, entry in REGISTRY.items()
}
#: Fields only one trainer kind reads: left out of the other kinds' fingerprints, so that
#: editing the baseline's step count does not throw the transformers' checkpoints away.
KIND_ONLY = {"regression_steps": "regression"}


def _sha256_or_missing(path: str) -> str:
    return file_sha256(path) if path and Path(path).is_file() else f"missing:{path}"


def weights_config(cfg: TrainConfig, trainer_kind: str) -> dict[str, Any]:
    """The fields of ``cfg`` that can change the weights a ``trainer_kind`` training ends with."""
    values = to_dict(cfg)
    return {
        name: values[name]
        for name in fields_with_effect(type(cfg), "weights")
        if KIND_ONLY.get(name, trainer_kind) == trainer_kind
    }


def run_fingerprint(
    cfg: TrainConfig, objective: str, trainer_kind: str = "transformer"
) -> dict[str, Any]:
    """What a run's weights depend on; equal fingerprints may resume each other.

    The rule: a field is in it when editing it can change the weights the training ends
    with, i.e. its effect is ``"weights"`` (:data:`depthcore.config.EFFECTS`): the model,
    data, optimiser, schedule, objective settings, seed, and the device, precision and
    threads (which change the float arithmetic). Left out: what only changes the stage's
    other outputs or nothing (the output folder, the validation loss's frames and
    interval, checkpoint and log intervals, ``resume``, DataLoader workers) and the
    ``tracking`` section, so that editing them resumes the final checkpoint instead of
    training again; a resumed run ends with the same weights as an uninterrupted one.
    The inputs enter by content: the tokenizer's, ``init_var``'s and ``init_pretrain``'s
    hashes and the feature caches' sizes and times. ``trainer_kind``: the registry's
    (:data:`KIND_ONLY`).
    """
    features = sorted(Path(cfg.features_dir).glob("*.h5"))
    return {
        "objective": objective,
        "config": weights_config(cfg, trainer_kind),
        "tokenizer_sha256": _sha256_or_missing(cfg.tokenizer),
        "init_var_sha256": _sha256_or_missing(cfg.init_var) if cfg.init_var else "",
        "init_pretrain_sha256": (
            _sha256_or_missing(cfg.init_pretrain) if cfg.init_pretrain else ""
        ),
        "features": {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in features},
    }


def _read_record(path: Path) -> object:
    """The recorded fingerprint, or None when there is none or it is unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def claim_checkpoints(ckpt_dir: Path, fingerprint: dict[str, Any]) -> bool:
    """Keep ``ckpt_dir`` if it was written for ``fingerprint``, else remove it; then record
    ``fingerprint`` there. Returns whether earlier checkpoints were kept."""
    record = ckpt_dir / FINGERPRINT
    kept = ckpt_dir.is_dir()
    if kept and _read_record(record) != fingerprint:
        log.warning("%s: checkpoints of another params/inputs version; starting fresh", ckpt_dir)
        shutil.rmtree(ckpt_dir)
        kept = False
    write_text_atomic(record, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
    return kept


def train_objective(
    cfg: TrainConfig, name: str, tracking: TrackingConfig | None = None
) -> dict[str, Any]:
    """The train stage: claim (or clear) the checkpoints, then train objective ``name``,
    logged to ``tracking`` (None: not logged)."""
    entry = objective(name)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and cfg.resume:  # ranks would race
        ckpt_dir = Path(cfg.out_dir) / name / "ckpt"
        claim_checkpoints(ckpt_dir, run_fingerprint(cfg, name, entry.trainer))
    return run_training(cfg, name, FACTORIES[entry.trainer], tracking=tracking)
