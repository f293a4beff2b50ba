"""The ``retrain`` flow under a temporary Prefect API, on a tiny real DVC project.

Asserted through the Prefect client (the REST API the UI reads): task state names
say whether DVC ran a stage, the summary artifact says what ran and since when
nothing changed, and the rank table is published only by a run whose register ran.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipelines.report import check_stage_names, parse_repro
from tests.helpers.prefect_repo import FAKE_DVC_YAML, make_fake_repo


def _task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def fetch():
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            names = {r.name.rsplit("-", 1)[0]: r.state.name for r in runs}
            return {k: v for k, v in names.items() if k.startswith("stage-")}

    return asyncio.run(fetch())


def _artifact(key: str, flow_run_id) -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def fetch():
        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
            return {a.key: a.data for a in arts}

    return asyncio.run(fetch()).get(key)


def test_retrain_reports_what_ran_and_publishes_only_fresh_results(
    prefect_harness: None, tmp_path: Path
) -> None:
    from pipelines.flows import retrain

    repo = make_fake_repo(tmp_path / "toy", ["download", "make", "register"])
    (repo / "outputs" / "register").mkdir(parents=True)
    (repo / "outputs" / "register" / "registry.json").write_text(json.dumps({
        "registered_model": "depthart", "champion_after": "var-tf-tiny/v1",
        "register_run_id": "0123456789abcdef", "register_experiment_id": "1",
        "reason": "var-tf-tiny/v1 (rank 1.500) is the first champion"}))  # fmt: skip
    state = retrain(repo=str(repo), return_state=True)
    assert state.is_completed()
    table = state.result()
    assert table is not None and "| toy/v1 | 1.000 |" in table
    assert (repo / "made.txt").read_text() == "3"
    assert (repo / "attempts.txt").read_text() == "2"  # failed once, retried by Prefect
    run_id = state.state_details.flow_run_id
    states = _task_states(run_id)
    assert states == {"stage-download": "Ran", "stage-make": "Ran", "stage-register": "Ran"}
    summary = _artifact("retrain-summary", run_id)
    assert "## Retrain: 3 of 3 stages ran" in summary
    assert "| make | **Ran** | ran make; 1 unchanged |" in summary
    assert "http://127.0.0.1:5000/#/models/var-tf-tiny/versions/1" in summary
    assert "/#/experiments/1/runs/0123456789abcdef" in summary
    assert "toy/v1" in _artifact("rank-table", run_id)

    # a rerun is a no-op for dvc: tasks say so, no rank table is presented as this run's
    again = retrain(repo=str(repo), stages=["make", "register"], return_state=True)
    assert again.result() is None
    run_id = again.state_details.flow_run_id
    assert set(_task_states(run_id).values()) == {"Up to date"}
    summary = _artifact("retrain-summary", run_id)
    assert "## Retrain: 0 of 2 stages ran" in summary
    assert "`register` did not run: nothing changed since 20" in summary
    assert _artifact("rank-table", run_id) is None
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


def test_unknown_stage_fails_before_any_stage_runs(prefect_harness: None, tmp_path: Path) -> None:
    from pipelines.flows import retrain

    repo = make_fake_repo(tmp_path / "toy", ["download", "make", "register"])
    state = retrain(repo=str(repo), stages=["download", "trian"], return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"unknown stage\(s\) \['trian'\]"):
        state.result()
    assert not (repo / "attempts.txt").exists()  # download never started


def test_parse_repro_tells_ran_from_unchanged_and_cached() -> None:
    out = "\n".join([
        "Stage 'a' didn't change, skipping",
        "Running stage 'train@depthart':",
        "> python -m stages.train",
        "Stage 'train@var_tf' is cached - skipping run, checking out outputs",
    ])  # fmt: skip
    report = parse_repro("train", out)
    assert report.did_run and report.state_name == "Ran"
    assert report.message == "ran train@depthart; restored train@var_tf; 1 unchanged"
    assert not parse_repro("a", out).did_run  # an upstream stage ran, not this one
    assert parse_repro("a", "Data and pipelines are up to date.").message == "up to date"


def test_stage_names_are_checked_against_dvc_yaml(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(FAKE_DVC_YAML)
    check_stage_names(["download", "make@x"], tmp_path / "dvc.yaml")
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['mkae'\]"):
        check_stage_names(["mkae"], tmp_path / "dvc.yaml")


def test_flow_parameters_are_described() -> None:
    from prefect.utilities.callables import parameter_schema

    from pipelines.flows import retrain

    props = parameter_schema(retrain.fn).model_dump()["properties"]
    assert set(props) == {"repo", "params", "stages", "overrides", "objectives"}
    assert all(len(p.get("description", "")) > 20 for p in props.values())
