"""The Prefect ``retrain`` flow: the DVC stages as tasks, reported as a markdown summary.

Each task runs ``dvc repro <stage>`` in the repository, so Prefect and a hand-run
``dvc repro`` execute the very same stage code and ``dvc.lock`` stays the single
record of what was built from what. DVC is also the cache: a stage whose code,
params and inputs are unchanged is skipped by content hash. Prefect's own task
cache is therefore off (``NO_CACHE``): keyed on the task's arguments (a stage
name), it would skip a stage whose data had changed.

What the Prefect UI shows (issue 14): each stage task ends in a state named "Ran" or
"Up to date" (parsed from DVC's own output, :func:`parse_repro`), the run gets a
markdown ``retrain-summary`` artifact (a row per stage, links to the MLflow register
run and the champion), and the rank table is published only when ``register`` ran
(otherwise the summary says since when nothing changed). Stage names are checked
against dvc.yaml before any stage starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from depthcore.config import frozen, load_section
from pipelines.report import (
    StageReport,
    check_stage_names,
    parse_repro,
    published_rank_table,
    summary_markdown,
)
from stages.params import check_params

#: The pipeline in dependency order (names of dvc.yaml stages or foreach groups).
STAGES: tuple[str, ...] = (
    "synth",
    "benchmarks",
    "download",
    "preprocess",
    "validate",
    "tokenizer",
    "tokenizer_eval",
    "features",
    "train",
    "scales",
    "evaluate",
    "evaluate_reference",
    "register",
    "report",
)


@frozen
class ScheduleConfig:
    """The ``schedule`` section of params.yaml: the retraining deployment and its retries."""

    deployment: str = "retrain-weekly"
    cron: str = "0 3 * * 1"  # Mondays 03:00
    timezone: str = "UTC"
    stages: tuple[str, ...] = STAGES
    # the download stage talks to a remote source: retry it, the others are deterministic
    download_retries: int = 3
    retry_delay_s: int = 30
    rank_table: str = "outputs/register/rank_table.md"
    # the register stage's report (its MLflow run, champion): linked from the summary
    registry_report: str = "outputs/register/registry.json"
    # where people open MLflow (`mlflow ui`), for links in the Prefect summary
    mlflow_ui: str = "http://127.0.0.1:5000"


class StageError(RuntimeError):
    """A ``dvc repro`` of one stage exited non-zero; the message carries its output tail."""


def _repro(stage: str, repo: str) -> str:
    """Run ``dvc repro <stage>`` in ``repo``, streaming its output to the Prefect log.

    Returns the whole output (DVC prints a line per stage it ran or skipped).
    """
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", stage]
    logger.info("%s$ dvc repro %s", repo, stage)
    tail: deque[str] = deque(maxlen=40)
    lines: list[str] = []
    # stage commands say `python`: make it this interpreter (the project's environment)
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    with subprocess.Popen(
        cmd,
        cwd=repo,
        env={**os.environ, "PATH": path},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            lines.append(line)
            logger.info("[%s] %s", stage, line)
        rc = proc.wait()
    if rc != 0:
        raise StageError(
            f"stage {stage} failed in {repo} (dvc repro exit {rc}):\n" + "\n".join(tail)
        )
    return "\n".join(lines)


@task(name="stage", cache_policy=NO_CACHE, log_prints=True)
def run_stage_task(stage: str, repo: str) -> State:
    """One pipeline stage; its final state is named "Ran" or "Up to date" with the details.

    Retries come from :func:`stage_task`. The report (a :class:`StageReport`) is the
    task's result.
    """
    report = parse_repro(stage, _repro(stage, repo))
    return Completed(name=report.state_name, message=report.message, data=report)


def stage_task(stage: str, cfg: ScheduleConfig):  # noqa: ANN201 - a prefect Task
    """The task for ``stage``, with retries for the download stage only."""
    retries = cfg.download_retries if stage == "download" else 0
    return run_stage_task.with_options(
        name=f"stage-{stage}", retries=retries, retry_delay_seconds=cfg.retry_delay_s
    )


@task(name="check-params", cache_policy=NO_CACHE)
def check_params_task(params_path: str) -> list[str]:
    """Load every params section before any stage runs: a typo fails in seconds, not hours."""
    return sorted(check_params(params_path))


@flow(name="retrain", log_prints=True, validate_parameters=True)
def retrain(
    repo: str = ".",
    params: str = "params.yaml",
    stages: list[str] | None = None,
) -> str | None:
    """Rebuild the pipeline stage by stage with ``dvc repro``; report what ran and who is champion.

    Args:
        repo: The repository (DVC project) to build in; relative paths are resolved
            against the worker's current directory.
        params: The params file, relative to ``repo``; its ``schedule`` section gives the
            default stage list, retries and the MLflow UI address used in links.
        stages: Stage names of dvc.yaml to run in this order (a foreach group such as
            ``train`` runs all its members), e.g. ``["evaluate", "register"]``. Empty:
            the ``schedule.stages`` list. Unknown names fail the run before any stage runs.

    Returns the rank table markdown when ``register`` ran in this flow run, else None.
    """
    logger = get_run_logger()
    root = Path(repo).resolve()
    cfg = load_section("schedule", ScheduleConfig, root / params)
    chosen = list(stages) if stages else list(cfg.stages)
    check_stage_names(chosen, root / "dvc.yaml")
    sections = check_params_task(str(root / params))
    logger.info("params sections checked: %s", ", ".join(sections) or "(none of depthcore's)")
    reports: list[StageReport] = []
    for stage in chosen:
        # the task's final state is the Completed("Ran" | "Up to date") it returned;
        # result() is its StageReport, or raises the stage's error
        state = stage_task(stage, cfg)(stage, str(root), return_state=True)
        reports.append(state.result())
    table_md = published_rank_table(reports, root / cfg.rank_table)
    if table_md is not None:
        create_markdown_artifact(
            markdown=table_md,
            key="rank-table",
            description="Candidates ranked by the register stage of this run",
        )
    create_markdown_artifact(
        markdown=summary_markdown(
            reports, root / cfg.rank_table, root / cfg.registry_report, cfg.mlflow_ui
        ),
        key="retrain-summary",
        description="What ran, what was up to date, and the champion",
    )
    return table_md
