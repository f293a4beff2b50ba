"""A real Prefect server on loopback: the served deployment, its cron schedule, a triggered run."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.prefect_repo import make_fake_repo

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process we started (and its children, in its own session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(
        f"prefect server not healthy at {url} after {timeout} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture()
def prefect_server(prefect_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """``prefect server start`` on a free loopback port; yields the env for its clients."""
    port = _free_port()
    env = {
        **os.environ,
        **prefect_env,
        "PREFECT_HOME": str(tmp_path / "server_home"),
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, proc, log)
        yield {**env, "PREFECT_API_URL": url}
    finally:
        _stop(proc)


async def _deployment_and_run(name: str, timeout: float) -> tuple:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    async with get_client() as client:
        deadline = time.monotonic() + timeout
        while True:
            try:
                deployment = await client.read_deployment_by_name(name)
                break
            except Exception:  # noqa: BLE001 - ObjectNotFound until serve registers it
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
        flow_run = await run_deployment(name, client=client, timeout=timeout, poll_interval=1)
        return deployment, flow_run


def test_served_deployment_has_cron_and_runs_on_demand(
    prefect_server: dict[str, str], tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    repo = make_fake_repo(tmp_path / "toy", ["download", "make", "register"])
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        serve = subprocess.Popen(
            [sys.executable, "-m", "pipelines.serve", "--repo", str(repo)],
            cwd=REPO_ROOT, env=prefect_server, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
            deployment, flow_run = asyncio.run(_deployment_and_run("retrain/toy-retrain", 120))
    finally:
        _stop(serve)
    assert [s.schedule.cron for s in deployment.schedules] == ["15 4 * * 2"], log.read_text()
    assert deployment.schedules[0].schedule.timezone == "UTC"
    assert deployment.parameters["repo"] == str(repo)
    properties = deployment.parameter_openapi_schema["properties"]
    assert {"overrides", "objectives"} <= set(properties)  # UI fields of a custom run
    assert flow_run.state is not None and flow_run.state.is_completed(), log.read_text()[-3000:]
    assert (repo / "outputs" / "register" / "rank_table.md").is_file()
