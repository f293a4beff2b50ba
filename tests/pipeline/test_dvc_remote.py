"""A team's DVC remote on S3 (SeaweedFS): push from one clone, pull in another, nothing to redo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.servers import WEED_BUCKET, WEED_KEY, WEED_SECRET

DVC_YAML = """\
stages:
  make:
    cmd: python -c "import yaml, pathlib; n = yaml.safe_load(open('params.yaml'))['n']; pathlib.Path('data.txt').write_text('x' * n)"
    params: [n]
    outs: [data.txt]
  count:
    cmd: python -c "import pathlib; pathlib.Path('count.txt').write_text(str(len(open('data.txt').read())))"
    deps: [data.txt]
    outs: [count.txt]
"""  # noqa: E501


def _env(tmp_path: Path) -> dict[str, str]:
    """No AWS variables: the credentials must come from .dvc/config.local alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none")
    )
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@localhost",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@localhost",
    )
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _dvc(cwd: Path, env: dict[str, str], *args: str) -> str:
    return _run([sys.executable, "-m", "dvc", *args], cwd, env)


def _add_credentials(repo: Path, env: dict[str, str]) -> None:
    _dvc(repo, env, "remote", "modify", "--local", "team", "access_key_id", WEED_KEY)
    _dvc(repo, env, "remote", "modify", "--local", "team", "secret_access_key", WEED_SECRET)


@pytest.mark.integration
def test_push_from_one_clone_pull_in_another_then_nothing_to_compute(
    seaweedfs: str, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    probe = subprocess.run([sys.executable, "-c", "import dvc_s3"], env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("dvc-s3 is not installed (pip install dvc-s3)")
    alice = tmp_path / "alice"
    alice.mkdir()
    (alice / "dvc.yaml").write_text(DVC_YAML)
    (alice / "params.yaml").write_text("n: 5\n")
    _run(["git", "init", "-q"], alice, env)
    _dvc(alice, env, "init", "-q")
    _dvc(alice, env, "config", "core.analytics", "false")
    remote = f"s3://{WEED_BUCKET}/dvc-team-{tmp_path.name}"
    _dvc(alice, env, "remote", "add", "-d", "team", remote)
    _dvc(alice, env, "remote", "modify", "team", "endpointurl", seaweedfs)
    _add_credentials(alice, env)
    _dvc(alice, env, "repro")
    _run(["git", "add", "-A"], alice, env)
    _run(["git", "commit", "-q", "-m", "pipeline"], alice, env)
    assert WEED_SECRET not in (alice / ".dvc" / "config").read_text()  # committed: no secret
    assert WEED_SECRET in (alice / ".dvc" / "config.local").read_text()  # git-ignored
    assert "2 files pushed" in _dvc(alice, env, "push")

    bob = tmp_path / "bob"
    _run(["git", "clone", "-q", str(alice), str(bob)], tmp_path, env)
    assert not (bob / "data.txt").exists()
    _add_credentials(bob, env)
    assert "2 files fetched" in _dvc(bob, env, "pull")  # the remote fills the fresh cache
    assert (bob / "count.txt").read_text() == "5"
    assert "Data and pipelines are up to date" in _dvc(bob, env, "status")
    again = _dvc(bob, env, "repro")
    assert "Running stage" not in again and "Data and pipelines are up to date" in again, again
