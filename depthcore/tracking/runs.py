"""The evidence behind each candidate, logged into MLflow runs by the register stage.

A candidate's run holds everything the registry page leaves out: every benchmark
metric under a glossary name (:mod:`depthcore.tracking.glossary`), the per-scale
curve named as its figure labels scales, the counts as params and the evaluation
panels and refinement figures as artifacts. Reference predictors get runs of their
own (one per reference, reused every round) so MLflow's compare view holds every
ranked candidate; each round also gets a ``register`` run carrying the rank table,
the comparison and the decision. mlflow is imported inside functions only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depthcore.errors import DataError
from depthcore.evaluation.ranking import NestedMetrics
from depthcore.run_logger import (
    EXPERIMENT_NOTE,
    ensure_experiment,
    run_tags,
    scale_metric_name,
)
from depthcore.tracking.glossary import (
    eval_metrics_and_params,
    glossary_markdown,
    headline_metrics,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: Artifact folder (in a candidate's run) of the metrics a registered version is ranked on.
VERSION_METRICS_DIR = "registry"


def _log(
    client: MlflowClient,
    run_id: str,
    metrics: Mapping[str, float] = (),  # type: ignore[assignment]
    params: Mapping[str, str] = (),  # type: ignore[assignment]
    tags: Mapping[str, str] = (),  # type: ignore[assignment]
) -> None:
    """One batch of metrics, new params (MLflow params are write-once) and tags."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    known = client.get_run(run_id).data.params
    new_params = [Param(k, str(v)) for k, v in dict(params).items() if k not in known]
    items = [Metric(k, float(v), now, 0) for k, v in dict(metrics).items()]
    for i in range(0, max(len(items), 1), 1000):
        client.log_batch(
            run_id,
            metrics=items[i : i + 1000],
            params=new_params if i == 0 else [],
            tags=[RunTag(k, str(v)) for k, v in dict(tags).items()] if i == 0 else [],
        )


def read_scales(path: Path) -> dict[str, float]:
    """The scales stage's per-scale AbsRel as ``val_abs_rel_scale_<n>x<n>`` plus its summary,
    and the exposure gap as ``exposure_<decoding>_<key>_scale_<n>x<n>``."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        per_scale = zip(data["patch_nums"], data["val_abs_rel_per_scale"], strict=True)
        out = {scale_metric_name("val_abs_rel", pn): float(v) for pn, v in per_scale}
        out["val_abs_rel"] = float(data["val_abs_rel"])
        out["refinement_gain"] = float(data["refinement_gain"])
        for decoding, gap in (data.get("exposure_gap") or {}).items():  # exposure.py
            for key in ("loss_gap", "abs_rel_gap", "abs_rel_teacher_forced", "abs_rel_own"):
                for pn, v in zip(gap["patch_nums"], gap[key], strict=True):
                    out[scale_metric_name(f"exposure_{decoding}_{key}", pn)] = float(v)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a scales summary ({exc})") from exc
    return out


def log_evidence(
    client: MlflowClient,
    run_id: str,
    metrics: NestedMetrics,
    alignment: str,
    *,
    rank: float,
    eval_dir: Path,
    model_dir: Path | None = None,
) -> dict[str, float]:
    """Log one candidate's evaluation into its run; returns its headline metrics."""
    eval_metrics, counts = eval_metrics_and_params(metrics)
    headline = headline_metrics(metrics, alignment)
    extra = read_scales(model_dir / "scales.json") if model_dir is not None else {}
    _log(client, run_id, {**eval_metrics, **headline, **extra, "rank": rank}, counts)
    folders = {"panels": eval_dir / "panels"}
    if model_dir is not None:
        folders["figures"] = model_dir / "figures"  # the per-scale refinement strips
    for name, src in folders.items():
        if src.is_dir() and any(src.iterdir()):
            client.log_artifacts(run_id, str(src), name)
    return headline


def store_version_metrics(
    client: MlflowClient, run_id: str, name: str, version: str, metrics: NestedMetrics
) -> None:
    """Keep the metrics a version is ranked on as an artifact of its run (not a tag blob)."""
    client.log_text(run_id, json.dumps(metrics, indent=1), version_metrics_path(name, version))


def version_metrics_path(name: str, version: str) -> str:
    return f"{VERSION_METRICS_DIR}/{name}-v{version}.json"


def load_version_metrics(client: MlflowClient, run_id: str, name: str, version: str) -> Any:
    """The stored metrics of a version (None when its run has none: an older registration)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=version_metrics_path(name, version),
            tracking_uri=client.tracking_uri,
        )
    except (MlflowException, OSError):
        return None
    return json.loads(Path(local).read_text())


def reference_run(client: MlflowClient, experiment: str, reference: str) -> str:
    """The run of a reference predictor (created on first use, reused every round)."""
    exp_id = describe_experiment(client, experiment)
    found = client.search_runs(
        [exp_id], filter_string=f"tags.reference = '{reference}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    tags = run_tags("evaluate_reference", "reference") | {"reference": reference}
    run = client.create_run(exp_id, run_name=f"reference-{reference}", tags=tags)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def describe_experiment(client: MlflowClient, experiment: str) -> str:
    """The experiment's id, its description set to the metrics glossary."""
    exp_id = ensure_experiment(client, experiment, client.tracking_uri)
    client.set_experiment_tag(exp_id, EXPERIMENT_NOTE, glossary_markdown())
    return exp_id


def log_register_run(
    client: MlflowClient,
    experiment: str,
    *,
    note_md: str,
    files: Mapping[str, Path],
    params: Mapping[str, str],
) -> str:
    """A finished ``register`` run with the round's reports as artifacts and ``note_md``."""
    exp_id = describe_experiment(client, experiment)
    tags = run_tags("register") | {EXPERIMENT_NOTE: note_md}
    run = client.create_run(exp_id, run_name=f"register-{time.strftime('%Y-%m-%d')}", tags=tags)
    run_id = run.info.run_id
    _log(client, run_id, params=params)
    for path in files.values():
        if path.is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def run_link(client: MlflowClient, run_id: str) -> str:
    """A link the MLflow UI resolves from the model page (relative, so it works on any host)."""
    exp_id = client.get_run(run_id).info.experiment_id
    return f"[run {run_id[:8]}](#/experiments/{exp_id}/runs/{run_id})"
