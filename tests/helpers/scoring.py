"""Our pyfunc as MLflow's scoring server holds it, and requests through MLflow's own
scoring function (in-process: the real parsing, validation and status codes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from depthcore.models.model_dir import CHECKPOINT_ARTIFACT
from depthcore.tracking.pyfunc import make_python_model


def served_model(checkpoint: Path, folder: Path) -> Any:
    """Our pyfunc saved as an MLflow model folder under ``folder`` and loaded back."""
    import mlflow.pyfunc

    path = folder / "model"
    mlflow.pyfunc.save_model(
        path, python_model=make_python_model(), pip_requirements=[],
        artifacts={CHECKPOINT_ARTIFACT: str(checkpoint)},
    )  # fmt: skip
    return mlflow.pyfunc.load_model(str(path))


def call(served: Any, body: str) -> tuple[int, str]:
    """(HTTP status, body or message) of ``POST /invocations`` with JSON ``body``."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import invocations

    try:
        resp = invocations(body, "application/json", served, None)
    except MlflowException as exc:
        return exc.get_http_status_code(), exc.message
    return resp.status, resp.response
