"""``dvc repro`` after a SIGKILL mid-training resumes from the last checkpoint and ends
with the same weights as an uninterrupted run.

The train stage runs as a real process and is killed once its first checkpoint is on
disk (plus a seeded random delay). Before the rerun, everything DVC deletes before
running the stage is deleted (the stage's outs, metrics and plots in dvc.yaml that
are not ``persist: true``), so this fails if the checkpoint folder loses its
``persist`` flag: the rerun would then train from scratch and not say "resumed".
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from depthcore.training.launch import FINGERPRINT
from tests.helpers.reliability.crash_runs import (
    checkpoint_written,
    dvc_removed_outs,
    kill_and_rerun,
    run_stage,
    train_sections,
    tree_digest,
)

ARGS = ["stages.train", "--params", "params.yaml", "--objective", "var_tf"]


def test_checkpoints_are_persisted_and_nothing_else_is() -> None:
    removed = dvc_removed_outs("train", "var_tf")
    assert "models/var_tf/ckpt" not in removed
    assert "models/var_tf/model.safetensors" in removed


def test_killed_training_resumes_to_identical_weights(feature_setup: Path, tmp_path: Path) -> None:
    sections = train_sections(feature_setup)
    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "params.yaml").write_text(yaml.safe_dump(sections))
    run_stage(ARGS, ref)
    reference = tree_digest(ref / "models/var_tf", ("model.safetensors",))

    run = kill_and_rerun(
        "train", sections, "models/var_tf", tmp_path / "killed", reference, seed=0,
        progress=checkpoint_written("models/var_tf"), stage_args=ARGS, item="var_tf",
        only=("model.safetensors",),
    )  # fmt: skip
    assert run.killed, "training finished before the kill: no crash was tested"
    assert run.note == "resumed"
    assert run.equal and run.leftovers == []


def test_checkpoints_of_other_params_are_not_resumed(feature_setup: Path, tmp_path: Path) -> None:
    """A persisted folder outlives a params change: its checkpoints must be dropped."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(train_sections(feature_setup, steps=4)))
    run_stage(ARGS, tmp_path)
    ckpt = tmp_path / "models/var_tf/ckpt"
    assert json.loads((ckpt / FINGERPRINT).read_text())["config"]["steps"] == 4
    sections = train_sections(feature_setup, steps=4)
    sections["train"]["lr"] = 5e-4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(sections))
    proc = run_stage(ARGS, tmp_path)  # without the fingerprint: "another config" error
    assert "starting fresh" in proc.stderr and "resumed" not in proc.stderr
    assert json.loads((ckpt / FINGERPRINT).read_text())["config"]["lr"] == 5e-4
