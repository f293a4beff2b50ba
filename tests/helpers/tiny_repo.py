"""A tiny copy of this repository for tests that drive the real DVC pipeline (`dvc repro`,
`dvc exp run`): what a fresh clone holds, committed to a new git repo, with params small
enough that every stage runs in seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

# The smallest pipeline that still exercises every stage: a handful of frames, a few steps.
TINY = {
    "synth": {
        "n_scenes": 4, "cameras_per_scene": 1, "frames_per_camera": 3, "height": 64,
        "width": 64, "val_scenes": 1, "test_scenes": 1, "lens_shift_scenes": 1,
        "window_views": 1, "flat_views": 1, "excluded_frames": 1,
        "closeup_cameras": 0,  # its one camera per scene stays a room view
    },
    "benchmarks": {"images": 2, "height": 48, "width": 64},
    "tokenizer": {"steps": 3, "batch_size": 2},
    "tokenizer_eval": {"frames": 2},
    "features": {"batch_size": 4},
    "pretrain": {
        "steps": 3, "batch_size": 2, "warmup_steps": 0, "ckpt_every": 0, "val_frames": 2,
        "val_batch_size": 2, "log_every": 1,
    },
    "train": {
        "steps": 3, "batch_size": 2, "warmup_steps": 0, "ckpt_every": 0, "val_frames": 2,
        "val_batch_size": 2, "log_every": 1,
        "regression_steps": 3,  # else the baseline runs its full 1000 (minutes here)
    },
    "scales": {"frames": 2, "batch_size": 2, "num_figures": 1},
    "evaluate": {"num_panels": 1, "batch_size": 2},
}  # fmt: skip


def copy_repo(dst: Path) -> None:
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


def tiny_params(path: Path) -> None:
    """Overwrite the TINY keys of a params.yaml in place (every other key kept)."""
    params = yaml.safe_load(path.read_text())
    for section, overrides in TINY.items():
        params[section].update(overrides)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def repo_env(repo: Path) -> dict[str, str]:
    """The environment a pipeline subprocess in ``repo`` runs with: this interpreter's tools
    first on PATH, the copy's own packages importable, no inherited tracking servers, and a
    git identity (DVC experiments commit)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "PREFECT_API"))
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(repo),  # the copy's depthcore, not the editable install's
        GIT_AUTHOR_NAME="e2e", GIT_AUTHOR_EMAIL="e2e@localhost",
        GIT_COMMITTER_NAME="e2e", GIT_COMMITTER_EMAIL="e2e@localhost",
    )  # fmt: skip
    return env


def run_checked(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run ``cmd``; its combined output, or a failed assertion quoting the output's tail."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-6000:]}"
    return out


def make_tiny_repo(repo: Path) -> dict[str, str]:
    """Copy the repository to ``repo`` with TINY params, ``git init`` and commit it; returns
    the environment to run its pipeline with."""
    copy_repo(repo)
    tiny_params(repo / "params.yaml")
    env = repo_env(repo)
    run_checked(["git", "init", "-q"], repo, env, 60)
    run_checked(["git", "add", "-A"], repo, env, 60)
    run_checked(["git", "commit", "-q", "-m", "copy"], repo, env, 60)
    return env
