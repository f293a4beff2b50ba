"""Shared test set-up: deterministic, offline, quiet, and never touching the user's home."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

#: Fixtures shared across folders live in tests/helpers and are registered here, so a test
#: never imports from a conftest module.
pytest_plugins = [
    "tests.helpers.checkpoints",
    "tests.helpers.frames",
    "tests.helpers.hypersim_files",
    "tests.helpers.prefect_repo",
    "tests.helpers.servers",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"

# Telemetry and analytics off; every service talks to loopback only.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tests run single-threaded: the tiny models' ops gain nothing from intra-op threads,
    and on a shared 2-core machine OpenMP barriers make two threads up to 10x slower
    (measured). A test that needs threads sets them itself; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Stage entry points call ``logging.basicConfig(force=True)`` with pytest's captured
    stderr; a later test would log into that closed stream ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _isolate_mlflow_uris() -> Iterator[None]:
    """MLflow keeps its tracking/registry URIs in globals and mirrors them into the
    environment; restore both after every test so no test inherits another's server."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in keys}
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def torch_device() -> str:
    """The device tests run on: ``TORCH_DEVICE`` or CPU."""
    return os.environ.get("TORCH_DEVICE", "cpu")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def pytest_configure(config: pytest.Config) -> None:
    """Share the cores among pytest-xdist's workers: module fixtures (which run before
    ``_one_torch_thread``) and the subprocesses a test starts (pipeline stages, servers) take
    their share, not every core each. On 2 cores, two workers whose threads each wanted both
    cores made a fixture 3.3x slower beside the end-to-end `dvc repro` (73 s alone, 240 s)."""
    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = max(1, min(2, os.cpu_count() or 1) // workers)
    torch.set_num_threads(threads)
    if workers > 1:  # a subprocess's torch takes OMP_NUM_THREADS, else every core
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
