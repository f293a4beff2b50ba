"""The data a run read, as DVC content hashes from dvc.lock, logged as MLflow datasets.

Why: "which data was this model trained on" must be answerable from the run itself.
DVC already hashes every stage's inputs and outputs into dvc.lock; a run logs each
input it read as an MLflow dataset (``log_inputs``) whose digest is that hash, so the
run page's "Datasets used" names byte-identical data across runs and stores. The
dataset holds no data: ``source`` (JSON) says where the hash comes from (the lock file,
the stage that wrote or read the path), ``profile`` its size and file count.

A foundation service like the run logger (trainers call it while training): it needs
only yaml and an MLflow client, which the caller passes in; mlflow itself is imported
inside functions only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from depthcore.errors import DataError

log = logging.getLogger(__name__)

#: Dataset contexts: what the run read, and what that was built from (one step upstream).
TRAINING, TRAINING_SOURCE, EVALUATION = "training", "training.source", "evaluation"
SOURCE_TYPE = "dvc"
_CODE_PREFIXES = ("depthcore", "stages", "pipelines")


@dataclass(frozen=True)
class LockedData:
    """One path as dvc.lock records it: its content hash, size and, for folders, file count."""

    path: str
    md5: str
    size: int | None = None
    nfiles: int | None = None
    stage: str = ""  # the stage entry of dvc.lock the hash was read from


def is_code(path: str) -> bool:
    """Code deps (the stage's modules) are not data: they are named by the git commit."""
    return path.endswith(".py") or path.startswith(_CODE_PREFIXES)


#: libyaml's safe loader where PyYAML has it: a dvc.lock is machine-written and tens of KB, and
#: the pure-Python parser took 0.23 s per read of the e2e test's 69 KB lock (0.024 s with libyaml;
#: equal mappings), read 8 times by the register stage alone
_LOCK_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_lock(lock_path: str | Path) -> dict[str, Any]:
    """The ``stages`` mapping of dvc.lock; empty when there is no lock (a hand run)."""
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return {}
    try:
        data = yaml.load(lock_path.read_text(), Loader=_LOCK_LOADER) or {}  # noqa: S506
    except yaml.YAMLError as exc:
        raise DataError(f"{lock_path}: not valid YAML: {exc}") from exc
    stages = data.get("stages", {}) if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise DataError(f"{lock_path}: no 'stages' mapping (not a dvc.lock?)")
    return stages


def _entry(item: Mapping[str, Any], stage: str) -> LockedData:
    size, nfiles = item.get("size"), item.get("nfiles")
    return LockedData(
        path=str(item["path"]),
        md5=str(item.get("md5") or item.get("hash") or ""),
        size=None if size is None else int(size),
        nfiles=None if nfiles is None else int(nfiles),
        stage=stage,
    )


def stage_data_deps(stages: Mapping[str, Any], stage: str) -> list[LockedData]:
    """The data (non-code) deps dvc.lock recorded for ``stage``; [] when it has no entry."""
    entry = stages.get(stage) or {}
    return [_entry(d, stage) for d in entry.get("deps", []) if not is_code(str(d.get("path", "")))]


def producer(stages: Mapping[str, Any], path: str) -> LockedData | None:
    """The locked output holding ``path`` (the path itself or a folder above it), if any."""
    want = PurePosixPath(path)
    for stage, entry in stages.items():
        for out in (entry or {}).get("outs", []):
            out_path = PurePosixPath(str(out.get("path", "")))
            if want == out_path or out_path in want.parents:
                return _entry(out, stage)
    return None


def upstream(stages: Mapping[str, Any], items: Sequence[LockedData]) -> list[LockedData]:
    """What ``items`` were built from: the data deps of the stages that wrote them."""
    seen = {i.path for i in items}
    found = []
    for item in items:
        made = producer(stages, item.path)
        for dep in stage_data_deps(stages, made.stage) if made else []:
            if dep.path not in seen:
                seen.add(dep.path)
                found.append(dep)
    return found


def locked_outputs(stages: Mapping[str, Any], paths: Sequence[str]) -> list[LockedData]:
    """The locked outputs holding ``paths`` (empty paths and unlocked ones left out)."""
    found: dict[str, LockedData] = {}
    for path in paths:
        item = producer(stages, path) if path else None
        if item is None:
            if path:
                log.info("%s: not an output in dvc.lock; not logged as a dataset", path)
            continue
        found.setdefault(item.path, item)
    return list(found.values())


def log_inputs(
    client: Any, run_id: str, items: Sequence[LockedData], context: str, lock: str = "dvc.lock"
) -> None:
    """Log ``items`` as MLflow datasets of run ``run_id`` under ``context``.

    MLflow keeps one dataset per (name, digest) and one link per run, so logging the
    same hashes again (a resumed run, a second register round) adds nothing.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for item in items:
        source = {"path": item.path, "md5": item.md5, "lock": lock, "stage": item.stage}
        profile = {"size": item.size, "nfiles": item.nfiles}
        dataset = Dataset(
            name=item.path, digest=item.md5[:36], source_type=SOURCE_TYPE,
            source=json.dumps(source), profile=json.dumps(profile),
        )  # fmt: skip
        inputs.append(DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def log_training_inputs(
    logger: Any, paths: Sequence[str], lock_path: str | Path = "dvc.lock"
) -> list[LockedData]:
    """A training run's inputs (``paths``: features, tokenizer, initial weights) as datasets.

    Their hashes are those of the stages that wrote them, as dvc.lock holds them when
    ``dvc repro`` starts this stage; the folders those were built from (the processed
    shards) go in as ``training.source``. Loggers without an MLflow run log nothing.
    """
    client, run_id = getattr(logger, "client", None), getattr(logger, "run_id", None)
    if client is None or run_id is None:
        return []
    stages = read_lock(lock_path)
    if not stages:
        log.warning("%s not found: the run's input data are not logged as datasets", lock_path)
        return []
    items = locked_outputs(stages, paths)
    sources = upstream(stages, items)
    log_inputs(client, run_id, items, TRAINING, str(lock_path))
    log_inputs(client, run_id, sources, TRAINING_SOURCE, str(lock_path))
    return items + sources
