"""A 2-point sweep through the real `dvc exp run --queue` / `dvc queue start` on a tiny copy
of the repository; the collector's table must hold both experiments, each with its own
parameter value and finite metrics read back from `dvc exp show`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.helpers.tiny_repo import make_tiny_repo, run_checked

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_sweep_queues_runs_and_tabulates_dvc_experiments(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    env = make_tiny_repo(repo)
    table_md = tmp_path / "sweep.md"
    cmd = [sys.executable, "-m", "bench.learning.sweep", "--grid", "train.lr=1e-3,3e-3",
           "--out", str(table_md)]  # fmt: skip
    out = run_checked(cmd, repo, env, 840)

    lines = table_md.read_text().strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert header[:2] == ["experiment", "train.lr"], out[-3000:]
    assert [r[0] for r in rows] == ["sweep-1", "sweep-2"]
    assert [float(r[1]) for r in rows] == [1e-3, 3e-3]  # each point ran with its own value
    assert "depthart tum" in header and "var_tf scale last" in header
    for row in rows:
        metrics = [float(c) for c in row[2:]]
        assert len(metrics) == 2 * (4 + 2) and all(math.isfinite(m) and m > 0 for m in metrics)

    # the same experiments, as a user sees them in DVC: params and committed metrics
    shown = json.loads(run_checked([sys.executable, "-m", "dvc", "exp", "show", "--json"],
                                   repo, env, 120))  # fmt: skip
    revs = {
        rev["name"]: rev["data"]
        for baseline in shown
        for exp in baseline.get("experiments") or []
        for rev in exp["revs"]
    }
    assert set(revs) == {"sweep-1", "sweep-2"}
    losses = []
    for name, lr in (("sweep-1", 1e-3), ("sweep-2", 3e-3)):
        assert revs[name]["params"]["params.yaml"]["data"]["train"]["lr"] == lr
        trained = revs[name]["metrics"]["models/depthart/train_metrics.json"]["data"]
        losses.append(trained["loss_final"])
    assert losses[0] != losses[1]  # the training itself read the swept value
