"""Screenshots of the MLflow and Prefect UIs over a finished pipeline run (docs/ui/*.png).

``python bench/screenshots/ui_screenshots.py [--work DIR] [--out docs/ui]``:

1. clones this repository into ``DIR/repo`` (a fresh clone: committed code only), shrinks
   params.yaml to the end-to-end test's tiny pipeline, starts a Prefect server on loopback
   and runs the ``retrain`` flow (every stage, via ``dvc repro``);
2. retrains with another seed and runs the flow again on the training stages and after,
   so the registry holds two versions per objective and the second flow run shows both
   "Ran" and "Up to date" stages;
3. starts ``mlflow ui`` on the run's sqlite store and drives the system Chromium
   (``/usr/bin/chromium``, Debian package ``chromium``; Playwright from PyPI, never
   ``playwright install``) through the served model's page, the last round's challenger
   version, the champion version's lineage and model card link, the compare view of every
   ranked candidate, the runs table and the Prefect flow run and its summary.

Prints the wall time of each step and the size of each PNG. Everything listens on
127.0.0.1 only; nothing is downloaded. The browser and server helpers are the browser
test's (tests/helpers/ui.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # run as a script: the repo's own tests package
from tests.helpers.net import free_port  # noqa: E402 - the loopback tools
from tests.helpers.tiny_repo import TINY  # noqa: E402 - the end-to-end tests' tiny params
from tests.helpers.ui import (  # noqa: E402
    chromium,
    mlflow_ui,
    open_page,
    prefect_env,
    prefect_server,
    save,
    shoot,
)

#: The runs-table columns a reader picks first (logged as plain names, see the glossary).
HEADLINE_COLUMNS = ("rank", "mean_abs_rel", "mean_delta1", "val_abs_rel")


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
    champion, champion_version = report["champion_after"].rsplit("/v", 1)
    return {
        "champion_version": f"#/models/{champion}/versions/{champion_version}",
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


def shoot_lineage(page: Page, url: str, path: Path) -> None:
    """A version page scrolled to its description's lineage (data hashes) and model card link."""
    open_page(page, url, "Lineage")
    page.get_by_text("Lineage", exact=True).first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    save(page, path)


def shoot_all(repo: Path, prefect: str, m_port: int, work: Path, out: Path) -> None:
    """The screenshots of docs/ui (module docstring)."""
    pages = mlflow_pages(repo)
    flow_run = latest_flow_run(f"{prefect}/api")
    with mlflow_ui(repo / "mlflow.db", m_port, work / "mlflow.log"), chromium() as page:
        ui = f"http://127.0.0.1:{m_port}/"
        shoot(page, ui + pages["product"], out / "mlflow_model_page.png", "Champion:")
        shoot(page, ui + pages["challenger_version"], out / "mlflow_challenger_version.png", "Rank")
        shoot_lineage(page, ui + pages["champion_version"], out / "mlflow_version_lineage.png")
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
