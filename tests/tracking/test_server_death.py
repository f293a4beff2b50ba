"""The MLflow server dies mid-training: the model is not lost, and a rerun finishes it.

A real ``mlflow server`` on loopback; the train stage logs to it every step; the server
is killed once the first checkpoint is on disk. The stage must fail in one line naming
the tracking URI (no traceback, no hang), keep its checkpoint, and - once the server is
back - a rerun resumes from that checkpoint, continues the same MLflow run and finishes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from depthcore.models.checkpoint import load_model
from depthcore.training.train_config import TrainConfig
from tests.helpers.net import free_port, serving

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _mlflow_server(db: Path, artifacts: Path, port: int, log: Path):  # noqa: ANN202
    """A real ``mlflow server`` on loopback for the block (the screenshot bench's runner)."""
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
        "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return serving(cmd, f"http://127.0.0.1:{port}/health", log, env)


def test_server_death_loses_nothing_and_a_rerun_finishes(
    feature_setup: Path, tmp_path: Path
) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    cfg = TrainConfig(
        tokenizer=str(feature_setup / "vae.safetensors"),
        features_dir=str(feature_setup / "features"), out_dir=str(tmp_path / "models"),
        steps=400, batch_size=2, ckpt_every=3, val_frames=2, val_batch_size=2, log_every=1,
        num_threads=1,
    )  # fmt: skip
    tracking = {"backend": "mlflow", "uri": uri, "experiment": "server-death"}
    params = tmp_path / "params.yaml"
    train = json.loads(json.dumps(dataclasses.asdict(cfg)))
    params.write_text(yaml.safe_dump({"train": train, "tracking": tracking}))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")},
        "OMP_NUM_THREADS": "1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    }  # fmt: skip
    cmd = [sys.executable, "-m", "stages.train", "--params", str(params), "--objective", "var_tf"]
    out = tmp_path / "models" / "var_tf"
    with _mlflow_server(tmp_path / "mlflow.db", tmp_path / "art", port, tmp_path / "s1.log"):
        train = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 240
        while not list((out / "ckpt").glob("step_*/state.pt")):
            assert train.poll() is None, train.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
    # the block's end stopped the server: the training logs into a dead tracking URI now
    started = time.monotonic()
    _, err = train.communicate(timeout=180)
    assert time.monotonic() - started < 120  # fails fast, no 250 s of MLflow retries
    assert train.returncode == 1, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and uri in errors[0], err[-3000:]
    assert "Traceback" not in err
    kept = sorted((out / "ckpt").glob("step_*"))
    assert kept, "the checkpoint written before the failure must survive"
    first_run = json.loads((out / "mlflow_run.json").read_text())["run_id"]

    with _mlflow_server(tmp_path / "mlflow.db", tmp_path / "art", port, tmp_path / "s2.log"):
        rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=600)  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "resumed var_tf" in rerun.stderr
        assert load_model(out / "model.safetensors").meta["steps"] == 400
        run = json.loads((out / "mlflow_run.json").read_text())
        assert run["run_id"] == first_run  # the same MLflow run, continued
        from mlflow.tracking import MlflowClient

        info = MlflowClient(uri).get_run(first_run).info
        assert info.status == "FINISHED"
