"""The ranked registry against a real MLflow sqlite store: promotion rules, rank recomputation."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from depthcore.errors import DepthcoreError
from depthcore.io import file_sha256
from depthcore.tracking import registry
from depthcore.tracking.registry import NewModel, RegisterConfig

BENCHES = ("nyu", "ibims", "tum", "eth3d")


def _metrics(abs_rel: float, delta1: float) -> dict:
    """A metrics.json payload with both alignments on all four benchmarks."""
    per = {"abs_rel": abs_rel, "delta1": delta1, "rmse": abs_rel * 3}
    return {b: {"lsq": dict(per), "median": dict(per)} for b in BENCHES}


REFERENCE_METRICS = {
    "constant_plane": _metrics(0.50, 0.30),
    "vertical_gradient": _metrics(0.40, 0.40),
}


def _per_image(path: Path, metrics: dict, n: int = 12) -> Path:
    """A per_image.csv whose lsq rows average to ``metrics`` (same spread for every model)."""
    spread = [0.01 * (i - (n - 1) / 2) / n for i in range(n)]
    lines = ["benchmark,index,name,alignment,abs_rel,delta1"]
    for bench in BENCHES:
        m = metrics[bench]["lsq"]
        for i, d in enumerate(spread):
            lines.append(f"{bench},{i},frame{i},lsq,{m['abs_rel'] + d},{m['delta1'] - d}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def references(tmp_path: Path) -> dict:
    return {
        name: (metrics, _per_image(tmp_path / f"ref_{name}.csv", metrics))
        for name, metrics in REFERENCE_METRICS.items()
    }


def _log_tiny_pyfunc(model: NewModel) -> str:
    """A real (small) pyfunc standing in for the depth model: returns a constant depth."""
    import mlflow

    class ConstantDepth(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # noqa: ARG002
            return [[1.0]]

    info = mlflow.pyfunc.log_model(name="model", python_model=ConstantDepth(), pip_requirements=[])
    return info.model_uri


@pytest.fixture()
def client(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    import mlflow

    mlflow.set_tracking_uri(uri)
    client = registry.connect(uri)
    yield client
    mlflow.set_tracking_uri(None)


def _new_model(client, tmp_path: Path, objective: str, tag: str, metrics: dict) -> NewModel:
    exp = client.get_experiment_by_name("depthart")
    exp_id = exp.experiment_id if exp else client.create_experiment("depthart")
    run = client.create_run(exp_id, run_name=f"train-{objective}-{tag}")
    client.set_terminated(run.info.run_id)
    ckpt = tmp_path / f"{objective}-{tag}.safetensors"
    ckpt.write_bytes(f"weights of {objective} {tag}".encode())
    per_image = _per_image(tmp_path / f"{objective}-{tag}.csv", metrics)
    return NewModel(
        objective=objective,
        checkpoint=ckpt,
        run_id=run.info.run_id,
        metrics=metrics,
        per_image=per_image,
    )


def _tags(client, version: str) -> dict:
    return client.get_model_version("depthart", version).tags


def test_champion_moves_only_for_a_better_model(client, tmp_path: Path, references) -> None:
    cfg = RegisterConfig(objectives=("depthart",))
    first = _new_model(client, tmp_path, "depthart", "r1", _metrics(0.20, 0.70))
    r1 = registry.run_round(client, cfg, [first], references, _log_tiny_pyfunc)
    assert r1.promoted and r1.champion_before is None and r1.champion_after == "1"
    assert float(_tags(client, "1")["rank"]) == 1.0

    worse = _new_model(client, tmp_path, "var_tf", "r2", _metrics(0.30, 0.60))
    r2 = registry.run_round(client, cfg, [worse], references, _log_tiny_pyfunc)
    assert r2.new_versions == {"var_tf": "2"}
    assert not r2.promoted and r2.champion_after == "1"
    assert str(client.get_model_version_by_alias("depthart", "champion").version) == "1"
    assert r2.ranks["depthart/v2"] == 2.0 and r2.ranks["reference:constant_plane"] == 4.0
    assert _tags(client, "2")["objective"] == "var_tf"
    assert json.loads(_tags(client, "2")["eval_metrics_json"])["nyu"]["lsq"]["abs_rel"] == 0.30
    assert float(_tags(client, "2")["nyu.lsq.abs_rel"]) == pytest.approx(0.30)

    better = _new_model(client, tmp_path, "depthart", "r3", _metrics(0.10, 0.80))
    r3 = registry.run_round(client, cfg, [better], references, _log_tiny_pyfunc)
    assert r3.promoted and r3.champion_before == "1" and r3.champion_after == "3"
    assert str(client.get_model_version_by_alias("depthart", "champion").version) == "3"
    assert "significantly better on 4 of 4" in r3.reason
    decision = json.loads(_tags(client, "3")["promotion_decision"])
    assert decision["promote"] and decision["winner"] == "depthart/v3"
    tag = client.get_registered_model("depthart").tags["promotion_decision"]
    assert json.loads(tag) == decision == r3.decision
    # every pair of this round's candidates and the champion, with intervals
    pairs = {(p["a"], p["b"]) for p in r3.comparison["pairs"]}
    assert ("depthart/v3", "depthart/v1") in pairs and len(pairs) == 6
    assert "| depthart/v3 | depthart/v1 | nyu | abs_rel |" in r3.comparison_md
    # ranks of earlier versions are recomputed over the grown candidate set
    assert float(_tags(client, "1")["rank"]) == 2.0
    assert float(_tags(client, "2")["rank"]) == 3.0
    assert _tags(client, "3")["rank_candidates"] == "5"
    assert "| depthart/v3 (champion) | depthart | 1.000 |" in r3.table_md

    # the same checkpoint again: no duplicate version, no alias change
    r4 = registry.run_round(client, cfg, [better], references, _log_tiny_pyfunc)
    assert r4.new_versions == {"depthart": "3"} and not r4.promoted
    assert len(client.search_model_versions("name='depthart'")) == 3
    # the eval metrics went into the training run as well
    assert client.get_run(better.run_id).data.metrics["eval.tum.lsq.abs_rel"] == pytest.approx(0.1)


def test_best_of_round_must_beat_champion_not_tie(client, tmp_path: Path, references) -> None:
    cfg = RegisterConfig(objectives=("depthart", "var_tf"))
    a = _new_model(client, tmp_path, "depthart", "a", _metrics(0.20, 0.70))
    b = _new_model(client, tmp_path, "var_tf", "b", _metrics(0.25, 0.65))
    r1 = registry.run_round(client, cfg, [a, b], references, _log_tiny_pyfunc)
    assert r1.champion_after == r1.new_versions["depthart"]
    tie = _new_model(client, tmp_path, "depthart", "tie", _metrics(0.20, 0.70))
    r2 = registry.run_round(client, cfg, [tie], references, _log_tiny_pyfunc)
    assert r2.ranks["depthart/v1"] == r2.ranks["depthart/v3"]
    assert not r2.promoted and "a tie keeps the champion" in r2.reason


def test_a_better_rank_without_significance_keeps_the_champion(
    client, tmp_path: Path, references
) -> None:
    """Better means on every benchmark, but within the images' noise: no promotion."""
    cfg = RegisterConfig(objectives=("depthart",))
    first = _new_model(client, tmp_path, "depthart", "a", _metrics(0.20, 0.70))
    registry.run_round(client, cfg, [first], references, _log_tiny_pyfunc)
    close = _new_model(client, tmp_path, "var_tf", "b", _metrics(0.199, 0.701))
    noisy = tmp_path / "noisy.csv"
    rows = close.per_image.read_text().splitlines()
    noisy.write_text(
        "\n".join(
            [rows[0]]
            + [
                ",".join(r.split(",")[:4] + [str(float(r.split(",")[4]) + (-1) ** i * 0.05)])
                + "," + r.split(",")[5]
                for i, r in enumerate(rows[1:])
            ]
        )
        + "\n"
    )  # fmt: skip
    close = NewModel(close.objective, close.checkpoint, close.run_id, close.metrics, noisy)
    r2 = registry.run_round(client, cfg, [close], references, _log_tiny_pyfunc)
    assert r2.ranks["depthart/v2"] < r2.ranks["depthart/v1"]
    assert not r2.promoted and "significantly better on 0 of 4" in r2.reason


def test_register_stage_reads_stage_outputs_and_writes_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "repo"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = registry.connect(uri)
    model = _new_model(client, root, "depthart", "s", _metrics(0.2, 0.7))
    mdir = root / "models" / "depthart"
    mdir.mkdir(parents=True)
    _tiny_checkpoint(mdir / "model.safetensors")
    (mdir / "mlflow_run.json").write_text(json.dumps({"run_id": model.run_id}))
    for name, metrics in [("depthart", model.metrics)] + [
        (f"reference_{r}", m) for r, m in REFERENCE_METRICS.items()
    ]:
        (root / "outputs" / "eval" / name).mkdir(parents=True)
        (root / "outputs" / "eval" / name / "metrics.json").write_text(json.dumps(metrics))
        _per_image(root / "outputs" / "eval" / name / "per_image.csv", metrics)
    (root / "params.yaml").write_text("register:\n  objectives: [depthart]\n")
    from stages.register import main  # the stage itself, with the real depthcore pyfunc logger

    main(["--params", "params.yaml"])
    report = json.loads((root / "outputs" / "register" / "registry.json").read_text())
    assert report["champion_after"] == "1" and report["tracking_uri"] == uri
    assert report["new_versions"] == {"depthart": "1"} and report["promoted"]
    table = (root / "outputs" / "register" / "rank_table.md").read_text()
    assert table.startswith("| candidate | objective | rank |")
    assert "| depthart/v1 (champion) | depthart | 1.000 |" in table
    comparison = json.loads((root / "outputs" / "register" / "comparison.json").read_text())
    assert comparison["resamples"] == 2000 and len(comparison["pairs"]) == 3
    assert "first champion" in comparison["decision"]["reason"]
    assert "## Champion decision" in (root / "outputs" / "register" / "comparison.md").read_text()
    logged = {a.path for a in client.list_artifacts(model.run_id, "register")}
    assert logged == {"register/comparison.md", "register/comparison.json"}
    assert {a.path for a in client.list_artifacts(model.run_id, "eval")} == {"eval/per_image.csv"}
    headline = root / "outputs" / "register" / "headline"
    assert sorted(p.name for p in headline.iterdir()) == sorted(
        ["depthart.json"] + [f"reference_{r}.json" for r in REFERENCE_METRICS]
    )
    row = json.loads((headline / "depthart.json").read_text())
    assert row["version"] == 1 and row["rank"] == report["ranks"]["depthart/v1"]
    version = client.get_model_version("depthart", "1")
    assert version.run_id == model.run_id
    assert version.tags["checkpoint_sha256"] == file_sha256(mdir / "model.safetensors")

    (root / "outputs" / "eval" / "depthart" / "metrics.json").write_text('{"nyu": {"lsq": 3}}')
    with pytest.raises(SystemExit):
        main(["--params", "params.yaml"])
    assert "depthart/metrics.json: 'nyu.lsq' is not a mapping" in capsys.readouterr().err


def _tiny_checkpoint(path: Path) -> None:
    """A real (untrained, one-block) checkpoint of the tiny model."""
    from depthcore.models import build_model, resolve_config
    from depthcore.models.checkpoint import save_model

    cfg = resolve_config("tiny", var={"depth": 1})
    vae, var = build_model(cfg)
    save_model(path, vae, var, cfg, {"space": "sqrt_disparity", "objective": "depthart"})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_tracking_server_fails_fast_naming_uri(monkeypatch) -> None:
    for var in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(var, "unset-after-test")  # so monkeypatch undoes connect()'s default
        monkeypatch.delenv(var)
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(DepthcoreError, match=f"MLflow tracking server {uri} is not reachable"):
        registry.connect(uri)
    assert time.monotonic() - start < 30
