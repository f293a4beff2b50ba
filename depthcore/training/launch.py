"""Launching one training of the comparison: pick its trainer, guard its checkpoints, run.

``ckpt/`` is ``persist: true`` in dvc.yaml, so ``dvc repro`` after a crash or a kill
resumes from the last checkpoint instead of starting over. A persisted folder also
outlives a change of params or inputs, whose checkpoints must not be resumed:
``ckpt/run_fingerprint.json`` records what the checkpoints were trained from (the
train section, the objective, the hashes of the tokenizer, ``init_var`` and
``init_pretrain`` (the pretrain stage's weights), the feature
caches' sizes and times), and checkpoints of another fingerprint are removed first.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from depthcore.config import to_dict
from depthcore.io import file_sha256, write_text_atomic
from depthcore.training.objectives import OBJECTIVES
from depthcore.training.regression import REGRESSION, build_regression_trainer
from depthcore.training.runner import build_trainer, run_training
from depthcore.training.train_config import TrainConfig

log = logging.getLogger(__name__)
FINGERPRINT = "run_fingerprint.json"

#: The trainer factory of each ``--objective``.
TRAINERS = {**{name: build_trainer for name in OBJECTIVES}, REGRESSION: build_regression_trainer}


def _sha256_or_missing(path: str) -> str:
    return file_sha256(path) if path and Path(path).is_file() else f"missing:{path}"


def run_fingerprint(cfg: TrainConfig, objective: str) -> dict[str, Any]:
    """What a run's checkpoints depend on; equal fingerprints may resume each other."""
    features = sorted(Path(cfg.features_dir).glob("*.h5"))
    return {
        "objective": objective,
        "train": to_dict(cfg),
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


def train_objective(cfg: TrainConfig, objective: str) -> dict[str, Any]:
    """The train stage: claim (or clear) the checkpoints, then train ``objective``."""
    if objective not in TRAINERS:
        raise ValueError(f"unknown objective {objective!r} (choose from {sorted(TRAINERS)})")
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and cfg.resume:  # ranks would race
        ckpt_dir = Path(cfg.out_dir) / objective / "ckpt"
        claim_checkpoints(ckpt_dir, run_fingerprint(cfg, objective))
    return run_training(cfg, objective, TRAINERS[objective])
