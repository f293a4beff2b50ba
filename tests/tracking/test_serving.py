"""The pyfunc through a real MLflow registry (temp sqlite) and `mlflow models serve` over HTTP."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from depthcore.cli import main
from depthcore.tracking.pyfunc import REGISTERED_MODEL_NAME, log_pyfunc_model
from tests.helpers.checkpoints import random_rgb

pytestmark = pytest.mark.integration
CHAMPION = f"models:/{REGISTERED_MODEL_NAME}@champion"


@pytest.fixture(scope="module")
def registry(tiny_checkpoint, tmp_path_factory) -> Iterator[str]:
    """A temp sqlite registry whose `depthart@champion` is the tiny checkpoint's pyfunc."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.create_experiment("predict-tests", artifact_location=(root / "art").as_uri())
        with mlflow.start_run(experiment_id=exp):
            info = log_pyfunc_model(tiny_checkpoint, "model")
        version = mlflow.register_model(info.model_uri, REGISTERED_MODEL_NAME).version
        mlflow.MlflowClient().set_registered_model_alias(REGISTERED_MODEL_NAME, "champion", version)
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def _b64_png(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_pyfunc_loads_and_predicts(registry) -> None:
    import mlflow

    model = mlflow.pyfunc.load_model(CHAMPION)
    frame = pd.DataFrame({"image": [_b64_png(random_rgb(10, 14)), _b64_png(random_rgb(6, 6))]})
    depths = model.predict(frame)
    assert [np.asarray(d).shape for d in depths] == [(10, 14), (6, 6)]
    assert all(np.isfinite(np.asarray(d)).all() for d in depths)


def test_cli_default_is_the_registry_champion(registry, tmp_path, capsys, monkeypatch) -> None:
    Image.fromarray(random_rgb(12, 9)).save(tmp_path / "a.png")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry)
    code = main(["predict", "-q", str(tmp_path / "a.png"), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert np.load(tmp_path / "out" / "a_depth.npy").shape == (12, 9)
    code = main(["predict", "-q", str(tmp_path / "a.png"), "-o", str(tmp_path / "o2"), "--model",
                 f"models:/{REGISTERED_MODEL_NAME}@nobody"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and f"models:/{REGISTERED_MODEL_NAME}@nobody: cannot resolve model" in err
    assert not (tmp_path / "o2").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ping(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow models serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise AssertionError(f"no /ping answer from {url} within {timeout_s} s")


def test_serve_champion_over_http(registry, tmp_path) -> None:
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, MLFLOW_TRACKING_URI=registry, OMP_NUM_THREADS="1")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", CHAMPION, "--env-manager", "local",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ping(url, proc, timeout_s=180)
        rgb = random_rgb(9, 13)
        bodies = [
            {"dataframe_split": {"columns": ["image"], "data": [[_b64_png(rgb)]]}},
            {"dataframe_records": [{"image": rgb.tolist()}]},
            {"inputs": [rgb.tolist()]},
        ]
        answers = []
        for body in bodies:
            request = urllib.request.Request(
                f"{url}/invocations",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=120) as resp:
                answer = json.loads(resp.read())
            (depth,) = answer["predictions"]
            depth_HW = np.asarray(depth, dtype=np.float64)
            assert depth_HW.shape == (9, 13) and np.isfinite(depth_HW).all(), list(body)
            answers.append(depth_HW)
        # the same image in three request forms gives the same (seeded) depth
        np.testing.assert_allclose(answers[1], answers[0], rtol=1e-6)
        np.testing.assert_allclose(answers[2], answers[0], rtol=1e-6)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
