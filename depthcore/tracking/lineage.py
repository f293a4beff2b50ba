"""Lineage of a registered version: the data hashes, commit, params and runs it came from.

Why: "which data was the champion trained on" should be one call, not an archaeology of
run ids. The training run logs its inputs as MLflow datasets with their DVC hashes
(:mod:`depthcore.run_inputs`); the register stage adds what dvc.lock recorded for
the ``train@<objective>`` and ``evaluate@<objective>`` stages (the authoritative hashes,
written once those stages finished) and links the version to them. :func:`read_lineage`
follows a ``models:/`` URI back to all of it; ``depthart lineage`` prints it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depthcore.errors import DepthcoreError
from depthcore.run_inputs import (
    EVALUATION,
    TRAINING,
    TRAINING_SOURCE,
    LockedData,
    log_inputs,
    read_lock,
    stage_data_deps,
    upstream,
)
from depthcore.tracking.describe import short_hash

if TYPE_CHECKING:
    from mlflow import MlflowClient

TAG_REGISTER_RUN = "register_run"  # version tag: the round that attached lineage and card
TAG_SOURCE = "source"  # product version: the candidate version it copies (publish.TAG_SOURCE)


@dataclass(frozen=True)
class DataRecord:
    """One logged dataset as the lineage shows it."""

    context: str
    name: str
    digest: str
    size: int | None = None
    nfiles: int | None = None


@dataclass(frozen=True)
class Lineage:
    """Where a registered version came from: its runs, code, params and data."""

    label: str
    run_id: str
    experiment_id: str
    git_commit: str
    params_hash: str
    data: tuple[DataRecord, ...]
    source: str = ""  # the candidate version a product version copies
    register_run: str = ""  # the register round that attached lineage and card

    @property
    def data_hash(self) -> str:
        """The hash of the training datasets' DVC hashes: equal means same training data."""
        return data_hash(self.data)


def data_hash(records: Iterable[DataRecord]) -> str:
    """Hash of the training inputs' DVC hashes: the version tag ``data_version``.

    The same definition as :func:`depthcore.tracking.describe.data_version` (the
    ``{path: md5}`` of the train stage's data deps), so the tag and the lineage agree.
    """
    pairs = {r.name: r.digest for r in records if r.context == TRAINING}
    return short_hash(pairs) if pairs else "unknown"


def params_hash(params: dict[str, str]) -> str:
    """The version tag ``params_hash``: hash of the training run's params."""
    return short_hash(params)


def log_round_inputs(
    client: MlflowClient, run_id: str, lock_path: str | Path, objective: str
) -> list[DataRecord]:
    """Log what dvc.lock recorded for ``train@<objective>`` and ``evaluate@<objective>``.

    The candidate's evaluation is part of its training run (the register stage logs the
    metrics there), so its benchmarks go into that run under ``evaluation``.
    """
    stages = read_lock(lock_path)
    train = stage_data_deps(stages, f"train@{objective}")
    evaluation = stage_data_deps(stages, f"evaluate@{objective}")
    groups = ((TRAINING, train), (TRAINING_SOURCE, upstream(stages, train)),
              (EVALUATION, evaluation))  # fmt: skip
    for context, items in groups:
        log_inputs(client, run_id, items, context, str(lock_path))
    return [_record(context, item) for context, items in groups for item in items]


def log_reference_inputs(
    client: MlflowClient, run_id: str, lock_path: str | Path, reference: str
) -> None:
    """A reference predictor's run: the benchmarks it was scored on."""
    items = stage_data_deps(read_lock(lock_path), f"evaluate_reference@{reference}")
    log_inputs(client, run_id, items, EVALUATION, str(lock_path))


def _record(context: str, item: LockedData) -> DataRecord:
    return DataRecord(context, item.path, item.md5[:36], item.size, item.nfiles)


def run_data(client: MlflowClient, run_id: str) -> tuple[DataRecord, ...]:
    """The datasets logged in a run, sorted by context and name."""
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    records = []
    for inp in client.get_run(run_id).inputs.dataset_inputs:
        context = next((t.value for t in inp.tags if t.key == MLFLOW_DATASET_CONTEXT), "")
        profile = json.loads(inp.dataset.profile or "{}")
        records.append(
            DataRecord(context, inp.dataset.name, inp.dataset.digest, profile.get("size"),
                       profile.get("nfiles"))
        )  # fmt: skip
    return tuple(sorted(set(records), key=lambda r: (r.context, r.name, r.digest)))


def resolve_version(client: MlflowClient, uri: str) -> Any:
    """The model version of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        raise DepthcoreError(f"{uri}: not a models:/NAME@ALIAS or models:/NAME/VERSION URI")
    rest = uri[len("models:/") :]
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return client.get_model_version_by_alias(name, alias)
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit():
            raise DepthcoreError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise DepthcoreError(f"{uri}: not in the registry {client.tracking_uri}: {exc}") from exc


def read_lineage(client: MlflowClient, uri: str) -> Lineage:
    """Follow ``uri`` to its version, training run, datasets, commit and params."""
    mv = resolve_version(client, uri)
    run = client.get_run(mv.run_id)
    return Lineage(
        label=f"{mv.name}/v{mv.version}",
        run_id=mv.run_id,
        experiment_id=run.info.experiment_id,
        git_commit=mv.tags.get("git_commit") or run.data.tags.get("git_commit", "unknown"),
        params_hash=params_hash(run.data.params),
        data=run_data(client, mv.run_id),
        source=mv.tags.get(TAG_SOURCE, ""),
        register_run=mv.tags.get(TAG_REGISTER_RUN, ""),
    )


def _size(record: DataRecord) -> str:
    parts = []
    if record.nfiles is not None:
        parts.append(f"{record.nfiles} files")
    if record.size is not None:
        parts.append(f"{record.size} bytes")
    return f" ({', '.join(parts)})" if parts else ""


def lineage_text(lineage: Lineage) -> str:
    """What ``depthart lineage`` prints: one line per fact, datasets grouped by context."""
    lines = [f"{lineage.label}" + (f" (copy of {lineage.source})" if lineage.source else "")]
    lines += [
        f"  training data hash: {lineage.data_hash}",
        f"  git commit:         {lineage.git_commit}",
        f"  params hash:        {lineage.params_hash}",
        f"  training run:       {lineage.run_id} (experiment {lineage.experiment_id})",
    ]
    if lineage.register_run:
        lines.append(f"  register run:       {lineage.register_run}")
    if not lineage.data:
        lines.append("  datasets:           none logged (registered before lineage was recorded)")
    for context in (TRAINING, TRAINING_SOURCE, EVALUATION):
        for r in (r for r in lineage.data if r.context == context):
            lines.append(f"  {context:<18}  {r.name}  md5 {r.digest}{_size(r)}")
    return "\n".join(lines)


def lineage_markdown(
    records: Sequence[DataRecord], label: str, git_commit: str, p_hash: str
) -> str:
    """The version description's lineage paragraph (the card link is added by the caller)."""
    name, _, version = label.rpartition("/v")
    lines = [
        f"**Lineage**: training data hash `{data_hash(records)}`, commit `{git_commit[:12]}`, "
        f"params hash `{p_hash}`; `depthart lineage models:/{name}/{version}` prints it all.",
        "",
    ]
    order = {TRAINING: 0, TRAINING_SOURCE: 1, EVALUATION: 2}
    for r in sorted(records, key=lambda r: (order.get(r.context, 3), r.name)):
        lines.append(f"- {r.context}: `{r.name}` md5 `{r.digest}`{_size(r)}")
    return "\n".join(lines)
