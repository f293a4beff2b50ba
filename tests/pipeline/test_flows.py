"""The ``retrain`` flow under a temporary Prefect API, on a tiny real DVC project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.prefect_repo import make_fake_repo

pytestmark = pytest.mark.slow


def test_retrain_runs_stages_retries_download_and_publishes_rank_table(
    prefect_harness: None, tmp_path: Path
) -> None:
    from prefect.artifacts import Artifact

    from pipelines.flows import retrain

    repo = make_fake_repo(tmp_path / "toy", ["download", "make", "register"])
    table = retrain(repo=str(repo))
    assert table is not None and "| toy/v1 | 1.000 |" in table
    assert (repo / "made.txt").read_text() == "3"
    assert (repo / "attempts.txt").read_text() == "2"  # failed once, retried by Prefect
    assert "make:" in (repo / "dvc.lock").read_text()  # dvc stays the record
    artifact = Artifact.get("rank-table")
    assert artifact is not None and "toy/v1" in artifact.data

    # a rerun is a no-op for dvc and still publishes the table
    assert retrain(repo=str(repo), stages=["make", "register"]) == table
    assert (repo / "attempts.txt").read_text() == "2"


def test_failed_stage_fails_the_flow_naming_the_stage(
    prefect_harness: None, tmp_path: Path
) -> None:
    from pipelines.flows import retrain

    repo = make_fake_repo(tmp_path / "toy", ["download", "make", "register"])
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("n: 3", "m: 3"))
    state = retrain(repo=str(repo), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="stage make failed in"):
        state.result()
