"""Everything that talks to MLflow; mlflow itself is imported inside functions only."""

from depthcore.tracking.logger import (
    DEFAULT_TRACKING_URI,
    CsvLogger,
    MlflowLogger,
    NullLogger,
    RunLogger,
    TrackingError,
    make_logger,
    open_run_logger,
    resolve_tracking_uri,
)

__all__ = [
    "DEFAULT_TRACKING_URI",
    "CsvLogger",
    "MlflowLogger",
    "NullLogger",
    "RunLogger",
    "TrackingError",
    "make_logger",
    "open_run_logger",
    "resolve_tracking_uri",
]
