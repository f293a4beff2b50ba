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
from depthcore.tracking.registry import RegisterConfig
from tests.helpers.registry import (
    REFERENCE_METRICS,
    metrics_payload,
    new_model,
    per_image_csv,
    references,
    tiny_pyfunc,
)


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    import mlflow

    monkeypatch.chdir(tmp_path)  # the round's reports go to ./outputs/register
    mlflow.set_tracking_uri(uri)
    client = registry.connect(uri)
    yield client
    mlflow.set_tracking_uri(None)


def _tags(client, label: str) -> dict:
    name, version = label.rsplit("/v", 1)
    return client.get_model_version(name, version).tags


def _champion(client) -> str:
    return client.get_model_version_by_alias("depthart", "champion").tags["source"]


def test_champion_moves_only_for_a_better_model(client, tmp_path: Path) -> None:
    cfg = RegisterConfig(objectives=("depthart",))
    first = new_model(client, tmp_path, "depthart", "r1", metrics_payload(0.20, 0.70))
    r1 = registry.run_round(client, cfg, [first], references(tmp_path), tiny_pyfunc)
    assert r1.promoted and r1.champion_before is None and r1.champion_after == "depthart-tiny/v1"
    assert float(_tags(client, "depthart-tiny/v1")["rank"]) == 1.0
    assert _champion(client) == "depthart-tiny/v1"

    worse = new_model(client, tmp_path, "var_tf", "r2", metrics_payload(0.30, 0.60))
    r2 = registry.run_round(client, cfg, [worse], references(tmp_path), tiny_pyfunc)
    assert r2.new_versions == {"var_tf": "var-tf-tiny/v1"}
    assert not r2.promoted and r2.champion_after == "depthart-tiny/v1"
    assert _champion(client) == "depthart-tiny/v1"
    # ranked against the champion only; a reference is shown beside (ranked as if added alone)
    assert r2.ranks["var-tf-tiny/v1"] == 2.0 and r2.ranks["depthart-tiny/v1"] == 1.0
    assert r2.ranks["reference:constant_plane"] == 3.0
    assert "| *shown beside, not ranked with them:* |" in r2.table_md
    assert r2.ranked == ["var-tf-tiny/v1", "depthart-tiny/v1"]
    assert _tags(client, "var-tf-tiny/v1")["objective"] == "var_tf"
    assert float(_tags(client, "var-tf-tiny/v1")["mean_abs_rel"]) == pytest.approx(0.30)

    better = new_model(client, tmp_path, "depthart", "r3", metrics_payload(0.10, 0.80))
    r3 = registry.run_round(client, cfg, [better], references(tmp_path), tiny_pyfunc)
    assert r3.promoted and r3.champion_before == "depthart-tiny/v1"
    assert r3.champion_after == "depthart-tiny/v2" == _champion(client)
    assert "significantly better on 4 of 4" in r3.reason
    assert r3.decision["promote"] and r3.decision["winner"] == "depthart-tiny/v2"
    # every pair of this round's candidates and the champion, with intervals
    pairs = {(p["a"], p["b"]) for p in r3.comparison["pairs"]}
    assert ("depthart-tiny/v2", "depthart-tiny/v1") in pairs and len(pairs) == 6
    assert "| depthart-tiny/v2 | depthart-tiny/v1 | nyu | abs_rel |" in r3.comparison_md
    # the winner's description compares it with the champion it replaced, with intervals
    text = client.get_model_version("depthart-tiny", "2").description
    assert "**Promoted to champion.** promote depthart-tiny/v2" in text
    assert "Against champion depthart-tiny/v1 (rank 2.000" in text
    assert "- nyu abs_rel: 0.1000 vs 0.2000, difference -0.1000, 95% CI [" in text
    assert "significantly better" in text
    # the loser of round 2: compared with the champion, and why it stayed out
    text = client.get_model_version("var-tf-tiny", "1").description
    assert "Not promoted. keep champion: var-tf-tiny/v1 rank 2.000" in text
    assert "- tum abs_rel: 0.3000 vs 0.2000, difference +0.1000" in text
    # the product model holds one version per promotion, each a copy of the winner
    assert len(client.search_model_versions("name='depthart'")) == 2
    # the pool is this round's model and the champion; a past version is ranked beside them
    assert float(_tags(client, "depthart-tiny/v1")["rank"]) == 2.0
    assert float(_tags(client, "var-tf-tiny/v1")["rank"]) == 3.0
    assert _tags(client, "depthart-tiny/v2")["rank_of"] == "2"
    assert _tags(client, "var-tf-tiny/v1")["rank_of"] == "3"
    assert "| var-tf-tiny/v1 | var_tf | (3.000) |" in r3.table_md
    assert _tags(client, "depthart-tiny/v1")["champion"] == "no"
    assert "| depthart-tiny/v2 (champion) | depthart | 1.000 |" in r3.table_md

    # the same checkpoint again: no duplicate version, no alias change
    r4 = registry.run_round(client, cfg, [better], references(tmp_path), tiny_pyfunc)
    assert r4.new_versions == {"depthart": "depthart-tiny/v2"} and not r4.promoted
    assert len(client.search_model_versions("name='depthart-tiny'")) == 2
    # the eval metrics went into the training run under glossary names, counts as params
    run = client.get_run(better.run_id).data
    assert run.metrics["tum/lsq/abs_rel"] == pytest.approx(0.1)
    assert run.metrics["mean_abs_rel"] == pytest.approx(0.1) and run.metrics["rank"] == 1.0
    assert "nyu.num_images" not in run.metrics and run.params["nyu.num_images"] == "4"


def test_best_of_round_must_beat_champion_not_tie(client, tmp_path: Path) -> None:
    cfg = RegisterConfig(objectives=("depthart", "var_tf"))
    a = new_model(client, tmp_path, "depthart", "a", metrics_payload(0.20, 0.70))
    b = new_model(client, tmp_path, "var_tf", "b", metrics_payload(0.25, 0.65))
    r1 = registry.run_round(client, cfg, [a, b], references(tmp_path), tiny_pyfunc)
    assert r1.champion_after == r1.new_versions["depthart"]
    tie = new_model(client, tmp_path, "depthart", "tie", metrics_payload(0.20, 0.70))
    r2 = registry.run_round(client, cfg, [tie], references(tmp_path), tiny_pyfunc)
    assert r2.ranks["depthart-tiny/v1"] == r2.ranks["depthart-tiny/v2"]
    assert not r2.promoted and "a tie keeps the champion" in r2.reason


def test_a_better_rank_without_significance_keeps_the_champion(client, tmp_path: Path) -> None:
    """Better means on every benchmark, but within the images' noise: no promotion."""
    cfg = RegisterConfig(objectives=("depthart",))
    first = new_model(client, tmp_path, "depthart", "a", metrics_payload(0.20, 0.70))
    registry.run_round(client, cfg, [first], references(tmp_path), tiny_pyfunc)
    close = new_model(client, tmp_path, "var_tf", "b", metrics_payload(0.199, 0.701))
    rows = close.per_image.read_text().splitlines()
    noisy = [rows[0]]
    for i, row in enumerate(rows[1:]):
        cells = row.split(",")
        cells[4] = str(float(cells[4]) + (-1) ** i * 0.05)
        noisy.append(",".join(cells))
    close.per_image.write_text("\n".join(noisy) + "\n")
    r2 = registry.run_round(client, cfg, [close], references(tmp_path), tiny_pyfunc)
    assert r2.ranks["var-tf-tiny/v1"] < r2.ranks["depthart-tiny/v1"]
    assert not r2.promoted and "significantly better on 0 of 4" in r2.reason
    text = client.get_model_version("var-tf-tiny", "1").description
    assert "no significant difference" in text and "Not promoted." in text


def test_register_stage_reads_stage_outputs_and_writes_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "repo"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = registry.connect(uri)
    model = new_model(client, root, "depthart", "s", metrics_payload(0.2, 0.7))
    mdir = root / "models" / "depthart"
    mdir.mkdir(parents=True)
    _tiny_checkpoint(mdir / "model.safetensors")
    (mdir / "mlflow_run.json").write_text(json.dumps({"run_id": model.run_id}))
    for name, metrics in [("depthart", model.metrics)] + [
        (f"reference_{r}", m) for r, m in REFERENCE_METRICS.items()
    ]:
        (root / "outputs" / "eval" / name).mkdir(parents=True)
        (root / "outputs" / "eval" / name / "metrics.json").write_text(json.dumps(metrics))
        per_image_csv(root / "outputs" / "eval" / name / "per_image.csv", metrics)
    # the tracking section's defaults (MLFLOW_TRACKING_URI overrides its uri)
    (root / "params.yaml").write_text("register:\n  objectives: [depthart]\ntracking: {}\n")
    from stages.register import main  # the stage itself, with the real depthcore pyfunc logger

    (root / "outputs" / "eval" / "depthart" / "panels").mkdir()
    (root / "outputs" / "eval" / "depthart" / "panels" / "nyu_000.png").write_bytes(b"png")
    (mdir / "figures").mkdir()
    (mdir / "figures" / "scales_000.png").write_bytes(b"png")
    scales = {"patch_nums": [1, 2, 4], "val_abs_rel_per_scale": [0.5, 0.4, 0.3]}
    (mdir / "scales.json").write_text(json.dumps(scales | {"val_abs_rel": 0.3,
                                                           "refinement_gain": 0.4}))  # fmt: skip
    main(["--params", "params.yaml"])
    report = json.loads((root / "outputs" / "register" / "registry.json").read_text())
    assert report["champion_after"] == "depthart-tiny/v1" and report["tracking_uri"] == uri
    assert report["new_versions"] == {"depthart": "depthart-tiny/v1"} and report["promoted"]
    table = (root / "outputs" / "register" / "rank_table.md").read_text()
    assert table.startswith("| candidate | objective | rank |")
    assert "| depthart-tiny/v1 (champion) | depthart | 1.000 |" in table

    # the candidate version: named after what it is, described, few tags
    version = client.get_model_version("depthart-tiny", "1")
    assert version.run_id == model.run_id
    assert 8 <= len(version.tags) <= 12, sorted(version.tags)
    assert version.tags["checkpoint_sha256"] == file_sha256(mdir / "model.safetensors")
    assert version.tags["git_commit"] == "0123456789ab" and version.tags["champion"] == "yes"
    assert len(version.tags["params_hash"]) == 12 and version.tags["data_version"] == "unknown"
    assert "objective `depthart`" in version.description
    assert "Rank **1.000** of 1" in version.description
    assert "**Promoted to champion.**" in version.description
    # the product page says who is champion and why
    product = client.get_registered_model("depthart")
    assert "**Champion: depthart-tiny/v1**" in product.description
    assert "is the first champion" in product.description
    assert "better than the best content-free reference on 4 of 4" in product.description
    champion = client.get_model_version_by_alias("depthart", "champion")
    assert champion.tags["source"] == "depthart-tiny/v1"
    # the logged model: its name, signature and input example
    import mlflow

    info = mlflow.models.get_model_info("models:/depthart-tiny/1")
    assert info.signature.inputs.input_names() == ["image"]
    assert info.saved_input_example_info is not None
    assert mlflow.get_logged_model(info.model_id).name == "depthart-tiny"

    # the runs: evidence in the training run, a run per reference, a register run
    run = client.get_run(model.run_id)
    assert run.data.metrics["val_abs_rel_scale_4x4"] == pytest.approx(0.3)
    assert run.data.metrics["nyu/lsq/delta1_within_1.25"] == pytest.approx(0.7)
    arts = {
        a.path for d in ("panels", "figures") for a in client.list_artifacts(run.info.run_id, d)
    }
    assert arts == {"panels/nyu_000.png", "figures/scales_000.png"}
    exp_id = run.info.experiment_id
    refs = client.search_runs([exp_id], "tags.stage = 'evaluate_reference'")
    assert sorted(r.info.run_name for r in refs) == [
        "reference-constant_plane", "reference-vertical_gradient"]  # fmt: skip
    assert all("rank" in r.data.metrics for r in refs)
    (reg,) = client.search_runs([exp_id], "tags.stage = 'register'")
    assert reg.info.run_id == report["register_run_id"] and reg.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(reg.info.run_id)} == {
        "rank_table.md", "registry.json", "comparison.md", "comparison.json"}  # fmt: skip
    assert "**Champion: depthart-tiny/v1** (promoted)" in reg.data.tags["mlflow.note.content"]
    glossary = client.get_experiment(exp_id).tags["mlflow.note.content"]
    assert "| `plane_flatness_err_cm` | ↓ |" in glossary

    comparison = json.loads((root / "outputs" / "register" / "comparison.json").read_text())
    assert comparison["resamples"] == 2000 and len(comparison["pairs"]) == 3
    assert "first champion" in comparison["decision"]["reason"]
    assert "## Champion decision" in (root / "outputs" / "register" / "comparison.md").read_text()
    assert {a.path for a in client.list_artifacts(model.run_id, "eval")} == {"eval/per_image.csv"}
    headline = root / "outputs" / "register" / "headline"
    rows = {p.stem: json.loads(p.read_text()) for p in headline.glob("*.json")}
    assert len(rows) == 1 + len(REFERENCE_METRICS)
    assert all("rank" in r for r in rows.values())

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
