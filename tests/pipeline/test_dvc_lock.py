"""Two ``dvc repro`` at once: the second stops at once with DVC's lock message naming the
first process, and the first finishes normally (nothing half-written by two writers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DVC_YAML = """\
stages:
  slow:
    cmd: >-
      python -c "open('started', 'w').close(); import time; time.sleep(4);
      open('out.txt', 'w').write('x')"
    outs:
      - out.txt
"""


def test_second_repro_gets_the_lock_message(tmp_path: Path) -> None:
    dvc = shutil.which("dvc")
    assert dvc, "dvc is installed with the project"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    first = subprocess.Popen([dvc, "repro"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists():
        assert first.poll() is None and time.monotonic() < deadline, "first repro did not start"
        time.sleep(0.05)
    second = subprocess.run([dvc, "repro"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    out, _ = first.communicate(timeout=60)
    assert second.returncode != 0
    assert "is busy, it is being blocked by" in second.stderr + second.stdout
    assert f"(PID {first.pid})" in second.stderr + second.stdout
    assert first.returncode == 0, out
    assert (tmp_path / "out.txt").read_text() == "x"
