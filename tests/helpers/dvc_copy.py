"""A copy of the repository whose ``dvc.lock`` records placeholder outputs of every stage.

No stage runs: every declared output gets a placeholder file or folder and ``dvc commit
--force`` records them with the current code and params (seconds, not the pipeline's
minutes). Editing a file or a params key afterwards and asking ``dvc status`` tells which
stages DVC would rerun (tests/pipeline/test_code_deps.py, test_params_deps.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ALWAYS_CHANGED = {"list_source"}  # dvc.yaml `always_changed`: listed by every dvc status


def run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def dvc_status(repo: Path, keep_always_changed: bool = False) -> dict[str, Any]:
    """``dvc status --json``, without the always-changed stages unless ``keep_always_changed``."""
    status = json.loads(run(["dvc", "status", "--json"], repo) or "{}")
    if keep_always_changed:
        return status
    return {k: v for k, v in status.items() if k not in ALWAYS_CHANGED}


def _outs(stage: dict) -> list[str]:
    found = []
    for key in ("outs", "metrics", "plots"):
        for entry in stage.get(key, []):
            found.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    return found


def committed_copy(repo: Path) -> Path:
    """Copy the repository's tracked and unignored files to ``repo`` and commit placeholder
    outputs of every stage; returns ``repo``, up to date for ``dvc status``."""
    if shutil.which("dvc") is None or shutil.which("git") is None:
        raise AssertionError("dvc and git must be on PATH (make test puts the venv's bin first)")
    files = run(["git", "ls-files", "-co", "--exclude-standard"], REPO_ROOT).split()
    for rel in files:
        src = REPO_ROOT / rel
        if src.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    run(["git", "init", "-q"], repo)
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
    run(["dvc", "commit", "--force", "--quiet"], repo)
    status = dvc_status(repo)
    assert status == {}, f"a fresh commit should be up to date: {status}"
    return repo
