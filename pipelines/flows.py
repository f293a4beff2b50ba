"""The Prefect ``retrain`` flow: the DVC stages as tasks, then the rank table as an artifact.

Each task runs ``dvc repro <stage>`` in the repository, so Prefect and a hand-run
``dvc repro`` execute the very same stage code and ``dvc.lock`` stays the single
record of what was built from what. DVC is also the cache: a stage whose code,
params and inputs are unchanged is skipped by content hash. Prefect's own task
cache is therefore off (``NO_CACHE``): keyed on the task's arguments (a stage
name), it would skip a stage whose data had changed.
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

from depthcore.config import frozen, load_section
from stages.params import check_params

#: The pipeline in dependency order (names of dvc.yaml stages or foreach groups).
STAGES: tuple[str, ...] = (
    "synth",
    "benchmarks",
    "list_source",
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


class StageError(RuntimeError):
    """A ``dvc repro`` of one stage exited non-zero; the message carries its output tail."""


def _repro(stage: str, repo: str) -> str:
    """Run ``dvc repro <stage>`` in ``repo``, streaming its output to the Prefect log."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", stage]
    logger.info("%s$ dvc repro %s", repo, stage)
    tail: deque[str] = deque(maxlen=40)
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
            logger.info("[%s] %s", stage, line)
        rc = proc.wait()
    if rc != 0:
        raise StageError(
            f"stage {stage} failed in {repo} (dvc repro exit {rc}):\n" + "\n".join(tail)
        )
    return "\n".join(tail)


@task(name="stage", cache_policy=NO_CACHE, log_prints=True)
def run_stage_task(stage: str, repo: str) -> str:
    """One pipeline stage; its retries come from :func:`stage_task`."""
    return _repro(stage, repo)


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


@flow(name="retrain", log_prints=True)
def retrain(
    repo: str = ".", params: str = "params.yaml", stages: list[str] | None = None
) -> str | None:
    """Rebuild the pipeline stage by stage, then publish the rank table as a markdown artifact.

    ``stages`` overrides the stage list of the ``schedule`` section (e.g. only
    ``["evaluate", "register"]``). Returns the rank table markdown, if one was written.
    """
    logger = get_run_logger()
    root = Path(repo).resolve()
    cfg = load_section("schedule", ScheduleConfig, root / params)
    sections = check_params_task(str(root / params))
    logger.info("params sections checked: %s", ", ".join(sections) or "(none of depthcore's)")
    for stage in stages if stages is not None else cfg.stages:
        stage_task(stage, cfg)(stage, str(root))
    table_path = root / cfg.rank_table
    if not table_path.is_file():
        logger.warning("no rank table at %s; no artifact published", table_path)
        return None
    table_md = table_path.read_text()
    create_markdown_artifact(
        markdown=table_md,
        key="rank-table",
        description=f"Candidates ranked by the register stage ({table_path.name})",
    )
    return table_md
