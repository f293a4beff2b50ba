"""DVC experiments driven from Python: queue parameter points, run the queue, wait, read back.

The sweep (bench.learning.sweep) and the seed study (bench.learning.study) both run the
pipeline exactly as a user's ``dvc exp run --queue -S key=value`` would, so their numbers
come from the stages' own outputs and every point stays inspectable with ``dvc exp show``.
Each experiment runs in a temporary copy of the repository; upstream stages whose inputs
did not change are restored from DVC's run cache instead of rerun. The metrics files are
read from ``dvc exp show --json``, other committed files (``scales.csv``) from the
experiment's git commit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from depthcore.config import ConfigError
from pipelines.overrides import dvc_env, resolve_overrides, set_param_args

#: What ``dvc exp run`` reproduces for a transformer comparison: the two trainings, their
#: per-scale curves and their benchmark evaluations (no regression baseline, no register).
DEFAULT_OBJECTIVES = ("depthart", "var_tf")
PENDING = ("Queued", "Running")


class ExperimentError(RuntimeError):
    """A dvc command failed, an experiment failed, or the wait ran out."""


class GridError(ValueError):
    """A ``key=value`` / ``key=v1,v2`` spec that cannot be queued."""


@dataclass(frozen=True)
class Experiment:
    """One finished DVC experiment: its commit, params (flat ``section.key``) and metrics
    (metrics file path -> its parsed content; missing files are absent)."""

    name: str
    rev: str
    params: dict[str, Any]
    metrics: dict[str, Any]


def add_queue_options(ap: argparse.ArgumentParser, name_prefix: str) -> None:
    """The options the sweep and the study share: names, parallelism, timeout, collect-only."""
    ap.add_argument("--name-prefix", default=name_prefix)
    ap.add_argument("--jobs", type=int, default=1, help="experiments at once (2 cores: 1)")
    ap.add_argument("--timeout-h", type=float, default=4.0)
    ap.add_argument(
        "--collect-only",
        action="store_true",
        help="tabulate the finished experiments of these names, run nothing",
    )


def stage_targets(objectives: tuple[str, ...] | list[str]) -> list[str]:
    """The ``dvc exp run`` targets that train, trace per-scale curves and evaluate."""
    return [f"{stage}@{obj}" for stage in ("scales", "evaluate") for obj in objectives]


def _value(text: str) -> Any:
    """A spec's value with its type: JSON first (``1e-3`` is a float there, a string in
    YAML 1.1), then YAML (``cosine``, ``[64, 64]``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)


def parse_assignment(spec: str) -> tuple[str, list[Any]]:
    """``section.key=v1[,v2...]`` -> (key, typed values)."""
    key, sep, raw = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise GridError(f"bad spec {spec!r}: expected section.key=value[,value...]")
    texts = [v.strip() for v in raw.split(",")]
    if any(not v for v in texts):
        raise GridError(f"bad spec {spec!r}: empty value for {key!r}")
    if len(set(texts)) != len(texts):
        raise GridError(f"bad spec {spec!r}: repeated value for {key!r}")
    return key, [_value(v) for v in texts]


def check_points(points: list[dict[str, Any]], params_file: Path) -> None:
    """Every point through the params dataclasses (as the Prefect flow's overrides are):
    DVC would set a mistyped key silently and the stage refuse it an hour into the queue."""
    for point in points:
        try:
            resolve_overrides(params_file, point)
        except ConfigError as exc:
            raise GridError(str(exc)) from exc


def parse_grid(specs: list[str], params_file: Path) -> list[dict[str, Any]]:
    """The cartesian product of ``key=v1,v2`` specs, in the order given (last key fastest),
    each point checked against ``params_file``'s dataclasses."""
    if not specs:
        raise GridError("empty grid: give at least one section.key=v1[,v2...]")
    axes = [parse_assignment(spec) for spec in specs]
    keys = [key for key, _ in axes]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise GridError(f"key given twice in the grid: {', '.join(dup)}")
    combos = itertools.product(*(values for _, values in axes))
    points = [dict(zip(keys, combo, strict=True)) for combo in combos]
    check_points(points, params_file)
    return points


def parse_sets(specs: list[str], params_file: Path) -> dict[str, Any]:
    """``key=value`` overrides (one value each) applied to every experiment, checked."""
    out: dict[str, Any] = {}
    for spec in specs:
        key, values = parse_assignment(spec)
        if len(values) != 1:
            raise GridError(f"bad --set {spec!r}: one value only (use a sweep for several)")
        out[key] = values[0]
    check_points([out], params_file)
    return out


def dvc(args: list[str], repo: Path) -> str:
    """Run ``dvc <args>`` in ``repo`` with this interpreter's DVC; stdout, or an
    :class:`ExperimentError` quoting the output's tail.

    Output goes through temporary files, not pipes: ``dvc queue start`` leaves a detached
    worker that inherits its output handles, and a pipe would stay open (and this call
    blocked) until the whole queue had run."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=repo, env=dvc_env(), stdout=out, stderr=err
        ).returncode
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code != 0:
        tail = (stdout + stderr)[-4000:]
        raise ExperimentError(f"`dvc {' '.join(args)}` exited {code}:\n{tail}")
    return stdout


def queue(points: list[tuple[str, dict[str, Any]]], targets: list[str], repo: Path) -> None:
    """``dvc exp run --queue --name NAME -S k=v ... TARGETS`` for each (name, overrides);
    finished experiments of the same names on this commit are removed first, so the names
    always mean this round's runs."""
    existing = set(dvc(["exp", "list", "--name-only"], repo).split())
    stale = [name for name, _ in points if name in existing]
    if stale:
        print(f"removing earlier experiments of the same names: {', '.join(stale)}")
        dvc(["exp", "remove", *stale], repo)
    for name, overrides in points:
        sets = set_param_args(overrides, "params.yaml")
        dvc(["exp", "run", "--queue", "--name", name, *sets, *targets], repo)
        print(f"queued {name}: {' '.join(f'{k}={v}' for k, v in overrides.items())}")


def queue_status(repo: Path) -> dict[str, list[str]]:
    """Experiment name -> the statuses of its tasks in ``dvc queue status`` (a name
    can have a finished task from an earlier round besides this round's)."""
    out: dict[str, list[str]] = {}
    for line in dvc(["queue", "status"], repo).splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] == "Task" or line.startswith("Worker"):
            continue
        out.setdefault(parts[1], []).append(parts[-1])
    return out


def run_queue(
    names: list[str], repo: Path, jobs: int, timeout_s: float, poll_s: float = 10.0
) -> float:
    """``dvc queue start -j JOBS``, then wait until none of ``names`` is queued or running;
    returns the seconds waited. Whether each succeeded is decided by :func:`show`."""
    start = time.monotonic()
    dvc(["queue", "start", "-j", str(jobs)], repo)
    last = ""
    while True:
        status = queue_status(repo)
        pending = [n for n in names if any(s in PENDING for s in status.get(n, []))]
        elapsed = time.monotonic() - start
        line = f"[{elapsed / 60:5.1f} min] {len(names) - len(pending)}/{len(names)} done"
        if line.split("] ")[1] != last:
            print(line, flush=True)
            last = line.split("] ")[1]
        if not pending:
            return elapsed
        if elapsed > timeout_s:
            raise ExperimentError(
                f"still pending after {timeout_s / 60:.0f} min: {', '.join(pending)} "
                "(`dvc queue status`, `dvc queue logs NAME`; `dvc queue kill NAME` to stop)"
            )
        time.sleep(poll_s)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def show(names: list[str], repo: Path) -> dict[str, Experiment]:
    """The experiments called ``names`` on the current commit, from ``dvc exp show --json``.
    A name that did not finish raises, quoting the tail of its ``dvc queue logs``."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    found: dict[str, Experiment] = {}
    for baseline in json.loads(dvc(["exp", "show", "--json"], repo)):
        if baseline.get("rev") != head:
            continue
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                if rev.get("name") not in names or rev.get("error"):
                    continue
                data = rev["data"]
                params = _flatten(data.get("params", {}).get("params.yaml", {}).get("data", {}))
                metrics = {
                    path: entry["data"]
                    for path, entry in data.get("metrics", {}).items()
                    if "data" in entry
                }
                found[rev["name"]] = Experiment(rev["name"], rev["rev"], params, metrics)
    missing = [n for n in names if n not in found]
    if missing:
        logs = []
        for name in missing:
            try:
                logs.append(f"--- {name}:\n{dvc(['queue', 'logs', name], repo)[-3000:]}")
            except ExperimentError as exc:
                logs.append(f"--- {name}: no log ({exc})")
        raise ExperimentError(
            f"no finished experiment on commit {head[:7]} named {', '.join(missing)}\n"
            + "\n".join(logs)
        )
    return found


def read_committed(exp: Experiment, path: str, repo: Path) -> str:
    """A file as the experiment committed it (metrics and plots files are committed)."""
    proc = subprocess.run(
        ["git", "show", f"{exp.rev}:{path}"], cwd=repo, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise ExperimentError(f"experiment {exp.name} ({exp.rev[:7]}) has no {path}: {proc.stderr}")
    return proc.stdout


def eval_metric(exp: Experiment, objective: str, benchmark: str, metric: str) -> float:
    """One evaluate-stage number (lsq alignment) of ``objective`` on ``benchmark``."""
    path = f"outputs/eval/{objective}/metrics.json"
    try:
        return float(exp.metrics[path][benchmark]["lsq"][metric])
    except KeyError as exc:
        raise ExperimentError(
            f"experiment {exp.name}: {path} has no {benchmark}.lsq.{metric}"
        ) from exc


def scales_summary(exp: Experiment, objective: str) -> dict[str, Any]:
    """The ``scales`` stage's scalar summary (first/last-scale val AbsRel, prefix ablation)
    as ``dvc exp show`` reports it."""
    path = f"models/{objective}/scales.json"
    if path not in exp.metrics:
        raise ExperimentError(f"experiment {exp.name}: no {path} in `dvc exp show`")
    return exp.metrics[path]


def scales_committed(exp: Experiment, objective: str, repo: Path) -> dict[str, Any]:
    """The whole ``scales.json`` as the experiment committed it: ``dvc exp show`` drops its
    list-valued entries, and with them every number of the exposure gap."""
    scales_summary(exp, objective)  # the experiment has the file at all
    path = f"models/{objective}/scales.json"
    try:
        return json.loads(read_committed(exp, path, repo))
    except json.JSONDecodeError as exc:
        raise ExperimentError(f"experiment {exp.name}: unreadable {path}: {exc}") from exc


def scale_curve(exp: Experiment, objective: str, repo: Path) -> tuple[list[int], list[float]]:
    """(patch side per scale, val AbsRel after each scale) from the committed
    ``models/<objective>/scales.csv``, coarse to fine."""
    path = f"models/{objective}/scales.csv"
    rows = [r.split(",") for r in read_committed(exp, path, repo).strip().splitlines()]
    try:
        side, col = rows[0].index("patch_num"), rows[0].index("abs_rel")
        return [int(r[side]) for r in rows[1:]], [float(r[col]) for r in rows[1:]]
    except (ValueError, IndexError) as exc:
        raise ExperimentError(f"experiment {exp.name}: unreadable {path}: {exc}") from exc


def cached_md5(exp: Experiment, stage: str, path: str, repo: Path) -> str:
    """The md5 the experiment's committed dvc.lock records for ``stage``'s output ``path``."""
    lock = yaml.safe_load(read_committed(exp, "dvc.lock", repo))
    outs = (lock.get("stages", {}).get(stage) or {}).get("outs", [])
    md5 = next((o.get("md5") for o in outs if o.get("path") == path), None)
    if not md5:
        raise ExperimentError(f"experiment {exp.name}: dvc.lock has no {stage} output {path}")
    return str(md5)


def cache_path(md5: str, repo: Path) -> Path:
    """The shared DVC cache's file of ``md5`` (DVC 3 layout, then the older one)."""
    for cache in (repo / ".dvc/cache/files/md5", repo / ".dvc/cache"):
        blob = cache / md5[:2] / md5[2:]
        if blob.is_file():
            return blob
    raise ExperimentError(f"md5 {md5} is not in the DVC cache of {repo}")


def restore_cached_dir(exp: Experiment, stage: str, path: str, repo: Path, work: Path) -> Path:
    """A DVC-cached output folder as the experiment produced it, rebuilt under
    ``work/<md5>`` from the shared cache (the experiments ran in temporary copies, so the
    workspace need not hold it); reused when already there."""
    md5 = cached_md5(exp, stage, path, repo)
    if not md5.endswith(".dir"):
        raise ExperimentError(f"experiment {exp.name}: {stage} output {path} is not a folder")
    dest = work / md5.removesuffix(".dir")
    if dest.is_dir():
        return dest
    entries = json.loads(cache_path(md5, repo).read_text())
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for entry in entries:
            target = tmp / entry["relpath"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cache_path(entry["md5"], repo), target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(dest)
    return dest


def read_cached(exp: Experiment, stage: str, path: str, repo: Path) -> str:
    """A DVC-cached output (``per_image.csv``) as the experiment produced it: its md5 from
    the experiment's committed dvc.lock, its bytes from the shared DVC cache."""
    return cache_path(cached_md5(exp, stage, path, repo), repo).read_text()
