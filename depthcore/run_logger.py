"""Run loggers: MLflow for the pipeline, CSV for runs without a tracking server, or none.

Training code talks to the :class:`RunLogger` protocol only. The MLflow logger
uses an explicit ``MlflowClient`` (no fluent "active run" global) and imports
mlflow inside its methods, so ``import depthcore`` never pays for mlflow.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from depthcore.config import dotted_leaves
from depthcore.errors import DataError, DepthcoreError
from depthcore.io import write_text_atomic

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT_NOTE = "mlflow.note.content"  # the tag MLflow's UI shows as a description
RUN_RECORD = "mlflow_run.json"  # per-model file naming the MLflow run later stages log into
_FLUSH_EVERY = 200  # metric values buffered before one log_batch call


class TrackingError(DepthcoreError):
    """The tracking backend cannot be reached or refused a write."""


@runtime_checkable
class RunLogger(Protocol):
    """What a training run reports: params once, metrics per step, files as artifacts."""

    run_id: str | None

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None: ...

    def close(self, status: str = "FINISHED") -> None: ...


class NullLogger:
    """Logs nothing (non-zero DDP ranks, tests)."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        return None

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        return None

    def close(self, status: str = "FINISHED") -> None:
        return None


class CsvLogger:
    """Appends metrics to ``<out_dir>/metrics.csv`` (long format: step, name, value)."""

    run_id: str | None = None

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._metrics_path = self.out_dir / "metrics.csv"
        if not self._metrics_path.exists():
            self._metrics_path.write_text("step,name,value\n")

    def log_params(self, params: dict[str, Any]) -> None:
        write_text_atomic(self.out_dir / "params.json", json.dumps(params, indent=2, default=str))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        with self._metrics_path.open("a", newline="") as fh:
            writer = csv.writer(fh)
            for name, value in metrics.items():
                writer.writerow([step, name, float(value)])

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        return None  # the file already lives in the run's output folder

    def close(self, status: str = "FINISHED") -> None:
        return None


def resolve_tracking_uri(default: str = DEFAULT_TRACKING_URI) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``default`` (the params value); a SQLite
    store is checked by :func:`check_sqlite_store` first."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default
    check_sqlite_store(uri)
    return uri


_SQLITE_MAGIC = b"SQLite format 3\x00"
# Tables every MLflow SQLite store has (MLflow creates them, with alembic's version table).
_MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs"})


def check_sqlite_store(uri: str) -> None:
    """Refuse a ``sqlite:///`` tracking URI whose file exists but is not an MLflow store.

    MLflow adds its ~65 tables to any SQLite file it is pointed at (and would migrate
    it), so another program's database at ``./mlflow.db`` would be altered; a
    non-database file there gives an error that does not name it. A missing or empty
    file is fine: MLflow creates the store, which is then ours. Read-only: the file is
    opened with ``mode=ro``.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return
    db = Path(uri[len(prefix) :].split("?", 1)[0])
    if not db.exists() or (db.is_file() and db.stat().st_size == 0):
        return
    hint = "set tracking_uri (or MLFLOW_TRACKING_URI) to another file"
    if not db.is_file():
        raise TrackingError(f"{db}: the MLflow tracking store path is not a file; {hint}")
    with db.open("rb") as fh:
        magic = fh.read(len(_SQLITE_MAGIC))
    if magic != _SQLITE_MAGIC:
        raise TrackingError(f"{db}: not an SQLite database, so not an MLflow store; {hint}")
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise TrackingError(f"{db}: cannot read this SQLite database ({exc}); {hint}") from exc
    missing = sorted(_MLFLOW_TABLES - {name for (name,) in rows})
    if missing:
        raise TrackingError(
            f"{db}: an SQLite database that is not an MLflow store (no {', '.join(missing)} "
            f"table); refusing to add MLflow's tables to it; {hint}"
        )


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a local sqlite store live beside the database, in ``mlartifacts/``.

    MLflow's own default is ``./mlruns`` under whatever the current directory
    happens to be; a server (http URI) chooses its own artifact store (None).
    """
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = Path(tracking_uri[len(prefix) :])
    return (db.resolve().parent / "mlartifacts").as_uri()


class MlflowLogger:
    """One MLflow run, created (or resumed by id) at construction.

    Fails within ~30 s against an unreachable server, naming the URI, by
    lowering mlflow's HTTP retries and timeout unless the user set them.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """Resume ``run_id`` (its ``tags`` updated) or create a run with ``tags``."""
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self._buffer: list[Any] = []
        check_sqlite_store(tracking_uri)
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            if run_id is not None:
                run = self.client.get_run(run_id)
                self.experiment_id = run.info.experiment_id
                self.client.update_run(run_id, status="RUNNING")
                for key, value in (tags or {}).items():
                    self.client.set_tag(run_id, key, value)
            else:
                self.experiment_id = ensure_experiment(self.client, experiment, tracking_uri)
                run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"MLflow tracking at {tracking_uri} failed: {exc}") from exc
        self.run_id = run.info.run_id

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except (MlflowException, OSError) as exc:
            raise TrackingError(
                f"MLflow {what} for run {self.run_id} at {self.tracking_uri} failed: {exc}"
            ) from exc

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params; in a resumed run, values that changed go to ``resumed.<key>`` tags.

        MLflow params are immutable, and a resumed run may legitimately change
        e.g. ``steps``; the first value stays the param, the new one is recorded.
        """
        from mlflow.entities import Param, RunTag

        flat = {str(k): str(v)[:6000] for k, v in sorted(dotted_leaves(params).items())}
        old = self._call("get_run", self.client.get_run, self.run_id).data.params
        items = [Param(k, v) for k, v in flat.items() if k not in old]
        tags = [RunTag(f"resumed.{k}", v) for k, v in flat.items() if k in old and old[k] != v]
        for i in range(0, len(items), 100):
            self._call("log_params", self.client.log_batch, self.run_id, params=items[i : i + 100])
        if tags:
            self._call("set_tags", self.client.log_batch, self.run_id, tags=tags)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if len(self._buffer) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Send buffered metric values (also done by :meth:`close` and artifact logging)."""
        while self._buffer:
            chunk, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self._call("log_metrics", self.client.log_batch, self.run_id, metrics=chunk)

    def log_artifact(self, path: str | Path, artifact_dir: str | None = None) -> None:
        self.flush()
        self._call("log_artifact", self.client.log_artifact, self.run_id, str(path), artifact_dir)

    def log_tags(self, tags: dict[str, str]) -> None:
        """Set run tags (strings shown in the runs table's tag columns)."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self._call("set_tags", self.client.log_batch, self.run_id, tags=items)

    def close(self, status: str = "FINISHED") -> None:
        self.flush()
        self._call("set_terminated", self.client.set_terminated, self.run_id, status)

    def run_record(self) -> dict[str, str]:
        """What later stages need to log into the same run (written as mlflow_run.json)."""
        return {
            "run_id": str(self.run_id),
            "experiment_id": str(self.experiment_id),
            "tracking_uri": self.tracking_uri,
        }


def scale_metric_name(prefix: str, patch_num: int) -> str:
    """``val_abs_rel_scale_4x4``: a per-scale metric named as the figures label the scales."""
    return f"{prefix}_scale_{patch_num}x{patch_num}"


def ensure_experiment(client: Any, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a sqlite db) when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    return str(
        client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri))
    )


def git_commit(cwd: str | Path = ".") -> str:
    """The checked-out commit (``+dirty`` when tracked files changed), or ``unknown``.

    A run is reproducible from its commit plus dvc.lock; outside a git checkout
    (an installed package) there is no commit to name, which the tag says.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def run_tags(stage: str, objective: str | None = None) -> dict[str, str]:
    """Tags that tell reruns apart in the runs table: stage, objective, commit, DVC experiment.

    ``host`` and ``pid`` let a later start of the same stage tell a killed run (its
    process is gone) from one still running (:func:`close_orphan_runs`).
    """
    tags = {
        "stage": stage,
        "git_commit": git_commit(),
        "dvc_experiment": os.environ.get("DVC_EXP_NAME", "") or "workspace",
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
    }
    if objective is not None:
        tags["objective"] = objective
    return tags


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def close_orphan_runs(
    client: Any, experiment_id: str, stage: str, objective: str | None, keep: str | None = None
) -> list[str]:
    """Mark KILLED the RUNNING runs of this stage whose process is gone; returns their ids.

    A training killed by a signal or a power cut never reaches ``close()``; without
    this its run stays "Running" in the UI forever. Runs of another host are left
    alone (their process cannot be checked from here).
    """
    query = f"attributes.status = 'RUNNING' and tags.stage = '{stage}'"
    if objective is not None:
        query += f" and tags.objective = '{objective}'"
    closed = []
    for run in client.search_runs([experiment_id], filter_string=query, max_results=1000):
        tags = run.data.tags
        if run.info.run_id == keep or tags.get("host") != socket.gethostname():
            continue
        pid = tags.get("pid", "")
        if pid.isdigit() and _process_alive(int(pid)):
            continue
        client.set_tag(run.info.run_id, "killed_note", "process gone; closed by the next start")
        client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed


def make_logger(
    kind: str,
    *,
    out_dir: str | Path,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str = "depthart",
    run_name: str | None = None,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> RunLogger:
    """The logger named by a params value: ``mlflow``, ``csv`` or ``none``."""
    if kind == "mlflow":
        return MlflowLogger(
            resolve_tracking_uri(tracking_uri), experiment, run_name=run_name, run_id=run_id,
            tags=tags,
        )  # fmt: skip
    if kind == "csv":
        return CsvLogger(out_dir)
    if kind == "none":
        return NullLogger()
    raise ValueError(f"unknown tracking kind {kind!r} (choose mlflow, csv or none)")


def read_run_id(path: str | Path) -> str:
    """The MLflow run id the train stage recorded in ``mlflow_run.json`` (:data:`RUN_RECORD`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: MLflow run record not found (run the train stage first)")
    try:
        run_id = json.loads(path.read_text()).get("run_id")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DataError(f"{path}: not a JSON object with a 'run_id': {exc}") from exc
    if not isinstance(run_id, str) or not run_id:
        raise DataError(f"{path}: no 'run_id' string in the MLflow run record")
    return run_id


def open_run_logger(
    kind: str,
    *,
    out_dir: str | Path,
    tracking_uri: str = DEFAULT_TRACKING_URI,
    experiment: str = "depthart",
    run_name: str | None = None,
    resume: bool = False,
    stage: str = "train",
    objective: str | None = None,
) -> RunLogger:
    """A stage's logger, recording an MLflow run in ``<out_dir>/mlflow_run.json``.

    Later stages (register) read that file to log into the same run; with ``resume``
    an existing record's run is continued instead of a new one. Either way, runs of
    this stage left RUNNING by a killed process are marked KILLED first.
    """
    record = Path(out_dir) / RUN_RECORD
    run_id = None
    if kind == "mlflow" and resume and record.is_file():
        run_id = read_run_id(record)
    logger = make_logger(
        kind,
        out_dir=out_dir,
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=run_name,
        run_id=run_id,
        tags=run_tags(stage, objective),
    )
    if isinstance(logger, MlflowLogger):
        closed = close_orphan_runs(
            logger.client, logger.experiment_id, stage, objective, keep=logger.run_id
        )
        if closed:
            logger.log_tags({"closed_orphans": ",".join(closed)})
        write_text_atomic(record, json.dumps(logger.run_record(), indent=2) + "\n")
    return logger
