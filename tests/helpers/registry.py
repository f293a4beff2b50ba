"""A registry round without training: metrics payloads, runs and a constant pyfunc."""

from __future__ import annotations

from pathlib import Path

from depthcore.tracking.registry import NewModel

BENCHES = ("nyu", "ibims", "tum", "eth3d")


def metrics_payload(abs_rel: float, delta1: float) -> dict:
    """A metrics.json payload with both alignments on all four benchmarks."""
    per = {"abs_rel": abs_rel, "delta1": delta1, "rmse": abs_rel * 3, "num_images": 4}
    return {b: {"lsq": dict(per), "median": dict(per)} for b in BENCHES}


REFERENCE_METRICS = {
    "constant_plane": metrics_payload(0.50, 0.30),
    "vertical_gradient": metrics_payload(0.40, 0.40),
}


def per_image_csv(path: Path, metrics: dict, n: int = 12) -> Path:
    """A per_image.csv whose lsq rows average to ``metrics`` (same spread for every model)."""
    spread = [0.01 * (i - (n - 1) / 2) / n for i in range(n)]
    lines = ["benchmark,index,name,alignment,abs_rel,delta1"]
    for bench in BENCHES:
        m = metrics[bench]["lsq"]
        for i, d in enumerate(spread):
            lines.append(f"{bench},{i},frame{i},lsq,{m['abs_rel'] + d},{m['delta1'] - d}")
    path.write_text("\n".join(lines) + "\n")
    return path


def references(folder: Path) -> dict[str, tuple[dict, Path]]:
    """The two reference predictors as run_round takes them: (metrics, per-image csv)."""
    return {
        name: (metrics, per_image_csv(folder / f"ref_{name}.csv", metrics))
        for name, metrics in REFERENCE_METRICS.items()
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
    per_image = per_image_csv(tmp_path / f"{objective}-{tag}.csv", metrics)
    return NewModel(objective, ckpt, run.info.run_id, metrics, per_image)
