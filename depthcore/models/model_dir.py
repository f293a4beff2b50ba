"""Where the weights sit inside a logged MLflow model folder.

The export, the predictor and the MLflow pyfunc all open the same folder layout; one
reader keeps them from disagreeing about it (and keeps the export below predict).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from depthcore.errors import CheckpointError

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
