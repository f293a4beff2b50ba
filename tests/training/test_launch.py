"""The checkpoint fingerprint covers what changes the weights, and one registry names the
objectives for every stage (fast: no training runs)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from depthcore.config import TrackingConfig, fields_with_effect
from depthcore.training import trainer as trainer_module
from depthcore.training.launch import FACTORIES, TRAINERS, run_fingerprint
from depthcore.training.objectives import OBJECTIVES, REGISTRY, objective
from depthcore.training.pretrain import PretrainConfig
from depthcore.training.train_config import TrainConfig

# edits that leave the weights alone: a training reruns and resumes its final checkpoint
SAME_WEIGHTS = {
    "out_dir": "elsewhere", "val_split": "test", "ckpt_every": 7, "keep_ckpts": 5,
    "val_every": 3, "val_frames": 4, "val_batch_size": 3, "log_every": 2, "resume": False,
    "num_workers": 2,
}  # fmt: skip
# edits that change them: the checkpoints of the old fingerprint are thrown away
OTHER_WEIGHTS = {
    "lr": 5e-4, "steps": 301, "seed": 1, "batch_size": 4, "rollout": "expected",
    "tf_warmup_steps": 3, "loss_weighting": "scale", "precision": "bf16", "device": "cpu",
    "model": "d16", "embed_loss_weight": 0.5,
}  # fmt: skip


def _fingerprint(tmp_path: Path, objective: str = "depthart", **edits: object) -> dict:
    cfg = TrainConfig(features_dir=str(tmp_path), tokenizer=str(tmp_path / "vae"), **edits)
    return run_fingerprint(cfg, objective, REGISTRY[objective].trainer)


def test_fingerprint_ignores_bookkeeping_and_validation(tmp_path: Path) -> None:
    base = _fingerprint(tmp_path)
    for key, value in SAME_WEIGHTS.items():
        assert _fingerprint(tmp_path, **{key: value}) == base, key
    for key, value in OTHER_WEIGHTS.items():
        assert _fingerprint(tmp_path, **{key: value}) != base, key


def test_every_train_field_is_classified_by_the_fingerprint_tests() -> None:
    """A new field must say what it changes (and be covered above)."""
    weights = set(fields_with_effect(TrainConfig, "weights"))
    assert set(SAME_WEIGHTS) == set(fields_with_effect(TrainConfig, "outputs", "none"))
    assert set(OTHER_WEIGHTS) <= weights
    assert not set(SAME_WEIGHTS) & weights
    assert fields_with_effect(TrackingConfig, "weights", "outputs") == ()
    assert "prefix" in fields_with_effect(PretrainConfig, "weights")


def test_regression_steps_is_in_the_baselines_fingerprint_only(tmp_path: Path) -> None:
    for name, entry in REGISTRY.items():
        before = _fingerprint(tmp_path, name)
        after = _fingerprint(tmp_path, name, regression_steps=9)
        assert (before != after) == (entry.trainer == "regression"), name


def test_one_registry_drives_trainers_and_stages() -> None:
    assert set(TRAINERS) == set(REGISTRY) == {"depthart", "var_tf", "regression"}
    assert {TRAINERS[n] for n in REGISTRY} <= set(FACTORIES.values())
    assert set(OBJECTIVES) == {n for n, o in REGISTRY.items() if o.trainer == "transformer"}
    assert {o.scales for o in REGISTRY.values()} == {"generate", "one_pass"}
    with pytest.raises(ValueError, match="unknown objective 'depth_art'"):
        objective("depth_art")
    rollout = REGISTRY["depthart"].bound(TrainConfig(rollout="expected"))
    assert rollout.keywords == {"rollout_decoding": "expected"}
    assert REGISTRY["depthart"].bound(TrainConfig(rollout="greedy")) is OBJECTIVES["depthart"]


def test_the_trainer_names_no_objective_and_no_tokenizer_internals() -> None:
    source = inspect.getsource(trainer_module)
    for name in REGISTRY:
        assert f'"{name}"' not in source, name
    assert "quantize" not in source and "embedding.weight" not in source


def test_the_train_section_no_longer_holds_other_stages_keys() -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    moved = {"val_decoding", "figures", "num_figures", "tracking", "tracking_uri", "experiment"}
    assert not names & moved
