"""A registry round without training: metrics payloads, runs and a constant pyfunc."""

from __future__ import annotations

from pathlib import Path

from depthcore.tracking.registry import NewModel

BENCHES = ("nyu", "ibims", "tum", "eth3d")


def metrics_payload(abs_rel: float, delta1: float) -> dict:
    """A metrics.json payload with both alignments on all four benchmarks."""
    per = {"abs_rel": abs_rel, "delta1": delta1, "rmse": abs_rel * 3, "num_images": 4}
    return {b: {"lsq": dict(per), "median": dict(per)} for b in BENCHES}


REFERENCES = {
    "constant_plane": metrics_payload(0.50, 0.30),
    "vertical_gradient": metrics_payload(0.40, 0.40),
}


def tiny_pyfunc(model: NewModel, name: str) -> str:
    """A real (small) pyfunc standing in for the depth model: returns a constant depth."""
    import mlflow

    class ConstantDepth(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # noqa: ARG002
            return [[1.0]]

    info = mlflow.pyfunc.log_model(name=name, python_model=ConstantDepth(), pip_requirements=[])
    return info.model_uri


def new_model(client, tmp_path: Path, objective: str, tag: str, metrics: dict) -> NewModel:
    exp = client.get_experiment_by_name("depthart")
    exp_id = exp.experiment_id if exp else client.create_experiment("depthart")
    run = client.create_run(
        exp_id, run_name=f"train-{objective}-{tag}", tags={"git_commit": "0123456789abcdef"}
    )
    client.log_param(run.info.run_id, "model", "tiny")
    client.set_terminated(run.info.run_id)
    ckpt = tmp_path / f"{objective}-{tag}.safetensors"
    ckpt.write_bytes(f"weights of {objective} {tag}".encode())
    return NewModel(objective=objective, checkpoint=ckpt, run_id=run.info.run_id, metrics=metrics)
