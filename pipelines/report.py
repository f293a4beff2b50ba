"""What the ``retrain`` flow tells the Prefect UI: per-stage outcome and a run summary.

DVC decides whether a stage runs; its ``repro`` output names every stage it ran
("Running stage 'x':"), skipped ("Stage 'x' didn't change, skipping") or restored
from its cache ("Stage 'x' is cached - skipping run"). :func:`parse_repro` turns
that into a :class:`StageReport`, so a task shows "Ran" or "Up to date" instead of
the same "Completed" for both, and the summary publishes only results produced by
this run. No Prefect import here: the flow module owns the Prefect calls.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from depthcore.config import ConfigError
from depthcore.errors import DataError

_RAN = re.compile(r"^Running stage '([^']+)':")
_SKIPPED = re.compile(r"^Stage '([^']+)' didn't change, skipping")
_RESTORED = re.compile(r"^Stage '([^']+)' is cached - skipping run")


@dataclass(frozen=True)
class StageReport:
    """One ``dvc repro <stage>``: which dvc stages (upstream ones included) ran or not."""

    stage: str
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    restored: tuple[str, ...]

    def _own(self, names: tuple[str, ...]) -> list[str]:
        return [n for n in names if n == self.stage or n.startswith(f"{self.stage}@")]

    @property
    def did_run(self) -> bool:
        """True when this stage (or a member of its foreach group) executed its command."""
        return bool(self._own(self.ran))

    @property
    def state_name(self) -> str:
        return "Ran" if self.did_run else "Up to date"

    @property
    def message(self) -> str:
        """One line for the task state and the summary table."""
        parts = []
        for verb, names in (("ran", self.ran), ("restored", self.restored)):
            if names:
                parts.append(f"{verb} {', '.join(names)}")
        if self.skipped:
            parts.append(f"{len(self.skipped)} unchanged")
        return "; ".join(parts) or "up to date"


def parse_repro(stage: str, output: str) -> StageReport:
    """The report of ``dvc repro <stage>`` from its output (module docstring)."""
    found: dict[str, list[str]] = {"ran": [], "skipped": [], "restored": []}
    for line in output.splitlines():
        for key, pattern in (("ran", _RAN), ("skipped", _SKIPPED), ("restored", _RESTORED)):
            match = pattern.match(line.strip())
            if match:
                found[key].append(match.group(1))
    return StageReport(
        stage, tuple(found["ran"]), tuple(found["skipped"]), tuple(found["restored"])
    )


def dvc_stage_names(dvc_yaml: Path) -> list[str]:
    """The stage (and foreach group) names defined in ``dvc_yaml``."""
    if not dvc_yaml.is_file():
        raise DataError(f"{dvc_yaml}: not found (is the repo a DVC project?)")
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{dvc_yaml}: not valid YAML: {exc}") from exc
    return list(stages)


def check_stage_names(names: list[str], dvc_yaml: Path) -> None:
    """Fail before anything runs when a name is not a stage, group or ``group@item``."""
    known = dvc_stage_names(dvc_yaml)
    unknown = [n for n in names if n.split("@", 1)[0] not in known]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}: {dvc_yaml} defines {known}")
    if not names:
        raise ConfigError("no stages to run (the stages parameter and schedule.stages are empty)")


def _ran_register(reports: list[StageReport]) -> bool:
    return any(r.stage == "register" and r.did_run for r in reports)


def published_rank_table(reports: list[StageReport], rank_table: Path) -> str | None:
    """The rank table to publish: only when ``register`` ran in this flow run."""
    if not _ran_register(reports) or not rank_table.is_file():
        return None
    return rank_table.read_text()


def _since(path: Path) -> str:
    if not path.is_file():
        return "never produced"
    return "nothing changed since " + time.strftime(
        "%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime)
    )


def _links(registry_json: Path, mlflow_ui: str) -> list[str]:
    """Markdown links to the register run and the champion, from the register report."""
    if not registry_json.is_file():
        return []
    try:
        report = json.loads(registry_json.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{registry_json}: not valid JSON: {exc}") from exc
    ui = mlflow_ui.rstrip("/")
    lines = []
    run_id, exp_id = report.get("register_run_id"), report.get("register_experiment_id")
    if run_id and exp_id:
        lines.append(
            f"- MLflow register run: [{run_id[:8]}]({ui}/#/experiments/{exp_id}/runs/{run_id})"
        )
    product, champion = report.get("registered_model"), report.get("champion_after")
    if product:
        lines.append(f"- Served model: [{product}@champion]({ui}/#/models/{product})")
    if champion and "/v" in champion:
        name, version = champion.rsplit("/v", 1)
        lines.append(f"- Champion: [{champion}]({ui}/#/models/{name}/versions/{version})")
    if report.get("reason"):
        lines.append(f"- Decision: {report['reason']}")
    return lines


def summary_markdown(
    reports: list[StageReport], rank_table: Path, registry_json: Path, mlflow_ui: str
) -> str:
    """The run-level summary: a row per stage, then the champion (fresh or since when)."""
    ran = [r for r in reports if r.did_run]
    lines = [
        f"## Retrain: {len(ran)} of {len(reports)} stages ran",
        "",
        "| stage | outcome | details |",
        "|---|---|---|",
    ]
    lines += [f"| {r.stage} | **{r.state_name}** | {r.message} |" for r in reports]
    lines += ["", "### Champion", ""]
    if _ran_register(reports):
        lines.append("Registered this run (rank table: the `rank-table` artifact).")
    else:
        lines.append(f"`register` did not run: {_since(rank_table)}.")
    links = _links(registry_json, mlflow_ui)
    if links:
        lines += [""] + links
    return "\n".join(lines) + "\n"


def split_reports(stages: list[str], output: str) -> list[StageReport]:
    """One report per requested stage from the output of one ``dvc exp run`` over them all."""
    whole = parse_repro("experiment", output)

    def own(stage: str, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if n == stage or n.startswith(f"{stage}@"))

    return [
        StageReport(
            stage, own(stage, whole.ran), own(stage, whole.skipped), own(stage, whole.restored)
        )
        for stage in stages
    ]
