"""End to end: a copy of the repository, `dvc repro` on tiny params, then a no-op rerun."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = {"nyu", "ibims", "tum", "eth3d"}

# The smallest pipeline that still exercises every stage: a handful of frames, a few steps.
TINY = {
    "synth": {
        "n_scenes": 4, "cameras_per_scene": 1, "frames_per_camera": 3, "height": 64,
        "width": 64, "val_scenes": 1, "test_scenes": 1, "lens_shift_scenes": 1,
        "window_views": 1, "flat_views": 1, "excluded_frames": 1,
    },
    "benchmarks": {"images": 2, "height": 48, "width": 64},
    "tokenizer": {"steps": 3, "batch_size": 2, "eval_frames": 2},
    "features": {"batch_size": 4},
    "train": {
        "steps": 3, "batch_size": 2, "warmup_steps": 0, "ckpt_every": 0, "val_frames": 2,
        "val_batch_size": 2, "log_every": 1, "num_figures": 1,
    },
    "evaluate": {"num_panels": 1, "batch_size": 2},
}  # fmt: skip


def _copy_repo(dst: Path) -> None:
    """Tracked and untracked-but-not-ignored files only: what a fresh clone would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = REPO_ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def _tiny_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    for section, overrides in TINY.items():
        params[section].update(overrides)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-6000:]}"
    return out


def test_dvc_repro_end_to_end_then_noop(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _copy_repo(repo)
    _tiny_params(repo / "params.yaml")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "PREFECT_API"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(repo),  # the copy's depthcore, not the editable install's
        GIT_AUTHOR_NAME="e2e", GIT_AUTHOR_EMAIL="e2e@localhost",
        GIT_COMMITTER_NAME="e2e", GIT_COMMITTER_EMAIL="e2e@localhost",
    )  # fmt: skip
    _run(["git", "init", "-q"], repo, env, 60)
    _run(["git", "add", "-A"], repo, env, 60)
    _run(["git", "commit", "-q", "-m", "copy"], repo, env, 60)

    start = time.monotonic()
    out = _run([sys.executable, "-m", "dvc", "repro"], repo, env, 600)
    cold_s = time.monotonic() - start

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    expected = {
        "synth", "benchmarks", "list_source", "download", "preprocess", "validate", "tokenizer",
        "tokenizer_eval", "features", "train@depthart", "train@var_tf", "train@regression",
        "scales@depthart", "scales@var_tf", "scales@regression", "evaluate@depthart",
        "evaluate@var_tf", "evaluate@regression",
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
    assert registry["promoted"] and registry["champion_after"] is not None
    table = (repo / "outputs" / "register" / "rank_table.md").read_text()
    assert "(champion)" in table and "reference:constant_plane" in table
    comparison = json.loads((repo / "outputs" / "register" / "comparison.json").read_text())
    assert len(comparison["pairs"]) == 10  # 3 models + 2 references, every pair
    readme = (repo / "README.md").read_text()
    assert (repo / "outputs" / "report" / "results.md").read_text() in readme

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("depthart", "champion")
    assert champion.tags["source"] == registry["champion_after"]  # e.g. var-tf-tiny/v1
    assert champion.tags["objective"] in models
    model_ranks = [r for name, r in registry["ranks"].items() if "-tiny/v" in name]
    assert len(model_ranks) == 3 and registry["ranks"][registry["champion_after"]] == min(
        model_ranks
    )
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
        for uri in ("models:/depthart@champion", baseline_uri):
            depths = mlflow.pyfunc.load_model(uri).predict({"image": list(rgb_BHW3)})
            assert len(depths) == 2 and np.asarray(depths[0]).shape == (40, 56), uri
            assert np.isfinite(np.asarray(depths, dtype=np.float64)).all(), uri
    finally:
        mlflow.set_tracking_uri(None)

    start = time.monotonic()
    again = _run([sys.executable, "-m", "dvc", "repro"], repo, env, 300)
    noop_s = time.monotonic() - start
    # only the always-run source listing executes; its listing is unchanged, so nothing else
    assert re.findall(r"Running stage '([^']+)'", again) == ["list_source"], again[-3000:]
    assert "Stage 'download' didn't change, skipping" in again, again[-3000:]
    print(f"e2e: cold dvc repro {cold_s:.1f} s, no-op rerun {noop_s:.1f} s")
