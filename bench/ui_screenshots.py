"""Screenshots of the MLflow and Prefect UIs over a finished pipeline run (docs/ui/*.png).

``python bench/ui_screenshots.py [--work DIR] [--out docs/ui]``:

1. clones this repository into ``DIR/repo`` (a fresh clone: committed code only), shrinks
   params.yaml to the end-to-end test's tiny pipeline, starts a Prefect server on loopback
   and runs the ``retrain`` flow (every stage, via ``dvc repro``);
2. retrains with another seed and runs the flow again on the training stages and after,
   so the registry holds two versions per objective and the second flow run shows both
   "Ran" and "Up to date" stages;
3. starts ``mlflow ui`` on the run's sqlite store and drives the system Chromium
   (``/usr/bin/chromium``, Debian package ``chromium``; Playwright from PyPI, never
   ``playwright install``) through the served model's page, the last round's challenger
   version, the compare view of every ranked candidate, the runs table and the Prefect
   flow run and its summary.

Prints the wall time of each step and the size of each PNG. Everything listens on
127.0.0.1 only; nothing is downloaded. The helpers are reused by the screenshot test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script: the repo's own tests package
from tests.helpers.tiny_repo import TINY  # noqa: E402 - the end-to-end tests' tiny params

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 860}
#: The runs-table columns a reader picks first (logged as plain names, see the glossary).
HEADLINE_COLUMNS = ("rank", "mean_abs_rel", "mean_delta1", "val_abs_rel")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    """Poll ``url`` until it answers 200; fail naming the URL (and the log) if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


@contextlib.contextmanager
def serving(cmd: list[str], health: str, log: Path, env: dict[str, str]) -> Iterator[None]:
    """Run a server process until the block ends (terminated, then killed if it lingers)."""
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            wait_http(health, 90, proc)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def mlflow_ui(db: Path, port: int, log: Path) -> contextlib.AbstractContextManager[None]:
    """``mlflow ui`` on loopback over the sqlite store ``db``."""
    cmd = [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return serving(cmd, f"http://127.0.0.1:{port}/health", log, env)


def prefect_server(home: Path, port: int, log: Path) -> contextlib.AbstractContextManager[None]:
    """A Prefect server on loopback with its database under ``home``."""
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    env = {**os.environ, **prefect_env(home, port)}
    return serving(cmd, f"http://127.0.0.1:{port}/api/health", log, env)


def prefect_env(home: Path, port: int) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def open_page(page: Page, url: str, wait_text: str) -> None:
    """Open ``url`` and wait until ``wait_text`` is visible; close MLflow's assistant panel."""
    page.goto(url)
    page.get_by_text(wait_text, exact=False).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # charts and lazy panels settle
    assistant = page.get_by_role("button", name="Close", exact=True)
    if assistant.count() == 1 and assistant.is_visible():
        assistant.click()  # MLflow 3's assistant panel opens on first load, over the page
        page.wait_for_timeout(500)


def save(page: Page, path: Path) -> None:
    """The viewport as a 128-colour PNG (a fifth of the RGB file's size)."""
    from PIL import Image

    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def shoot(page: Page, url: str, path: Path, wait_text: str) -> None:
    """Open ``url``, wait for ``wait_text``, save the viewport."""
    open_page(page, url, wait_text)
    save(page, path)


def click_text(page: Page, text: str) -> None:
    page.get_by_text(text, exact=True).first.click()
    page.wait_for_timeout(1500)


def toggle_columns(page: Page, names: list[str]) -> None:
    """Toggle ``names`` in the runs table's column picker (MLflow 3 shows no metric by default).

    The picker highlights the searched part of each label, so the label is found as the
    element whose whole text is the name (not a longer name starting with it).
    """
    page.get_by_role("button", name="Columns").click()
    search = page.get_by_placeholder("Search columns")
    for name in names:
        search.fill(name)
        page.wait_for_timeout(500)
        page.locator(f"xpath=//*[strong and normalize-space(.)='{name}']").first.click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1000)


@contextlib.contextmanager
def chromium() -> Iterator[Page]:
    """A Playwright page in the system Chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-4000:]}"
                           f"{proc.stderr[-4000:]}")  # fmt: skip
    print(f"  {' '.join(cmd[:6])}: {time.monotonic() - t0:.0f} s", flush=True)


def prepare_repo(work: Path, env: dict[str, str]) -> Path:
    """A fresh clone with the end-to-end test's tiny params (committed, so runs name a commit)."""
    repo = work / "repo"
    _run(["git", "clone", "-q", str(REPO_ROOT), str(repo)], work, env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, overrides in TINY.items():
        params[section].update(overrides)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "commit", "-qam", "tiny params for the UI screenshots"], repo, env)
    return repo


def run_flow(repo: Path, env: dict[str, str], stages: list[str] | None) -> str:
    """Run ``retrain`` in a child process against the server in ``env``; returns its run id."""
    code = (
        "import json, sys; from pipelines.flows import retrain; "
        "s = retrain(repo='.', stages=json.loads(sys.argv[1]), return_state=True); "
        "print('FLOW_RUN', s.state_details.flow_run_id); s.result()"
    )
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(stages)], cwd=repo, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"retrain flow failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    print(f"  retrain {stages or 'all stages'}: {time.monotonic() - t0:.0f} s", flush=True)
    return next(ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("FLOW_RUN"))


def mlflow_pages(repo: Path) -> dict[str, str]:
    """URL fragments of the pages to shoot, read from the finished run's registry."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    report = json.loads((repo / "outputs" / "register" / "registry.json").read_text())
    exp = client.get_experiment_by_name("depthart").experiment_id
    ranked = [  # every ranked candidate: trained models and reference predictors
        r for r in client.search_runs([exp], max_results=200)
        if r.data.tags.get("stage") in ("train", "evaluate_reference") and "rank" in r.data.metrics
    ]  # fmt: skip
    ids = json.dumps([r.info.run_id for r in ranked])
    # the version judged in the last round: its description compares it with the champion
    name, version = (report["decision"].get("challenger") or report["champion_after"]).rsplit(
        "/v", 1
    )
    return {
        "product": "#/models/depthart",
        "challenger_version": f"#/models/{name}/versions/{version}",
        "compare": f"#/compare-runs?runs={ids}&experiments={json.dumps([exp])}",
        "runs": f"#/experiments/{exp}/runs",
    }


def latest_flow_run(api: str) -> str:
    """The id of the most recent flow run, from the Prefect REST API."""
    body = json.dumps({"sort": "START_TIME_DESC", "limit": 1}).encode()
    req = urllib.request.Request(f"{api}/flow_runs/filter", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        runs = json.loads(resp.read())
    if not runs:
        raise RuntimeError(f"no flow run at {api}")
    return runs[0]["id"]


def make_runs(work: Path, env: dict[str, str]) -> Path:
    """Round 1 (every stage of a fresh clone) and round 2 (retrain with another seed)."""
    print("round 1: fresh clone, every stage", flush=True)
    repo = prepare_repo(work, env)
    env["PYTHONPATH"] = str(repo)
    run_flow(repo, env, None)
    print("round 2: retrain with another seed", flush=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["seed"] = int(params["train"].get("seed", 0)) + 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "commit", "-qam", "retrain with another seed"], repo, env)
    # features and the references are untouched by a seed: the run shows "Up to date" too
    stages = ["features", "train", "scales", "evaluate", "evaluate_reference", "register"]
    run_flow(repo, env, stages)
    return repo


def shoot_all(repo: Path, prefect: str, m_port: int, work: Path, out: Path) -> None:
    """The screenshots of docs/ui (module docstring)."""
    pages = mlflow_pages(repo)
    flow_run = latest_flow_run(f"{prefect}/api")
    with mlflow_ui(repo / "mlflow.db", m_port, work / "mlflow.log"), chromium() as page:
        ui = f"http://127.0.0.1:{m_port}/"
        shoot(page, ui + pages["product"], out / "mlflow_model_page.png", "Champion:")
        shoot(page, ui + pages["challenger_version"], out / "mlflow_challenger_version.png", "Rank")
        open_page(page, ui + pages["compare"], "Comparing")
        click_text(page, "Visualizations")  # folded: the metrics table comes up
        click_text(page, "Parameters")
        save(page, out / "mlflow_compare_candidates.png")
        open_page(page, ui + pages["runs"], "reference-")
        toggle_columns(page, ["Dataset", "Source", *HEADLINE_COLUMNS])  # off, then on
        save(page, out / "mlflow_runs_table.png")
        open_page(page, f"{prefect}/runs/flow-run/{flow_run}", "retrain")
        click_text(page, "Task Runs")
        save(page, out / "prefect_flow_run.png")
        click_text(page, "Artifacts")
        click_text(page, "retrain-summary")
        save(page, out / "prefect_summary.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/depthart-ui"))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "ui")
    parser.add_argument(
        "--shots-only", action="store_true", help="reuse the finished runs in --work"
    )
    args = parser.parse_args(argv)
    work, out = args.work.resolve(), args.out.resolve()
    work.mkdir(parents=True, exist_ok=args.shots_only)
    out.mkdir(parents=True, exist_ok=True)
    p_port, m_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    env |= prefect_env(work / "prefect", p_port) | {"DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with prefect_server(work / "prefect", p_port, work / "prefect.log"):
        repo = work / "repo" if args.shots_only else make_runs(work, env)
        shoot_all(repo, f"http://127.0.0.1:{p_port}", m_port, work, out)
    for png in sorted(out.glob("*.png")):
        print(f"{png}: {png.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
