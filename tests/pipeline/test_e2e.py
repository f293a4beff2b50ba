"""End to end: a copy of the repository, `dvc repro` on tiny params, then a no-op rerun."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.tiny_repo import make_tiny_repo, run_checked

pytestmark = pytest.mark.e2e

BENCHMARKS = {"nyu", "ibims", "tum", "eth3d"}


def test_dvc_repro_end_to_end_then_noop(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env = make_tiny_repo(repo)  # a fresh-clone copy with TINY params, committed

    start = time.monotonic()
    out = run_checked([sys.executable, "-m", "dvc", "repro"], repo, env, 600)
    cold_s = time.monotonic() - start

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    expected = {
        "synth", "benchmarks", "list_source", "download", "preprocess", "validate", "tokenizer",
        "tokenizer_eval", "features", "pretrain", "train@depthart", "train@var_tf",
        "train@regression", "scales@depthart", "scales@var_tf", "scales@regression",
        "evaluate@depthart", "evaluate@var_tf", "evaluate@regression",
        "evaluate_reference@constant_plane", "evaluate_reference@vertical_gradient", "register",
        "report",
    }  # fmt: skip
    assert set(lock) == expected, out[-3000:]
    for stage, entry in lock.items():
        for o in entry.get("outs", []):
            assert (repo / o["path"]).exists(), f"{stage}: declared out {o['path']} missing"

    models = ("depthart", "var_tf", "regression")
    for name in (*models, "reference_constant_plane", "reference_vertical_gradient"):
        metrics = json.loads((repo / "outputs" / "eval" / name / "metrics.json").read_text())
        assert set(metrics) == BENCHMARKS, name
        assert all(0 <= metrics[b]["lsq"]["abs_rel"] < 10 for b in BENCHMARKS)

    registry = json.loads((repo / "outputs" / "register" / "registry.json").read_text())
    table = (repo / "outputs" / "register" / "rank_table.md").read_text()
    assert "| *shown beside, not ranked with them:* |" in table
    assert "reference:constant_plane" in table
    # a 3-step model need not beat the content-free references significantly: then the
    # first-champion rule promotes nobody (evaluation/champion.py), and says why
    if registry["promoted"]:
        assert registry["champion_after"] == registry["decision"]["winner"]
        assert "(champion)" in table and "first champion" in registry["reason"]
    else:
        assert registry["champion_after"] is None and "(champion)" not in table
        assert "at least half needed" in registry["reason"] or "none ahead" in registry["reason"]
    comparison = json.loads((repo / "outputs" / "register" / "comparison.json").read_text())
    assert len(comparison["pairs"]) == 10  # 3 models + 2 references, every pair
    results_page = (repo / "docs" / "results.md").read_text()
    assert (repo / "outputs" / "report" / "results.md").read_text() in results_page

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    model_ranks = [r for name, r in registry["ranks"].items() if "-tiny/v" in name]
    assert len(model_ranks) == 3
    served = "models:/depthart@champion"
    if registry["promoted"]:
        champion = client.get_model_version_by_alias("depthart", "champion")
        assert champion.tags["source"] == registry["champion_after"]  # e.g. var-tf-tiny/v1
        assert champion.tags["objective"] in models
        assert registry["ranks"][registry["champion_after"]] == min(model_ranks)
    else:  # the DepthART candidate version serves through the same pyfunc
        served = "models:/{}/{}".format(*registry["new_versions"]["depthart"].split("/v"))
    # lineage: the served version's training and evaluation data are dvc.lock's hashes
    from depthcore.tracking.lineage import read_lineage

    name, _, ref = served.removeprefix("models:/").partition("@")
    version = (
        client.get_model_version_by_alias(name, ref)
        if ref
        else client.get_model_version(*served.removeprefix("models:/").split("/"))
    )
    lineage = read_lineage(client, served)
    trained = {(r.context, r.name): r.digest for r in lineage.data}
    train_deps = {d["path"]: d["md5"] for d in lock[f"train@{version.tags['objective']}"]["deps"]}
    assert trained[("training", "data/features")] == train_deps["data/features"]
    assert trained[("evaluation", "data/benchmarks")] == lock["benchmarks"]["outs"][0]["md5"]
    assert lineage.data_hash == version.tags["data_version"] != "unknown"
    card = client.download_artifacts(lineage.run_id, "model_card.md", str(tmp_path))
    assert "embedded synthetic scenes" in Path(card).read_text()
    # the regression baseline is a registered, ranked candidate like the transformers
    baseline = next(name for name in registry["ranks"] if name.startswith("regression-tiny/v"))
    baseline_uri = "models:/{}/{}".format(*baseline.split("/v"))
    scales = (repo / "models" / "regression" / "scales.csv").read_text().splitlines()
    assert len(scales) == 2  # header + the baseline's one "scale"

    # the champion is a working pyfunc: image batch in, one depth map per image out
    import mlflow
    import numpy as np

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    rgb_BHW3 = np.random.default_rng(0).integers(0, 255, (2, 40, 56, 3), dtype=np.uint8)
    try:  # the champion and the regression baseline both serve through the same pyfunc
        for uri in (served, baseline_uri):
            depths = mlflow.pyfunc.load_model(uri).predict({"image": list(rgb_BHW3)})
            assert len(depths) == 2 and np.asarray(depths[0]).shape == (40, 56), uri
            assert np.isfinite(np.asarray(depths, dtype=np.float64)).all(), uri
    finally:
        mlflow.set_tracking_uri(None)

    start = time.monotonic()
    again = run_checked([sys.executable, "-m", "dvc", "repro"], repo, env, 300)
    noop_s = time.monotonic() - start
    # only the always-run source listing executes; its listing is unchanged, so nothing else
    assert re.findall(r"Running stage '([^']+)'", again) == ["list_source"], again[-3000:]
    assert "Stage 'download' didn't change, skipping" in again, again[-3000:]
    print(f"e2e: cold dvc repro {cold_s:.1f} s, no-op rerun {noop_s:.1f} s")
