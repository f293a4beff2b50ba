"""Prefect runs with parameters: UI overrides checked up front, each run a DVC experiment."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from depthcore.config import ConfigError
from pipelines.overrides import resolve_overrides, set_param_args

TOY_DVC_YAML = """\
stages:
  make:
    cmd: python toy.py make
    deps: [toy.py]
    params: [train.steps, register.objectives]
    outs: [made.txt, models]
  register:
    cmd: python toy.py register
    deps: [made.txt]
    outs:
      - outputs/register/rank_table.md
      - outputs/register/headline
      - outputs/register/comparison.md
"""

TOY = """\
import pathlib, sys, yaml
if sys.argv[1] == "make":
    p = yaml.safe_load(open("params.yaml"))
    made = f"{p['train']['steps']} {','.join(p['register']['objectives'])}"
    pathlib.Path("made.txt").write_text(made)
    for i, objective in enumerate(p["register"]["objectives"]):
        scales = pathlib.Path("models", objective, "scales.csv")
        scales.parent.mkdir(parents=True, exist_ok=True)
        scales.write_text(f"scale,abs_rel\\n1,0.{5 + i}\\n2,0.{2 + i}\\n")
else:
    out = pathlib.Path("outputs/register/rank_table.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"| candidate |\\n|---|\\n| {pathlib.Path('made.txt').read_text()} |\\n")
    head = pathlib.Path("outputs/register/headline")
    head.mkdir(exist_ok=True)
    (head / "depthart.json").write_text('{"rank": 1.5, "nyu_abs_rel": 0.11, "version": 2}')
    (head / "reference_flat.json").write_text('{"rank": 2.5, "nyu_abs_rel": 0.3}')
    pathlib.Path("outputs/register/comparison.md").write_text("## Champion decision\\nv2 wins\\n")
"""

PARAMS = """\
train:
  steps: 3
register:
  objectives: [depthart, var_tf]
schedule:
  deployment: toy
  stages: [make, register]
  download_retries: 0
  retry_delay_s: 0
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed git + DVC toy project whose params hold real depthcore sections."""
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "flow-test")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "flow-test@localhost")
    repo = tmp_path / "toy"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(TOY_DVC_YAML)
    (repo / "toy.py").write_text(TOY)
    (repo / "params.yaml").write_text(PARAMS)
    _git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], cwd=repo)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "toy")
    return repo


def test_overrides_are_checked_against_the_params_dataclasses(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    assert resolve_overrides(params) == {}
    got = resolve_overrides(params, {"train.steps": 50}, ["depthart"])
    assert got == {"train.steps": 50, "register.objectives": ["depthart"]}
    nested = {"evaluate.benchmarks.mine": {"format": "folder", "root": "data/mine"}}
    assert resolve_overrides(params, nested) == nested
    assert set_param_args(got, "params.yaml") == [
        "-S", "params.yaml:train.steps=50", "-S", 'params.yaml:register.objectives=["depthart"]',
    ]  # fmt: skip
    for bad, message in [
        ({"train.stpes": 1}, r"unknown key train.stpes in section 'train'"),
        ({"train.steps": "many"}, r"train.steps: expected an integer, got 'many'"),
        ({"trian.steps": 1}, r"unknown params section 'trian'"),
        ({"steps": 1}, r"expected 'section.key'"),
        ({"train.steps.x": 1}, r"train.steps is a value, not a section"),
        ({"schedule.cronn": "x"}, r"unknown key schedule.cronn"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve_overrides(params, bad)
    with pytest.raises(ConfigError, match="objectives: name at least one"):
        resolve_overrides(params, None, [])


def test_run_with_overrides_is_a_dvc_experiment(prefect_harness: None, git_repo: Path) -> None:
    from prefect.artifacts import Artifact

    from pipelines.flows import retrain

    table = retrain(repo=str(git_repo), overrides={"train.steps": 7}, objectives=["depthart"])
    assert table is not None and "| 7 depthart |" in table
    assert (git_repo / "params.yaml").read_text() == PARAMS  # overrides were for this run only
    exps = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=git_repo, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    names = [e.get("name") for c in json.loads(exps) for e in (c.get("experiments") or [])]
    assert any(str(n).startswith("prefect-") for n in names), exps
    summary = Artifact.get("retrain-summary")
    assert summary is not None and "| make | **Ran** |" in summary.data
    assert "| register | **Ran** |" in summary.data
    assert "train.steps=7" in summary.data
    headline = Artifact.get("headline")
    assert headline is not None
    rows = [line for line in headline.data.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["| depthart (v2) | 1.500 | 0.1100 |", "| reference_flat | 2.500 | 0.3000 |"]
    comparison = Artifact.get("comparison")
    assert comparison is not None and "## Champion decision" in comparison.data
    per_scale = Artifact.get("per-scale")  # the objectives of this run only
    assert per_scale is not None and "| scale | depthart |" in per_scale.data
    assert "| 2 | 0.2000 |" in per_scale.data and "var_tf" not in per_scale.data

    retrain(repo=str(git_repo))  # back to the committed params: rebuilt
    assert (git_repo / "made.txt").read_text() == "3 depthart,var_tf"
    retrain(repo=str(git_repo))
    summary = Artifact.get("retrain-summary")
    assert summary is not None and "0 of 2 stages ran" in summary.data, summary.data


def test_bad_override_fails_before_anything_runs(prefect_harness: None, git_repo: Path) -> None:
    from pipelines.flows import retrain

    state = retrain(repo=str(git_repo), overrides={"train.stpes": 50}, return_state=True)
    assert state.is_failed()
    with pytest.raises(ConfigError, match="unknown key train.stpes"):
        state.result()
    assert not (git_repo / "made.txt").exists() and not (git_repo / "dvc.lock").exists()


def test_overrides_need_a_git_repo(prefect_harness: None, tmp_path: Path) -> None:
    from pipelines.flows import retrain

    repo = tmp_path / "plain"
    repo.mkdir()
    (repo / "params.yaml").write_text(PARAMS)
    (repo / "dvc.yaml").write_text(TOY_DVC_YAML)
    state = retrain(repo=str(repo), overrides={"train.steps": 5}, return_state=True)
    with pytest.raises(ConfigError, match="needs a git repo"):
        state.result()
    assert textwrap.dedent(PARAMS) == (repo / "params.yaml").read_text()
