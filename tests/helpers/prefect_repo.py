"""Fixtures for the orchestration tests: an isolated Prefect home and a tiny real DVC project."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

# A three-stage DVC project: a flaky "download" (fails on its first attempt, to exercise
# Prefect retries), a stage reading a params key, and a "register" writing a rank table.
FAKE_DVC_YAML = """\
stages:
  download:
    cmd: python toy.py download
    deps: [toy.py]
    outs: [raw.txt]
  make:
    cmd: python toy.py make
    deps: [raw.txt]
    params: [toy.n]
    outs: [made.txt]
  register:
    cmd: python toy.py register
    deps: [made.txt]
    outs: [outputs/register/rank_table.md]
"""

TOY_STAGES = """\
import pathlib, sys
import yaml

stage = sys.argv[1]
if stage == "download":
    counter = pathlib.Path("attempts.txt")
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    if n == 0:
        sys.exit("simulated network failure")
    pathlib.Path("raw.txt").write_text("raw")
elif stage == "make":
    n = yaml.safe_load(open("params.yaml"))["toy"]["n"]
    pathlib.Path("made.txt").write_text(str(n))
elif stage == "register":
    out = pathlib.Path("outputs/register/rank_table.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("| candidate | rank |\\n|---|---|\\n| toy/v1 | 1.000 |\\n")
"""


def make_fake_repo(root: Path, stages: list[str]) -> Path:
    """Write and ``dvc init`` the toy project; its params carry a ``schedule`` section."""
    root.mkdir(parents=True)
    (root / "dvc.yaml").write_text(FAKE_DVC_YAML)
    (root / "toy.py").write_text(TOY_STAGES)
    params = f"""\
        toy:
          n: 3
        schedule:
          deployment: toy-retrain
          cron: "15 4 * * 2"
          timezone: UTC
          stages: {stages}
          download_retries: 2
          retry_delay_s: 0
          rank_table: outputs/register/rank_table.md
        """
    (root / "params.yaml").write_text(textwrap.dedent(params))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "config", "core.analytics", "false"], cwd=root, check=True
    )
    return root


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """PREFECT_HOME in a temp dir and analytics off, for this process and its children."""
    home = tmp_path_factory.mktemp("prefect_home")
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def prefect_harness(prefect_env: dict[str, str]) -> Iterator[None]:
    """One temporary Prefect API for every flow test of the session (~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
