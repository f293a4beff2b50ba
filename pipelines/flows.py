"""The Prefect ``retrain`` flow: the DVC stages (or one DVC experiment), reported in markdown.

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

What the Prefect UI shows (issue 14): each stage task ends in a state named "Ran" or
"Up to date" (parsed from DVC's own output, :func:`parse_repro`), the run gets a
markdown ``retrain-summary`` artifact (a row per stage, links to the MLflow register
run and the champion), and the rank table is published only when ``register`` ran
(otherwise the summary says since when nothing changed). Stage names are checked
against dvc.yaml before any stage starts.
"""

from __future__ import annotations

import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed, State

from depthcore.config import ConfigError, from_dict, frozen, load_section, read_params
from depthcore.tracking.registry import RegisterConfig
from pipelines.artifacts import headline_markdown, per_scale_markdown
from pipelines.overrides import dvc_env, resolve_overrides, set_param_args
from pipelines.report import (
    StageReport,
    check_stage_names,
    parse_repro,
    published_rank_table,
    split_reports,
    summary_markdown,
)
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
    "pretrain",
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


#: Stages that run on every repro by design (dvc.yaml ``always_changed``): their running
#: alone means nothing was rebuilt.
ALWAYS_RUN = frozenset({"list_source"})


class StageError(RuntimeError):
    """A ``dvc`` command exited non-zero; the message carries its output tail."""


def _dvc(args: list[str], repo: str, label: str) -> str:
    """Run ``dvc <args>`` in ``repo``, streaming its output to the Prefect log.

    Returns the whole output (DVC prints a line per stage it ran or skipped).
    """
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", *args]
    logger.info("%s$ dvc %s", repo, " ".join(args))
    tail: deque[str] = deque(maxlen=40)
    lines: list[str] = []
    with subprocess.Popen(
        cmd,
        cwd=repo,
        env=dvc_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            lines.append(line)
            logger.info("[%s] %s", label, line)
        rc = proc.wait()
    if rc != 0:
        raise StageError(
            f"stage {label} failed in {repo} (dvc {args[0]} exit {rc}):\n" + "\n".join(tail)
        )
    return "\n".join(lines)


@task(name="stage", cache_policy=NO_CACHE, log_prints=True)
def run_stage_task(stage: str, repo: str) -> State:
    """One pipeline stage; its final state is named "Ran" or "Up to date" with the details.

    Retries come from :func:`stage_task`. The report (a :class:`StageReport`) is the
    task's result.
    """
    report = parse_repro(stage, _dvc(["repro", stage], repo, stage))
    return Completed(name=report.state_name, message=report.message, data=report)


def stage_task(stage: str, cfg: ScheduleConfig):  # noqa: ANN201 - a prefect Task
    """The task for ``stage``, with retries for the download stage only."""
    retries = cfg.download_retries if stage == "download" else 0
    return run_stage_task.with_options(
        name=f"stage-{stage}", retries=retries, retry_delay_seconds=cfg.retry_delay_s
    )


@task(name="experiment", cache_policy=NO_CACHE, log_prints=True)
def experiment_task(
    repo: str, name: str, set_args: list[str], stages: list[str]
) -> list[StageReport]:
    """The stages as one DVC experiment (``dvc exp run``); a retry reruns only what is not
    built yet, so it carries the download's retries."""
    output = _dvc(["exp", "run", "--name", name, *set_args, *stages], repo, "experiment")
    return split_reports(stages, output)


@task(name="check-params", cache_policy=NO_CACHE)
def check_params_task(
    params_path: str, overrides: dict[str, Any] | None, objectives: list[str] | None
) -> tuple[list[str], dict[str, Any]]:
    """Load every params section and check the run's overrides before any stage runs:
    a typo fails in seconds, not hours."""
    checked = resolve_overrides(params_path, overrides, objectives)
    return sorted(check_params(params_path)), checked


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


@flow(name="retrain", log_prints=True, validate_parameters=True)
def retrain(
    repo: str = ".",
    params: str = "params.yaml",
    stages: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    objectives: list[str] | None = None,
) -> str | None:
    """Rebuild the pipeline with DVC; report what ran, the comparisons and who is champion.

    Args:
        repo: The repository (DVC project) to build in; relative paths are resolved
            against the worker's current directory.
        params: The params file, relative to ``repo``; its ``schedule`` section gives the
            default stage list, retries and the MLflow UI address used in links.
        stages: Stage names of dvc.yaml to run in this order (a foreach group such as
            ``train`` runs all its members), e.g. ``["evaluate", "register"]``. Empty:
            the ``schedule.stages`` list. Unknown names fail the run before any stage runs.
        overrides: params for this run only, e.g. ``{"train.steps": 50}``; every key is
            checked against the params dataclasses first. Needs a git repository (the run
            is then a DVC experiment named after the flow run).
        objectives: the objectives to train, e.g. ``["depthart"]`` (``register.objectives``).

    Returns the rank table markdown when ``register`` ran in this flow run, else None.
    """
    logger = get_run_logger()
    root = Path(repo).resolve()
    cfg = load_section("schedule", ScheduleConfig, root / params)
    chosen = list(stages) if stages else list(cfg.stages)
    check_stage_names(chosen, root / "dvc.yaml")
    sections, checked = check_params_task(str(root / params), overrides, objectives)
    logger.info("params sections checked: %s", ", ".join(sections) or "(none of depthcore's)")
    reports: list[StageReport] = []
    context = (
        [f"Overrides: {', '.join(f'`{k}={v!r}`' for k, v in checked.items())}"] if checked else []
    )
    if (root / ".git").exists():
        name = f"prefect-{flow_run.name or 'run'}"
        context.insert(0, f"DVC experiment: `{name}` (`dvc exp show` lists it)")
        params_text = (root / params).read_text()
        try:
            task_ = experiment_task.with_options(
                retries=cfg.download_retries, retry_delay_seconds=cfg.retry_delay_s
            )
            reports = task_(str(root), name, set_param_args(checked, params), chosen)
        finally:
            if checked:  # the overrides were for this run only
                (root / params).write_text(params_text)
    elif checked:
        raise ConfigError(f"{root}: overrides run as a DVC experiment, which needs a git repo")
    else:
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
    rebuilt = [r.stage for r in reports if r.did_run and r.stage not in ALWAYS_RUN]
    context.append(
        f"Re-executed: {', '.join(rebuilt)}"
        if rebuilt
        else "Nothing re-executed: the source listing is unchanged and every stage is up to date."
    )
    summary = summary_markdown(
        reports, root / cfg.rank_table, root / cfg.registry_report, cfg.mlflow_ui
    )
    create_markdown_artifact(
        markdown="".join(f"{line}\n\n" for line in context) + summary,
        key="retrain-summary",
        description="What ran, what was up to date, and the champion",
    )
    _publish_comparisons(root, params, checked)
    return table_md
