"""The Prefect ``retrain`` flow: the DVC stages (or one DVC experiment), then summary artifacts.

In a git repository the run is one DVC experiment (``dvc exp run --name
prefect-<flow run> -S key=value ... <stages>``): the UI's overrides become ``-S``
params, checked against the params dataclasses before anything runs, and every
Prefect run is listed by ``dvc exp show``. Elsewhere each stage is a ``dvc repro
<stage>`` task. Either way Prefect and a hand-run ``dvc repro`` execute the very same
stage code and ``dvc.lock`` stays the single record of what was built from what.
DVC is also the cache: a stage whose code, params and inputs are unchanged is
skipped by content hash. Prefect's own task
cache is therefore off (``NO_CACHE``): keyed on the task's arguments (a stage
name), it would skip a stage whose data had changed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from depthcore.config import ConfigError, from_dict, frozen, load_section, read_params
from depthcore.tracking.registry import RegisterConfig
from pipelines.overrides import resolve_overrides, set_param_args
from pipelines.reports import headline_markdown, per_scale_markdown
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
    """A ``dvc`` command exited non-zero; the message carries its output tail."""


#: Stages that run on every repro by design (dvc.yaml ``always_changed``): their running
#: alone means nothing was rebuilt.
ALWAYS_RUN = frozenset({"list_source"})
_RUNNING = re.compile(r"Running stage '([^']+)'")
_SKIPPED = re.compile(r"Stage '([^']+)' didn't change, skipping")


@dataclass
class DvcOutcome:
    """What one dvc command did: the stages it executed and skipped, and its output tail."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tail: str = ""


def _dvc(args: list[str], repo: str, label: str) -> DvcOutcome:
    """Run ``dvc <args>`` in ``repo``, streaming its output to the Prefect log."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", *args]
    logger.info("%s$ dvc %s", repo, " ".join(args))
    tail: deque[str] = deque(maxlen=40)
    outcome = DvcOutcome()
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
            logger.info("[%s] %s", label, line)
            for pattern, into in ((_RUNNING, outcome.ran), (_SKIPPED, outcome.skipped)):
                match = pattern.search(line)
                if match:
                    into.append(match.group(1))
        rc = proc.wait()
    outcome.tail = "\n".join(tail)
    if rc != 0:
        raise StageError(
            f"stage {label} failed in {repo} (dvc {args[0]} exit {rc}):\n" + outcome.tail
        )
    return outcome


@task(name="stage", cache_policy=NO_CACHE, log_prints=True)
def run_stage_task(stage: str, repo: str) -> DvcOutcome:
    """One pipeline stage (``dvc repro <stage>``); its retries come from :func:`stage_task`."""
    return _dvc(["repro", stage], repo, stage)


def stage_task(stage: str, cfg: ScheduleConfig):  # noqa: ANN201 - a prefect Task
    """The task for ``stage``, with retries for the download stage only."""
    retries = cfg.download_retries if stage == "download" else 0
    return run_stage_task.with_options(
        name=f"stage-{stage}", retries=retries, retry_delay_seconds=cfg.retry_delay_s
    )


@task(name="experiment", cache_policy=NO_CACHE, log_prints=True)
def experiment_task(repo: str, name: str, set_args: list[str], stages: list[str]) -> DvcOutcome:
    """The stages as one DVC experiment (``dvc exp run``); a retry reruns only what is not
    built yet, so it carries the download's retries."""
    return _dvc(["exp", "run", "--name", name, *set_args, *stages], repo, "experiment")


@task(name="check-params", cache_policy=NO_CACHE)
def check_params_task(
    params_path: str, overrides: dict[str, Any] | None, objectives: list[str] | None
) -> tuple[list[str], dict[str, Any]]:
    """Load every params section and check the run's overrides before any stage runs:
    a typo fails in seconds, not hours."""
    checked = resolve_overrides(params_path, overrides, objectives)
    return sorted(check_params(params_path)), checked


def summarise(outcomes: list[DvcOutcome], experiment: str | None, overrides: dict) -> str:
    """The run's markdown summary: what was rebuilt, or that nothing needed to be."""
    ran = [s for o in outcomes for s in o.ran]
    skipped = [s for o in outcomes for s in o.skipped if s not in ran]
    rebuilt = [s for s in ran if s not in ALWAYS_RUN]
    lines = ["# Retrain run", ""]
    if experiment:
        lines.append(f"DVC experiment: `{experiment}` (`dvc exp show` lists it)")
    if overrides:
        lines.append("Overrides: " + ", ".join(f"`{k}={v!r}`" for k, v in overrides.items()))
    if rebuilt:
        lines.append(f"Re-executed: {', '.join(rebuilt)}")
    else:
        lines.append("Nothing re-executed: the source listing is unchanged and every stage "
                     "is up to date.")  # fmt: skip
    if skipped:
        lines.append(f"Up to date (skipped): {', '.join(skipped)}")
    return "\n\n".join(lines[:2]) + "\n" + "\n".join(f"- {line}" for line in lines[2:]) + "\n"


def _publish_comparisons(root: Path, params: str, checked: dict[str, Any]) -> None:
    """The DepthART-vs-baseline comparison and the per-scale curves, where the run made them."""
    reg = from_dict(RegisterConfig, read_params(root / params).get("register"), "register")
    objectives = tuple(checked.get("register.objectives", reg.objectives))
    decision = root / reg.out_dir / "comparison.md"  # the register stage's bootstrap report
    reports = (
        ("headline", headline_markdown(root / reg.out_dir / "headline"),
         "Rank, AbsRel and delta1 per benchmark of this round's candidates"),
        ("comparison", decision.read_text() if decision.is_file() else None,
         "DepthART vs the baseline: paired bootstrap intervals and the champion decision"),
        ("per-scale", per_scale_markdown(root / reg.models_dir, objectives),
         "AbsRel after each scale, DepthART vs VAR teacher forcing"),
    )  # fmt: skip
    for key, markdown, description in reports:
        if markdown is not None:
            create_markdown_artifact(markdown=markdown, key=key, description=description)


def _is_git(root: Path) -> bool:
    return (root / ".git").exists()


@flow(name="retrain", log_prints=True)
def retrain(
    repo: str = ".",
    params: str = "params.yaml",
    stages: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    objectives: list[str] | None = None,
) -> str | None:
    """Rebuild the pipeline; publish the run summary, rank table, comparison and per-scale
    curves as markdown artifacts.

    ``stages`` overrides the stage list of the ``schedule`` section (e.g. only
    ``["evaluate", "register"]``). ``overrides`` (``{"train.steps": 50}``) and
    ``objectives`` (``["depthart"]``) change params for this run only. In a git
    repository the run is a DVC experiment named after the flow run (``dvc exp run
    -S ...``; params.yaml is restored afterwards); elsewhere each stage is a ``dvc repro``
    task and overrides are refused. Returns the rank table markdown, if one was written.
    """
    logger = get_run_logger()
    root = Path(repo).resolve()
    cfg = load_section("schedule", ScheduleConfig, root / params)
    sections, checked = check_params_task(str(root / params), overrides, objectives)
    logger.info("params sections checked: %s", ", ".join(sections) or "(none of depthcore's)")
    todo = list(stages if stages is not None else cfg.stages)
    experiment = None
    if _is_git(root):
        experiment = f"prefect-{flow_run.name or 'run'}"
        params_text = (root / params).read_text()
        try:
            task_ = experiment_task.with_options(
                retries=cfg.download_retries, retry_delay_seconds=cfg.retry_delay_s
            )
            outcomes = [task_(str(root), experiment, set_param_args(checked, params), todo)]
        finally:
            if checked:  # the overrides were for this run only
                (root / params).write_text(params_text)
    elif checked:
        raise ConfigError(f"{root}: overrides run as a DVC experiment, which needs a git repo")
    else:
        outcomes = [stage_task(stage, cfg)(stage, str(root)) for stage in todo]
    summary = summarise(outcomes, experiment, checked)
    logger.info("%s", summary)
    create_markdown_artifact(markdown=summary, key="retrain-summary", description="What ran")
    _publish_comparisons(root, params, checked)
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
