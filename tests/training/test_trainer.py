"""The trainer: resume reproduces an uninterrupted run; stage outputs; MLflow; torchrun DDP."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from depthcore.config import TrackingConfig
from depthcore.data.domain import trained_on
from depthcore.data.features import FeatureDataset
from depthcore.errors import CheckpointError
from depthcore.evaluation.scales import ScalesConfig, run_scales
from depthcore.models import build_model, resolve_config
from depthcore.models.checkpoint import load_model
from depthcore.training.distributed import DistInfo
from depthcore.training.runner import run_training
from depthcore.training.train_config import TrainConfig
from depthcore.training.trainer import Trainer
from tests.helpers.models import TEST_PIXEL_ENCODER
from tests.helpers.torchrun import torchrun

REPO = Path(__file__).resolve().parents[2]
# small, with a small pixel path (the default tiny model reads the frames too)
SMALL_VAR = {"depth": 2, "embed_dim": 64, "num_heads": 2, "pixel_encoder": TEST_PIXEL_ENCODER}


def _cfg(setup: Path, out: Path, **kw: object) -> TrainConfig:
    base = dict(
        tokenizer=str(setup / "vae.safetensors"), features_dir=str(setup / "features"),
        out_dir=str(out), steps=4, batch_size=2, ckpt_every=2, val_frames=2, val_batch_size=2,
        log_every=1, lr=1e-3,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def _trainer(setup: Path, cfg: TrainConfig, objective: str, device: str = "cpu") -> Trainer:
    model_cfg = resolve_config("tiny", var=SMALL_VAR)
    torch.manual_seed(cfg.seed)
    vae, var = build_model(model_cfg)
    from depthcore.models.checkpoint import load_vae

    vae = load_vae(cfg.tokenizer, expected=model_cfg.vae).vae
    train = FeatureDataset(setup / "features" / "train.h5", fields=Trainer.fields_for(var))
    val = FeatureDataset(setup / "features" / "val.h5", fields=Trainer.fields_for(var))
    out = Path(cfg.out_dir) / objective
    info = DistInfo(device=device)
    return Trainer(vae, var, model_cfg, cfg, objective, train, val, out, dist_info=info)


@pytest.mark.parametrize("objective", ["depthart", "var_tf"])
def test_resume_equals_uninterrupted(feature_setup: Path, tmp_path: Path, objective: str) -> None:
    whole = _trainer(feature_setup, _cfg(feature_setup, tmp_path / "a"), objective)
    whole.fit()
    first = _trainer(feature_setup, _cfg(feature_setup, tmp_path / "b"), objective)
    first.fit(stop_at=2)  # "interrupted": the process ends after step 2's checkpoint
    assert [p.name for p in first.checkpoints()] == ["step_0000002"]
    resumed = _trainer(feature_setup, _cfg(feature_setup, tmp_path / "b"), objective)
    resumed.fit()
    assert resumed.step == 4
    for (name, w), w_resumed in zip(
        whole.var.state_dict().items(), resumed.var.state_dict().values(), strict=True
    ):
        assert torch.equal(w, w_resumed), name
    init = _trainer(feature_setup, _cfg(feature_setup, tmp_path / "c"), objective).var.state_dict()
    moved = [n for n, w in whole.var.state_dict().items() if not torch.equal(w, init[n])]
    assert moved, "training did not change any weight"


def test_resume_refuses_another_config(feature_setup: Path, tmp_path: Path) -> None:
    _trainer(feature_setup, _cfg(feature_setup, tmp_path), "var_tf").fit(stop_at=2)
    other = _trainer(feature_setup, _cfg(feature_setup, tmp_path, lr=5e-4), "var_tf")
    with pytest.raises(CheckpointError, match=r"step_0000002/state.pt: .*'lr': \(0.001, 0.0005\)"):
        other.resume()


def test_run_training_then_scales_write_outputs_and_log_to_mlflow(
    feature_setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    cfg = _cfg(feature_setup, tmp_path / "models", steps=2)
    # the tracking section's default URI; MLFLOW_TRACKING_URI overrides it
    metrics = run_training(cfg, "var_tf", tracking=TrackingConfig(backend="mlflow"))
    out = tmp_path / "models" / "var_tf"
    loaded = load_model(out / "model.safetensors")
    meta = dict(loaded.meta)
    sources = meta.pop("trained_on")  # what it was trained on: the training frames' scenes
    assert meta == {"objective": "var_tf", "space": "sqrt_disparity", "image_size": 64,
                    "input_fit": "stretch", "steps": 2}  # fmt: skip
    keys = FeatureDataset(Path(cfg.features_dir) / f"{cfg.train_split}.h5").keys
    assert sources == trained_on(keys) and sources["frames"] == len(keys) > 0
    on_disk = json.loads((out / "train_metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["val_loss"] > 0
    run = json.loads((out / "mlflow_run.json").read_text())
    assert run["tracking_uri"] == uri
    client = MlflowClient(uri)
    data = client.get_run(run["run_id"]).data
    assert data.params["objective"] == "var_tf" and data.params["lr"] == "0.001"
    assert data.metrics["val_loss"] == pytest.approx(on_disk["val_loss"])
    assert [m.step for m in client.get_metric_history(run["run_id"], "loss")] == [1, 2]
    assert not (out / "scales.csv").exists()  # the scales stage's, not training's

    scales = ScalesConfig(
        models_dir=cfg.out_dir, features_dir=cfg.features_dir, frames=2, batch_size=2,
        num_figures=1,
    )  # fmt: skip
    summary = run_scales(scales, "var_tf", "generate")
    rows = list(csv.DictReader((out / "scales.csv").open()))
    assert [int(r["patch_num"]) for r in rows] == [1, 2, 3, 4, 6, 8]
    assert summary["val_abs_rel"] == pytest.approx(float(rows[-1]["abs_rel"]), abs=1e-6)
    assert 0 < summary["val_abs_rel"] < 1
    assert sorted(p.name for p in (out / "figures").glob("[!.]*")) == ["scales_000.png"]
    # the exposure gap under every decoding, per scale (depthcore/evaluation/exposure.py)
    assert set(summary["exposure_gap"]) == {"greedy", "sample", "expected"}
    assert sorted(p.name for p in (out / "exposure").glob("[!.]*")) == [
        "expected.csv", "greedy.csv", "sample.csv"]  # fmt: skip
    gap = summary["exposure_gap"]["expected"]
    assert gap["abs_rel_own"][-1] == pytest.approx(summary["val_abs_rel"], abs=1e-4)


def test_torchrun_two_gloo_ranks_stay_in_sync(feature_setup: Path, tmp_path: Path) -> None:
    cfg = _cfg(feature_setup, tmp_path / "models", steps=2, ckpt_every=0, device="cpu")
    params = tmp_path / "params.yaml"
    train = json.loads(json.dumps(dataclasses.asdict(cfg)))
    params.write_text(yaml.safe_dump({"train": train, "tracking": {"backend": "none"}}))
    cmd = torchrun(2, "stages.train", "--params", str(params), "--objective", "depthart")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "models" / "depthart" / "train_metrics.json").read_text())
    assert metrics["world_size"] == 2
    assert metrics["ranks_max_weight_diff"] == 0.0
    ddp = load_model(tmp_path / "models" / "depthart" / "model.safetensors")
    assert ddp.meta["steps"] == 2
    # 2 ranks x batch 2 with averaged gradients == one process with batch 4 (same frames)
    run_training(dataclasses.replace(cfg, batch_size=4, out_dir=str(tmp_path / "one")), "depthart")
    single = load_model(tmp_path / "one" / "depthart" / "model.safetensors").var.state_dict()
    # (the pixel path's BatchNorm sums its global statistics in another order than one
    # batch does; Adam's first steps turn that float noise on near-zero gradients into
    # ~1e-5 differences on a few entries: measured 2 of its 1.3 M weights above 1e-5)
    for name, w in ddp.var.state_dict().items():
        atol = 1e-4 if name.startswith("condition.pixels.") else 1e-5
        torch.testing.assert_close(w, single[name], rtol=0, atol=atol, msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("objective", ["depthart", "var_tf"])
def test_training_and_validation_on_cuda(
    feature_setup: Path, tmp_path: Path, objective: str
) -> None:
    trainer = _trainer(feature_setup, _cfg(feature_setup, tmp_path), objective, device="cuda:0")
    result = trainer.fit()
    assert result["step"] == 4 and torch.isfinite(torch.tensor(result["last"]["loss"]))
    val_loss = trainer.validate()
    assert val_loss is not None and 0 < val_loss < 20
    resumed = _trainer(feature_setup, _cfg(feature_setup, tmp_path, steps=5), objective, "cuda:0")
    assert resumed.resume() and resumed.step == 4
