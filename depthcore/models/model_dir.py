"""Where the weights sit inside a logged MLflow model folder, and loading either kind.

The export, the predictor and the MLflow pyfunc all open the same folder layout and the
same two checkpoint kinds (a DepthART pair, the regression baseline); one reader keeps
them from disagreeing about either (and keeps the export below predict).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from depthcore.errors import CheckpointError
from depthcore.models.checkpoint import checkpoint_kind, load_model
from depthcore.models.regression import REGRESSION_KIND, load_regression

CHECKPOINT_ARTIFACT = "checkpoint"  # the logged pyfunc's artifact holding the weights


def checkpoint_in_model_dir(model_dir: str | Path) -> Path:
    """The checkpoint file inside a downloaded (or local) MLflow model folder."""
    model_dir = Path(model_dir)
    mlmodel = model_dir / "MLmodel"
    if not mlmodel.is_file():
        raise CheckpointError(f"{model_dir}: not an MLflow model folder (no MLmodel file)")
    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())
        raise CheckpointError(f"{mlmodel}: not valid YAML: {reason}") from exc
    if not isinstance(spec, dict):
        raise CheckpointError(f"{mlmodel}: expected a YAML mapping")
    entry = spec
    for key in ("flavors", "python_function", "artifacts", CHECKPOINT_ARTIFACT):
        entry = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise CheckpointError(
            f"{mlmodel}: no '{CHECKPOINT_ARTIFACT}' artifact (not a depthart model)"
        )
    checkpoint = model_dir / entry["path"]
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: checkpoint artifact listed in {mlmodel} is missing")
    return checkpoint


@dataclass(frozen=True)
class DepthCheckpoint:
    """A loaded checkpoint of either kind: ``vae`` is None for the one-pass regression
    baseline, whose network is ``net`` (the transformer otherwise)."""

    path: Path
    vae: nn.Module | None
    net: nn.Module
    config: Any
    meta: dict[str, Any]


def load_depth_checkpoint(model: str | Path) -> DepthCheckpoint:
    """A checkpoint file, or the one inside a local MLflow model folder, on the CPU;
    refused in one line when missing or when its metadata lacks the prediction space."""
    path = Path(model)
    if path.is_dir():
        path = checkpoint_in_model_dir(path)
    elif not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (a checkpoint file or model folder)")
    if checkpoint_kind(path) == REGRESSION_KIND:
        baseline = load_regression(path, map_location="cpu")
        vae, net, config, meta = None, baseline.net, baseline.config, baseline.meta
    else:
        pair = load_model(path, map_location="cpu")
        vae, net, config, meta = pair.vae, pair.var, pair.config, pair.meta
    if "space" not in (meta or {}):
        raise CheckpointError(f"{path}: checkpoint metadata has no 'space'")
    return DepthCheckpoint(path, vae, net, config, dict(meta))
