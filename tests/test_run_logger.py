"""Run loggers against a real MLflow sqlite store, a CSV file, and an unreachable server."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from depthcore.run_logger import CsvLogger, MlflowLogger, TrackingError, make_logger


def test_run_logger_and_tracking_do_not_import_mlflow_at_import() -> None:
    import subprocess

    code = "import depthcore.run_logger, depthcore.tracking, sys; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mlflow_logger_round_trip(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = MlflowLogger(uri, "unit", run_name="r1")
    log.log_params({"lr": 1e-3, "optim": {"betas": [0.9, 0.99]}})
    for step in range(5):
        log.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    png = tmp_path / "fig.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    log.log_artifact(png, "figures")
    log.close()

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(log.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.betas"] == "[0.9, 0.99]"
    history = client.get_metric_history(log.run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert history[-1].value == pytest.approx(0.2)
    assert [a.path for a in client.list_artifacts(log.run_id, "figures")] == ["figures/fig.png"]
    assert list((tmp_path / "mlartifacts").rglob("fig.png")), "artifacts not beside the db"

    again = MlflowLogger(uri, "unit", run_id=log.run_id)
    again.log_params({"lr": 1e-3, "steps": 10, "optim": {"betas": [0.9, 0.95]}})
    again.log_metrics({"loss": 0.1}, step=5)
    again.close()
    assert len(client.get_metric_history(log.run_id, "loss")) == 6
    run = client.get_run(log.run_id)
    assert run.data.params["steps"] == "10" and run.data.params["optim.betas"] == "[0.9, 0.99]"
    assert run.data.tags["resumed.optim.betas"] == "[0.9, 0.95]"
    assert "resumed.lr" not in run.data.tags
    assert again.run_record()["run_id"] == log.run_id


def test_unreachable_server_fails_fast_naming_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    uri = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match=f"127.0.0.1:{port}"):
        MlflowLogger(uri, "unit")
    assert time.monotonic() - t0 < 30


def test_csv_logger_and_factory(tmp_path: Path) -> None:
    log = make_logger("csv", out_dir=tmp_path)
    assert isinstance(log, CsvLogger)
    log.log_params({"a": 1})
    log.log_metrics({"loss": 0.5, "abs_rel": 0.1}, step=3)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["step,name,value", "3,loss,0.5", "3,abs_rel,0.1"]
    assert make_logger("none", out_dir=tmp_path).run_id is None
    with pytest.raises(ValueError, match="unknown tracking kind 'wandb'"):
        make_logger("wandb", out_dir=tmp_path)


def test_stage_runs_are_tagged_resumed_and_orphans_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed training's run is marked KILLED at the next start; a resume continues it."""
    import subprocess

    from mlflow.tracking import MlflowClient

    from depthcore.run_logger import open_run_logger, read_run_id

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-lr-sweep")
    out = tmp_path / "models" / "depthart"
    kw = {"out_dir": out, "experiment": "unit", "objective": "depthart"}
    first = open_run_logger("mlflow", run_name="train-depthart", **kw)
    client = MlflowClient(tracking_uri=uri)
    tags = client.get_run(first.run_id).data.tags
    assert tags["stage"] == "train" and tags["objective"] == "depthart"
    assert tags["dvc_experiment"] == "exp-lr-sweep" and len(tags["git_commit"]) >= 7
    assert read_run_id(out / "mlflow_run.json") == first.run_id

    # resumed: the same run continues, RUNNING again
    first.close("FAILED")
    again = open_run_logger("mlflow", resume=True, **kw)
    assert again.run_id == first.run_id
    assert client.get_run(first.run_id).info.status == "RUNNING"

    # killed: the process that owned the run is gone (pid of an exited child)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    client.set_tag(first.run_id, "pid", dead)
    fresh = open_run_logger("mlflow", resume=False, **kw)
    assert fresh.run_id != first.run_id
    assert client.get_run(first.run_id).info.status == "KILLED"
    assert client.get_run(fresh.run_id).data.tags["closed_orphans"] == first.run_id
    # a live run (this process) of the same stage is left alone
    other = open_run_logger("mlflow", **{**kw, "out_dir": tmp_path / "other"})
    assert client.get_run(fresh.run_id).info.status == "RUNNING"
    running = client.search_runs([fresh.experiment_id], "attributes.status = 'RUNNING'")
    assert {r.info.run_id for r in running} == {fresh.run_id, other.run_id}
