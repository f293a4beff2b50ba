"""Editing a metric or a figure module never marks a training stage as changed in DVC.

A copy of the repository gets placeholder outputs for every stage and a
``dvc commit`` that records them in ``dvc.lock`` (no stage runs: seconds, not the
pipeline's minutes); then a comment is appended to a metric module and to the figure
module, and ``dvc status`` must list the evaluation stages but no tokenizer or training.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING = {
    "tokenizer", "features", "pretrain", "train@depthart", "train@var_tf", "train@regression",
}  # fmt: skip
ALWAYS_CHANGED = {"list_source"}  # dvc.yaml `always_changed`: listed by every dvc status


def _status(repo: Path) -> dict:
    status = json.loads(_run(["dvc", "status", "--json"], repo) or "{}")
    return {k: v for k, v in status.items() if k not in ALWAYS_CHANGED}


def _run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _outs(stage: dict) -> list[str]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []):
            found.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return found


@pytest.fixture(scope="module")
def committed_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dvc") is None or shutil.which("git") is None:
        pytest.fail("dvc and git must be on PATH (make test puts the venv's bin first)")
    repo = tmp_path_factory.mktemp("deps") / "repo"
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], REPO_ROOT).split()
    for rel in files:
        src = REPO_ROOT / rel
        if src.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    _run(["git", "init", "-q"], repo)
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for stage in stages.values():
        items = stage.get("foreach", [None])
        if isinstance(items, str):  # ${register.objectives} and the like
            section, key = items.strip("${}").split(".")
            items = params[section][key]
        body = stage.get("do", stage)
        for item in items:
            for out in _outs(body):
                path = repo / (out.replace("${item}", item) if item else out)
                if path.suffix:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("{}\n" if path.suffix == ".json" else "placeholder\n")
                else:
                    path.mkdir(parents=True, exist_ok=True)
                    (path / "placeholder.txt").write_text("placeholder\n")
    _run(["dvc", "commit", "--force", "--quiet"], repo)
    status = _status(repo)
    assert status == {}, f"a fresh commit should be up to date: {status}"
    return repo


def _changed_after_edit(repo: Path, module: str) -> set[str]:
    path = repo / module
    original = path.read_text()
    path.write_text(original + "\n# an innocent comment\n")
    try:
        return set(_status(repo))
    finally:
        path.write_text(original)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("module", "must_change"),
    [
        ("depthcore/evaluation/planarity.py", {"evaluate@depthart", "evaluate@var_tf"}),
        ("depthcore/evaluation/metrics.py", {"tokenizer_eval", "scales@depthart", "register"}),
        ("depthcore/viz.py", {"scales@depthart", "scales@var_tf"}),
    ],
)
def test_metric_and_plot_edits_leave_training_clean(
    committed_copy: Path, module: str, must_change: set[str]
) -> None:
    changed = _changed_after_edit(committed_copy, module)
    assert must_change <= changed, f"{module}: expected {must_change} to rerun, got {changed}"
    assert not changed & TRAINING, f"{module} would retrain: {sorted(changed & TRAINING)}"


@pytest.mark.integration
def test_a_model_edit_does_retrain(committed_copy: Path) -> None:
    """The check above is not vacuous: editing the transformer marks both trainings."""
    changed = _changed_after_edit(committed_copy, "depthcore/models/var.py")
    assert {"train@depthart", "train@var_tf"} <= changed
